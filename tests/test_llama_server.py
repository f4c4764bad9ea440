"""The remote path against llama.cpp's own `llama-server`: `/infill` with repository context
(`input_extra`), prompt caching and embeddings, which llama-cpp-python's Python server lacks.

The server is built from the llama.cpp sources that llama-cpp-python's sdist vendors, linked
to the bindings' own libraries, by `make llama-server` (bench/build_llama_server.sh; a few
minutes on 2 cores once per machine: docs/benchmarks.md), into
`~/.cache/assist/llama-server/<version>/`; `ASSIST_LLAMA_SERVER` may name another binary.
`make test` builds it first, so CI runs these tests; a bare `pytest` without it skips them with
that instruction.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from servers import free_port

from assistant.config import ModelSettings
from assistant.index.embeddings import load_embedder
from assistant.index.minilm import default_embedding_model_path
from assistant.index.remote_embeddings import RemoteEmbedder
from assistant.llm.fim import ContextFile, Hole
from assistant.llm.protocol import Request
from assistant.llm.remote import RemoteModel


def server_binary() -> Path | None:
    import llama_cpp

    named = os.environ.get("ASSIST_LLAMA_SERVER")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = (
        Path(named)
        if named
        else cache / "assist/llama-server" / llama_cpp.__version__ / "llama-server"
    )
    return path if path.is_file() and os.access(path, os.X_OK) else None


pytestmark = pytest.mark.skipif(
    server_binary() is None,
    reason="no llama-server: run `make llama-server` (builds it from the vendored llama.cpp, once "
    "per machine) or set ASSIST_LLAMA_SERVER",
)


def start(model: Path, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = server_binary()
    assert binary is not None
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([str(binary), "-m", str(model), "--host", "127.0.0.1", "--port",
                                 str(port), "-np", "1", *extra],
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(url + "/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"llama-server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def infill_server(
    make_gguf: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # llama-server gives `input_extra` what the slot's context leaves after one batch (n_ctx -
    # n_batch), and caps the context at the model's trained length: give it room.
    model = make_gguf(family="qwen", metadata=True, favorite="a", context_length=8192)
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    proc, url = start(model, log, "-c", "4096", "-b", "512", "-ub", "512")
    yield url
    proc.terminate()
    proc.wait(10)


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    return json.loads(urllib.request.urlopen(request, timeout=120).read())  # type: ignore[no-any-return]


def test_infill_goes_to_the_server_with_repository_context(infill_server: str) -> None:
    model = RemoteModel(infill_server, ModelSettings(temperature=0.0, max_tokens=8))
    context = [ContextFile("lib/util.py", "def helper():\n    return 42\n")]
    hole = Hole("def f():\n    return ", "\n", path="main.py", context=context)
    text = "".join(model.infill(hole))
    assert text.startswith("a")  # the tiny model's favourite token, through the server's FIM
    assert model.fim_kind == "server"  # /infill answered: no emulation
    body = {"input_prefix": "def f():\n    return ", "input_suffix": "\n", "n_predict": 1,
            "temperature": 0, "cache_prompt": False}  # fmt: skip
    bare = post(infill_server + "/infill", body)
    extra = post(
        infill_server + "/infill",
        {**body, "input_extra": [{"filename": c.path, "text": c.text} for c in context]},
    )
    # The repository context is in the prompt the server read.
    assert extra["tokens_evaluated"] > bare["tokens_evaluated"]  # type: ignore[operator]


def test_the_server_caches_the_prompt_between_requests(infill_server: str) -> None:
    prefix = "import os\n\n" + "".join(f"def f{i}():\n    return {i}\n\n" for i in range(20))
    body = {"input_prefix": prefix, "input_suffix": "\n", "n_predict": 2, "temperature": 0,
            "cache_prompt": True}  # fmt: skip
    post(infill_server + "/infill", body)
    again = post(infill_server + "/infill", {**body, "input_prefix": prefix + "def g"})
    timings = again["timings"]
    assert isinstance(timings, dict) and timings["cache_n"] > 100  # only the new tail is read
    # The warm-up request the language server sends at idle moments (n_predict 0) is a cache
    # fill too: RemoteModel sends it once the server is known to have /infill.
    model = RemoteModel(infill_server, ModelSettings(temperature=0.0))
    list(model.infill(Hole(prefix, "\n"), Request(max_tokens=1)))
    assert list(model.infill(Hole(prefix + "x", "\n"), Request.warm_up())) == []


def test_embeddings_from_llama_server_equal_the_local_ones(tmp_path: Path) -> None:
    proc, url = start(default_embedding_model_path(), tmp_path / "embed.log", "--embedding",
                      "--pooling", "mean", "-c", "512", "-ub", "512", "-b", "512")  # fmt: skip
    try:
        texts = ["def add(a, b):\n    return a + b", "retry the failed uploads", "class Session:"]
        remote = RemoteEmbedder(url, batch=2, concurrency=2).embed(texts)
        local = load_embedder().embed(texts)
        assert float(np.min(np.sum(remote * local, axis=1))) > 0.99
    finally:
        proc.terminate()
        proc.wait(10)
