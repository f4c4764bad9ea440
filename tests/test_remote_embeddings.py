"""Embeddings from a server: `index.embedding_url` against llama-cpp-python's real server on
loopback, serving the same MiniLM GGUF the local embedder runs."""

from __future__ import annotations

import email.utils
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from servers import free_port, handlers_repo, llama_cpp_server, reply, self_signed_certificate

from assistant.errors import AssistError
from assistant.index import remote_embeddings
from assistant.index.embeddings import load_embedder
from assistant.index.indexer import IndexReport
from assistant.index.minilm import default_embedding_model_path
from assistant.index.remote_embeddings import RemoteEmbedder, retry_after, too_long
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
    """A fault injector, not a stand-in for a server: it fails the first requests with 503 (or
    the `faults` given), refuses texts over `limit` characters as a server with a small
    context would, and otherwise forwards to the real server, since a real server cannot be
    told to fail on cue. It records when each request came and its longest text."""

    failures = 0
    faults: ClassVar[list[tuple[int, bytes, dict[str, str]]]] = []
    limit: tuple[int, int, bytes] | None = None  # characters, status, body
    upstream = ""
    seen = 0
    arrivals: ClassVar[list[tuple[float, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.seen += 1
        longest = max(len(t) for t in json.loads(body)["input"])
        cls.arrivals.append((time.monotonic(), longest))
        if cls.failures > 0:
            cls.failures -= 1
            reply(self, 503, b"busy")
            return
        if cls.faults:
            status, text, headers = cls.faults.pop(0)
            reply(self, status, text, headers)
            return
        if cls.limit is not None and longest > cls.limit[0]:
            reply(self, cls.limit[1], cls.limit[2])
            return
        request = urllib.request.Request(self.upstream + self.path, data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        reply(self, 200, urllib.request.urlopen(request, timeout=60).read())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky(embedding_server: str) -> Iterator[str]:
    """The fault injector in front of the real server, reset; yields its URL."""
    _Flaky.upstream, _Flaky.failures, _Flaky.seen = embedding_server, 0, 0
    _Flaky.faults, _Flaky.limit, _Flaky.arrivals = [], None, []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.shutdown()
    proxy.server_close()


def test_a_busy_server_is_retried_and_a_dead_one_is_a_clear_error(flaky: str) -> None:
    _Flaky.failures = 2
    vectors = RemoteEmbedder(flaky, retries=3).embed(["hello"])
    # The first request (learning the model and size) met two 503s; then the text itself.
    assert vectors.shape == (1, 384) and _Flaky.seen == 4
    _Flaky.failures = 10
    with pytest.raises(AssistError, match="answered 503"):
        RemoteEmbedder(flaky, retries=1).embed(["hello"])
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


# -- a text too long, and failures that may pass ---------------------------------------------

LONG = "retry the failed uploads " * 80  # 2,000 characters

# What servers answer for an input over their context, and for their own timeouts.
TOO_LONG_ANSWERS = [
    (500, "input is too large to process. increase the physical batch size"),  # llama-server
    (500, "input (600 tokens) is larger than the max context size (512 tokens)"),
    (400, "This model's maximum context length is 512 tokens. However, you requested 600"),
    (400, "the input length exceeds the context length"),  # Ollama
    (413, "Input validation error: `inputs` must have less than 512 tokens. Given: 600"),
    (400, "Requested tokens (600) exceed context window of 512"),  # llama-cpp-python
]
PASSING_FAILURES = [
    (500, "context deadline exceeded"),  # a Go server or proxy timing out
    (500, "Post http://gpu:8080: context deadline exceeded (Client.Timeout exceeded)"),
    (500, "upstream request timed out"),
    (503, "the input is too large for the queue right now"),
]


@pytest.mark.parametrize(("status", "body"), TOO_LONG_ANSWERS)
def test_a_text_the_server_calls_too_long_is_halved_until_it_fits(
    flaky: str, embedding_server: str, status: int, body: str
) -> None:
    """The server (here one that takes 300 characters) refuses the whole text: it is cut to
    half, then half again, and the vector is the server's for that cut."""
    assert too_long(status, body)
    _Flaky.limit = (300, status, json.dumps({"error": {"message": body}}).encode())
    vectors = RemoteEmbedder(flaky, max_chars=4000, retries=0).embed([LONG])
    assert [longest for _, longest in _Flaky.arrivals] == [1, 2000, 1000, 500, 250]
    direct = RemoteEmbedder(embedding_server).embed([LONG[:250]])
    assert np.allclose(vectors, direct, atol=1e-5)


@pytest.mark.parametrize(("status", "body"), PASSING_FAILURES)
def test_a_server_timeout_is_retried_with_the_whole_text(
    flaky: str, embedding_server: str, status: int, body: str
) -> None:
    """A timeout that mentions a "context" or "exceeded" is not a text too long: the same
    request is sent again, uncut."""
    assert not too_long(status, body)
    embedder = RemoteEmbedder(flaky, max_chars=4000, retries=2)
    assert embedder.dim == 384  # the model and size learnt first, without faults
    _Flaky.faults = [(status, body.encode(), {})] * 2
    vectors = embedder.embed([LONG])
    assert [longest for _, longest in _Flaky.arrivals] == [1, 2000, 2000, 2000]
    assert np.allclose(vectors, RemoteEmbedder(embedding_server).embed([LONG]), atol=1e-5)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("1", 0.95, 1.45),  # seconds: longer than the 0.5 s backoff it replaces
        ("3600", 1.45, 1.95),  # an hour: bounded by RETRY_AFTER_MAX (1.5 s in this test)
        ("0", 0.0, 0.45),
    ],
)
def test_429_waits_as_long_as_retry_after_says_within_a_bound(
    flaky: str, monkeypatch: pytest.MonkeyPatch, header: str, low: float, high: float
) -> None:
    monkeypatch.setattr(remote_embeddings, "RETRY_AFTER_MAX", 1.5)
    _Flaky.faults = [(429, b"rate limited", {"Retry-After": header})]
    assert RemoteEmbedder(flaky, retries=1).embed(["hello"]).shape == (1, 384)
    (refused, _), (retried, _) = _Flaky.arrivals[:2]
    assert low <= retried - refused < high, retried - refused


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    soon = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 < (retry_after(soon) or 0) <= 10
    assert retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert retry_after("120") == 30.0 == remote_embeddings.RETRY_AFTER_MAX
    assert retry_after(" 7 ") == 7.0
    for unreadable in (None, "", "soon", "-5", "1.5"):
        assert retry_after(unreadable) is None, unreadable


# -- a key and HTTPS ----------------------------------------------------------------------------

KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real server over HTTPS with a self-signed certificate, wanting `KEY`; yields its
    URL and the certificate to trust."""
    folder = tmp_path_factory.mktemp("tls")
    tls = self_signed_certificate(folder)
    model = default_embedding_model_path()
    args = ("--embedding", "true", "--n_ctx", "512", "--api_key", KEY)
    with llama_cpp_server(model, folder / "server.log", *args, tls=tls) as url:
        yield url, tls[0]


def test_https_with_a_key(
    secured_server: tuple[str, Path], embedding_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = secured_server
    assert url.startswith("https://")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(AssistError, match="certificate is not trusted") as untrusted:
        RemoteEmbedder(url, api_key=KEY, retries=0).embed(["hello"])
    assert "SSL_CERT_FILE" in untrusted.value.hint
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    for key in (None, "sk-wrong"):
        with pytest.raises(AssistError, match="answered 401"):
            RemoteEmbedder(url, api_key=key, retries=0).embed(["hello"])
    vectors = RemoteEmbedder(url, api_key=f"{KEY}\n", retries=0).embed(["hello", "world"])
    assert np.allclose(vectors, RemoteEmbedder(embedding_server).embed(["hello", "world"]))
