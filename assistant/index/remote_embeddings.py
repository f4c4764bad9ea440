"""Embeddings from a team's server over the OpenAI-compatible `/v1/embeddings` API.

llama-server `--embedding`, Ollama, text-embeddings-inference, vLLM and llama-cpp-python's
server all speak it. Texts go in batches, several batches at once (one keep-alive connection per
thread), and a request that fails for a reason that may pass (connection refused or reset, 429,
5xx, a server's own timeout) is retried with backoff, or after the server's `Retry-After`; a
text the server calls too long is halved instead. The model's name and the vectors' dimension
make the embedder's identity, which the index records: a different server model re-embeds the
index, and a search against an index embedded by another model is refused rather than compared
across spaces. HTTPS trusts the system's CAs, or those in the file `SSL_CERT_FILE` names.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.config.servers import bearer, server_url
from assistant.errors import AssistError

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

RETRIES = 4
"""Attempts after the first for a failure that may pass; waits 0.5, 1, 2, 4 s between them."""
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_MAX = 30.0
"""The longest a server's `Retry-After` is waited for, in seconds (a bound on a rogue value)."""
# How servers say an input is over the model's context: llama-server ("input is too large to
# process", "n_ubatch", "larger than the max context size"), OpenAI and vLLM ("maximum context
# length is 512 tokens"), Ollama ("the input length exceeds the context length"),
# text-embeddings-inference ("must have less than 512 tokens"). Not a timeout that mentions a
# context: Go's "context deadline exceeded" is a failure that may pass, retried like a 5xx.
_TOO_LONG = re.compile(
    r"too (?:long|large)|maximum context length|n_ubatch|larger than the max"
    r"|exceed\w*\b[^.]*?\b(?:tokens?|context (?:length|window|size))\b"
    r"|\btokens?\b[^.]*?\bexceed|less than \d+ tokens",
    re.IGNORECASE,
)
_TIMED_OUT = re.compile(r"deadline|timed? ?out", re.IGNORECASE)


def too_long(status: int, body: str) -> bool:
    """Whether an error answer says the input is over the model's context (so it is halved),
    rather than something that may pass (so it is retried)."""
    if status == 413:  # Payload Too Large
        return True
    if status not in (400, 422, 500) or _TIMED_OUT.search(body):
        return False
    return _TOO_LONG.search(body) is not None


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), at most
    RETRY_AFTER_MAX; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


