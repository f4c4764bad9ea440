"""`assist model pull` against a Hub on 127.0.0.1: a small HTTP server that answers the Hub's
URL layout (`/api/models/<repo>/revision/<rev>`, `/<repo>/resolve/<rev>/<file>` with its
`X-Repo-Commit` / `X-Linked-Etag` / `X-Linked-Size` headers and byte ranges), reached through
`HF_ENDPOINT` by the real huggingface_hub client, serving GGUF files generated for the test."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from servers import free_port

from assistant.llm.pull import choose_file
from assistant.llm.source import embedded_model_path

REPO = "example/Tiny-Coder-GGUF"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    files: dict[str, bytes]
    advertised: dict[str, str] = field(default_factory=dict)
    """sha256 the server announces, when it should differ from the content's (corruption)."""
    drop_after: int = 0
    """Close the first download of a file after this many bytes (a dropped connection)."""
    ranges: list[str] = field(default_factory=list)
    gets: int = 0
    url: str = ""

    def sha(self, name: str) -> str:
        return self.advertised.get(name) or hashlib.sha256(self.files[name]).hexdigest()


def handler_for(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _file(self) -> str | None:
            prefix = f"/{REPO}/resolve/"
            if not self.path.startswith(prefix):
                return None
            name = self.path[len(prefix) :].split("/", 1)[1].split("?")[0]
            return name if name in hub.files else None

        def _headers(self, name: str, length: int, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{hub.sha(name)}"')
            self.send_header("X-Linked-Size", str(len(hub.files[name])))
            self.send_header("ETag", f'"{hub.sha(name)}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))

        def do_HEAD(self) -> None:
            name = self._file()
            if name is None:
                self.send_error(404)
                return
            self._headers(name, len(hub.files[name]))
            self.end_headers()

        def do_GET(self) -> None:
            if self.path.startswith(f"/api/models/{REPO}/revision/"):
                body = json.dumps(
                    {
                        "id": REPO,
                        "modelId": REPO,
                        "sha": COMMIT,
                        "private": False,
                        "siblings": [{"rfilename": n} for n in hub.files],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            name = self._file()
            if name is None:
                self.send_error(404)
                return
            data = hub.files[name]
            start = 0
            if rng := self.headers.get("Range"):
                hub.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0])
            hub.gets += 1
            part = data[start:]
            self._headers(name, len(part), 206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if hub.drop_after and hub.gets == 1:
                self.wfile.write(part[: hub.drop_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the network drops mid-file
                return
            self.wfile.write(part)

    return Handler


@pytest.fixture
def hub(make_gguf: Callable[..., Path]) -> Iterator[Hub]:
    big = make_gguf(family="qwen", metadata=True, favorite="a").read_bytes()
    small = make_gguf(family="none", favorite="b").read_bytes()
    hub = Hub({"tiny-coder-Q8_0.gguf": small, "tiny-coder-Q4_K_M.gguf": big,
               "README.md": b"# tiny\n"})  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler_for(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hub
    server.shutdown()


def pull(hub: Hub, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ASSIST_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HOME=str(cache.parent))  # fmt: skip
    return subprocess.run([sys.executable, "-m", "assistant", "model", "pull", REPO, *args],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_pull_takes_q4_k_m_into_the_hugging_face_cache(hub: Hub, tmp_path: Path) -> None:
    cache = tmp_path / "hf" / "hub"
    done = pull(hub, cache)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == "tiny-coder-Q4_K_M.gguf"
    assert path.read_bytes() == hub.files["tiny-coder-Q4_K_M.gguf"]
    # The standard layout, so other tools (and `assist model list`) see it.
    assert path.parent == cache / "models--example--Tiny-Coder-GGUF" / "snapshots" / COMMIT
    assert "--model tiny-coder-Q4_K_M" in done.stderr
    again = pull(hub, cache, "--quant", "q8_0")
    assert Path(again.stdout.strip()).name == "tiny-coder-Q8_0.gguf"


def test_a_dropped_connection_resumes_with_a_range_request(hub: Hub, tmp_path: Path) -> None:
    # huggingface_hub writes in 10 MB chunks and resumes from what it wrote: a real model
    # (the embedded 98 MB SmolLM2) dropped after 12 MB resumes at 10 MB, not at 0.
    hub.files["tiny-coder-Q4_K_M.gguf"] = embedded_model_path().read_bytes()
    hub.drop_after = 12 << 20
    done = pull(hub, tmp_path / "hf" / "hub")
    assert done.returncode == 0, done.stderr
    assert "resume" in done.stderr  # the library says so
    assert (
        len(hub.ranges) == 1 and hub.ranges[0].startswith("bytes=") and hub.ranges[0] != "bytes=0-"
    )
    assert int(hub.ranges[0][6:].rstrip("-")) >= 10 << 20, hub.ranges
    assert Path(done.stdout.strip()).read_bytes() == hub.files["tiny-coder-Q4_K_M.gguf"]


def test_a_corrupted_download_is_rejected_and_deleted(hub: Hub, tmp_path: Path) -> None:
    hub.advertised["tiny-coder-Q4_K_M.gguf"] = "0" * 64
    cache = tmp_path / "hf" / "hub"
    done = pull(hub, cache)
    assert done.returncode != 0
    assert "checksum mismatch" in done.stderr and "deleted" in done.stderr
    assert not [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1000]


def test_offline_or_missing_is_one_line(hub: Hub, tmp_path: Path) -> None:
    offline = Hub({}, url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    done = pull(offline, tmp_path / "hf" / "hub")
    assert done.returncode != 0
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("assist: error: cannot download from example/Tiny-Coder-GGUF")
    assert "Traceback" not in done.stderr
    missing = pull(hub, tmp_path / "hf2" / "hub", "--quant", "IQ2_XS")
    assert "no IQ2_XS GGUF in the repository" in missing.stderr
    assert "it has: Q4_K_M, Q8_0" in missing.stderr


def test_choose_file() -> None:
    files = ["a-Q4_K_M.gguf", "a-Q4_K_S.gguf", "a-q8_0.gguf", "b-Q4_K_M-00001-of-00002.gguf"]
    assert choose_file(files) == "a-Q4_K_M.gguf"
    assert choose_file(files, quant="Q8_0") == "a-q8_0.gguf"
    assert choose_file(files, file="a-Q4_K_S.gguf") == "a-Q4_K_S.gguf"
