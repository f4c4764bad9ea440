"""Embeddings from a server: `index.embedding_url` against llama-cpp-python's real server on
loopback, serving the same MiniLM GGUF the local embedder runs."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from servers import free_port, handlers_repo, llama_cpp_server, reply

from assistant.errors import AssistError
from assistant.index.embeddings import load_embedder
from assistant.index.indexer import IndexReport
from assistant.index.minilm import default_embedding_model_path
from assistant.index.remote_embeddings import RemoteEmbedder
from assistant.workspace import Workspace


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("embed-server") / "server.log"
    model = default_embedding_model_path()
    with llama_cpp_server(model, log, "--embedding", "true", "--n_ctx", "512") as url:
        yield url


def git_repo(root: Path) -> Path:
    return handlers_repo(root, functions=40)


def test_server_vectors_equal_the_local_ones(embedding_server: str) -> None:
    texts = ["def add(a, b):\n    return a + b", "retry the failed uploads", "class Session:"]
    remote = RemoteEmbedder(embedding_server, batch=2, concurrency=2)
    local = load_embedder()
    a, b = remote.embed(texts), local.embed(texts)
    assert a.shape == b.shape == (3, 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() > 0.99, cosines
    assert remote.identity.startswith("remote:") and remote.identity.endswith("/dim384")
    assert remote.rows_per_call == 4


def test_index_and_search_through_the_server(embedding_server: str, tmp_path: Path) -> None:
    root = git_repo(tmp_path / "repo")
    overrides = {"index": {"embedding_url": embedding_server, "embedding_batch": 8,
                           "embedding_concurrency": 3}}  # fmt: skip
    ws = Workspace.open(root, overrides=overrides)
    report = next(r for r in ws.index() if isinstance(r, IndexReport))
    counts = ws.store.counts()
    assert report.embedded == counts["chunks"] == counts["vectors"] > 24  # several rounds
    assert ws.store.meta("embedder") == ws.embedder.identity
    hits = ws.search("send the files again", mode="vector", k=3)
    assert hits[0].name == "retry_failed_uploads"
    ws.close()

    # The index records which model made its vectors: a local embedder may not search them,
    # and `assist index` with it re-embeds every chunk.
    local = Workspace.open(root)
    with pytest.raises(AssistError, match="re-embed"):
        local.search("send the files again", mode="vector")
    report = next(r for r in local.index() if isinstance(r, IndexReport))
    assert report.embedded == counts["chunks"]
    assert not (local.store.meta("embedder") or "").startswith("remote:")
    local.close()


class _Flaky(BaseHTTPRequestHandler):
    """A fault injector, not a stand-in for a server: it fails the first requests with 503 and
    then forwards to the real server, since a real server cannot be told to fail on cue."""

    failures = 0
    upstream = ""
    seen = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        if type(self).failures > 0:
            type(self).failures -= 1
            reply(self, 503, b"busy")
            return
        request = urllib.request.Request(self.upstream + self.path, data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        reply(self, 200, urllib.request.urlopen(request, timeout=60).read())

    def log_message(self, *args: object) -> None:
        pass


def test_a_busy_server_is_retried_and_a_dead_one_is_a_clear_error(
    embedding_server: str,
) -> None:
    _Flaky.upstream, _Flaky.failures, _Flaky.seen = embedding_server, 2, 0
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        vectors = RemoteEmbedder(url, retries=3).embed(["hello"])
        # The first request (learning the model and size) met two 503s; then the text itself.
        assert vectors.shape == (1, 384) and _Flaky.seen == 4
        _Flaky.failures = 10
        with pytest.raises(AssistError, match="answered 503"):
            RemoteEmbedder(url, retries=1).embed(["hello"])
    finally:
        proxy.shutdown()
    dead = RemoteEmbedder(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(AssistError, match="did not answer"):
        dead.embed(["hello"])
    with pytest.raises(AssistError, match="not an http"):
        RemoteEmbedder("ftp://example")


def test_a_reply_that_is_not_embeddings_is_refused(tmp_path: Path) -> None:
    class Wrong(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            reply(self, 200, json.dumps({"data": [{"embedding": [1.0, 2.0]}]}).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Wrong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        embedder = RemoteEmbedder(f"http://127.0.0.1:{server.server_address[1]}", retries=0)
        with pytest.raises(AssistError, match="sent 1 vectors for 2 texts"):
            embedder.embed(["a", "b"])
    finally:
        server.shutdown()