class EmbeddingServerError(AssistError):
    def __init__(
        self, message: str, hint: str, status: int = 0, body: str = "", wait: float | None = None
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.body = body
        self.wait = wait
        """The server's `Retry-After`, in seconds (bounded)."""


class RemoteEmbedder:
    """The `Embedder` interface (identity, dim, embed, close) over HTTP; rows L2-normalised."""

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        batch: int = 64,
        concurrency: int = 4,
        max_chars: int = 2000,
        timeout: float = 120.0,
        retries: int = RETRIES,
    ) -> None:
        server_url(url, "index.embedding_url")
        self.url = url.rstrip("/").removesuffix("/v1/embeddings").removesuffix("/v1")
        self._parts = urllib.parse.urlsplit(self.url)
        self.model = model
        self.authorization = bearer(api_key, "index.embedding_api_key")
        self.batch = max(1, batch)
        self.concurrency = max(1, concurrency)
        self.max_chars = max(16, max_chars)
        self.timeout = timeout
        self.retries = retries
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._name: str | None = None
        self._dim: int | None = None

    # -- what the index records ------------------------------------------------------------

    def _probe(self) -> None:
        if self._dim is None:
            self._post(["a"])

    @property
    def identity(self) -> str:
        """`remote:<model>/dim<n>`: the server's model and the vector size. The URL is left
        out, so moving a server to another host keeps the index's vectors."""
        self._probe()
        return f"remote:{self._name}/dim{self._dim}"

    @property
    def dim(self) -> int:
        self._probe()
        assert self._dim is not None
        return self._dim

    @property
    def rows_per_call(self) -> int:
        """How many texts the indexer should hand over at once to keep every stream busy."""
        return self.batch * self.concurrency

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    # -- vectors ---------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], cancel: threading.Event | None = None) -> FloatArray:
        """L2-normalised float32 rows, in order. Once `cancel` is set, batches not yet sent are
        skipped and their rows stay zero (the caller checks `cancel` before keeping them)."""
        self._probe()
        assert self._dim is not None
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        cut = [t[: self.max_chars] or " " for t in texts]
        spans = [(i, min(i + self.batch, len(cut))) for i in range(0, len(cut), self.batch)]

        def one(span: tuple[int, int]) -> None:
            if cancel is not None and cancel.is_set():
                return
            out[span[0] : span[1]] = self._post(cut[span[0] : span[1]])

        if len(spans) == 1:
            one(spans[0])
        else:
            for future in [self._executor().submit(one, s) for s in spans]:
                future.result()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, "assist-embed-remote")
            return self._pool

    def _post(self, texts: list[str]) -> FloatArray:
        """One request, retried while the failure may pass; a text the server finds too long
        is halved until it fits."""
        body: dict[str, Any] = {"input": texts}
        if self.model:
            body["model"] = self.model
        for attempt in range(self.retries + 1):
            try:
                reply = self._request(body)
                break
            except EmbeddingServerError as exc:
                if too_long(exc.status, exc.body):
                    longest = max(len(t) for t in texts)
                    if longest > 16:
                        shorter = [t[: longest // 2] for t in texts]
                        log.info("embedding server found a text too long; cutting to %d chars",
                                 longest // 2)  # fmt: skip
                        return self._post(shorter)
                retry = exc.status == 0 or exc.status in _RETRY_STATUS
                if not retry or attempt == self.retries:
                    raise
                wait = 0.5 * 2**attempt if exc.wait is None else exc.wait
                log.info("embedding server: %s; retrying in %.1f s", exc.message, wait)
                time.sleep(wait)
        return self._vectors(reply, len(texts))

    def _vectors(self, reply: Any, count: int) -> FloatArray:
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list) or len(data) != count:
            raise AssistError(
                f"embedding server at {self.url} sent {len(data) if isinstance(data, list) else 0}"
                f" vectors for {count} texts",
                "check that index.embedding_url points at an embeddings server",
            )
        rows: list[list[float]] = [[]] * count
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else position
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vector, list) or not isinstance(index, int) or not 0 <= index < count:
                raise AssistError(f"embedding server at {self.url} sent a malformed vector",
                                  "check that the server speaks /v1/embeddings")  # fmt: skip
            rows[index] = vector
        name = str(reply.get("model") or self.model or "unnamed")
        dims = {len(r) for r in rows}
        if len(dims) != 1 or 0 in dims:
            raise AssistError(f"embedding server at {self.url} sent vectors of sizes "
                              f"{sorted(dims)}", "check the server's embedding model")  # fmt: skip
        dim = dims.pop()
        if self._dim is None:
            self._name, self._dim = self.model or name, dim
        elif dim != self._dim:
            raise AssistError(
                f"embedding server at {self.url} changed vector size from {self._dim} to {dim}",
                "the server's model changed: run `assist index` again to re-embed",
            )
        matrix = np.asarray(rows, dtype=np.float32)
        if not np.all(np.isfinite(matrix)):
            raise AssistError(f"embedding server at {self.url} sent non-finite numbers",
                              "check the server's embedding model")  # fmt: skip
        return matrix

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            parts = self._parts
            cls = (http.client.HTTPSConnection if parts.scheme == "https"
                   else http.client.HTTPConnection)  # fmt: skip
            conn = cls(parts.hostname or "", parts.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _request(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        path = self._parts.path + "/v1/embeddings"
        payload = json.dumps(body).encode()
        for fresh in (False, True):
            conn = self._connection()
            try:
                conn.request("POST", path, payload, headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                # A kept-alive connection the server closed meanwhile: one fresh try, at once.
                if isinstance(exc, ssl.SSLCertVerificationError):
                    raise AssistError(
                        f"embedding server at {self.url}: its certificate is not trusted: {exc}",
                        "set SSL_CERT_FILE to a file of the CA certificates to trust",
                    ) from None
                if fresh or not isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                 ConnectionResetError)):  # fmt: skip
                    raise EmbeddingServerError(
                        f"embedding server at {self.url} did not answer: {exc}",
                        "start it, or check index.embedding_url",
                    ) from None
        text = data.decode("utf-8", "replace")
        if response.status != 200:
            raise EmbeddingServerError(
                f"embedding server at {self.url} answered {response.status}: {text[:200]}",
                "check index.embedding_url and index.embedding_remote_model",
                status=response.status,
                body=text,
                wait=retry_after(response.getheader("Retry-After")),
            )
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise AssistError(f"embedding server at {self.url} sent something that is not JSON",
                              "check that index.embedding_url is the server's base URL",
                              ) from None  # fmt: skip
