"""The same `Model` protocol over an OpenAI-compatible HTTP server.

Works with llama.cpp's `llama-server` (which also has a native `/infill` endpoint that applies
the model's FIM tokens server-side), llama-cpp-python's server, vLLM and Ollama. Where `/infill`
is missing, completions fall back to FIM emulation through the chat endpoint, as locally.

A cancelled request closes its connection at once, even while the server is still reading the
prompt and has sent nothing: a thread waits on the cancel event and shuts the socket down, which
wakes the blocked read (and tells llama-server to stop working on it).

`https://` trusts the system's CAs, or those in the file `SSL_CERT_FILE` names (OpenSSL reads
it when each connection's default context is made).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from assistant.config import ModelSettings
from assistant.config.servers import bearer, server_url
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.emulation import emulated_infill
from assistant.llm.fim import Hole
from assistant.llm.protocol import FimKind, Request, StopReason
from assistant.llm.schedule import Scheduler
from assistant.llm.server_events import (
    chat_text,
    completion_text,
    finish_reason,
    infill_text,
    read_progress,
    read_stats,
)
from assistant.llm.streaming import Reporter, relay

CHARS_PER_TOKEN = 3.5
"""Estimate of a server's tokenizer: code averages 3–4 characters a token."""


class ServerError(AssistError):
    def __init__(self, message: str, hint: str, code: int) -> None:
        super().__init__(message, hint)
        self.code = code


class ServerGone(AssistError):
    """The server could not be reached, or closed the connection mid-answer."""


def _cut_short() -> ServerGone:
    return ServerGone("the model server closed the connection mid-answer", "check the server's log")


class RemoteModel:
    def __init__(self, url: str, settings: ModelSettings) -> None:
        server_url(url, "model.url")
        self.url = url.rstrip("/").removesuffix("/v1")
        self._parsed = urllib.parse.urlsplit(self.url)
        self._authorization = bearer(settings.api_key, "model.api_key")
        self.settings = settings
        self.name = settings.remote_model or self.url
        self._infill: bool | None = None  # unknown until the server is asked
        self.ends_with_done = False
        """The server always ends a stream with `[DONE]` (a model host does), so a stream
        without it was cut short."""
        self.warms = False
        """The server reads a prompt into its cache for `max_tokens: 0` (a model host does)."""
        self.lane = f"{os.getpid()}-{id(self):x}"
        """Names this client to a shared model host, whose newer request supersedes its older."""
        self.scheduler = Scheduler(exclusive=False, lane=self.lane)
        """A server runs requests side by side; this client still cancels what it superseded."""

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the server (a model host's is a Unix socket)."""
        parts = self._parsed
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        return cls(parts.hostname or "", parts.port, timeout=self.settings.timeout)

    def headers(self, request: Request) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        # Read by a model host (llm/host.py); other servers ignore unknown headers.
        headers["X-Assist-Priority"] = request.priority
        headers["X-Assist-Lane"] = request.lane or self.lane
        headers["X-Assist-Made"] = str(request.made)
        return headers

    # -- facts -----------------------------------------------------------------------------

    @property
    def fim_kind(self) -> FimKind:
        return "emulated" if self._infill is False else "server"

    @property
    def fim_label(self) -> str:
        if self._infill is False:
            return "emulated (server has no /infill; chat prompt)"
        return "server /infill (the server applies the model's FIM tokens)"

    def context_window(self) -> int:
        """The configured `model.n_ctx`: a server does not say what it was started with."""
        return self.settings.n_ctx

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARS_PER_TOKEN) + 1

    # -- requests --------------------------------------------------------------------------

    def _body(self, extra: dict[str, Any], request: Request) -> dict[str, Any]:
        limit = request.max_tokens
        body: dict[str, Any] = {
            "max_tokens": self.settings.max_tokens if limit is None else limit,
            "temperature": self._temperature(request),
            "stream": True,
        }
        if self.settings.remote_model:
            body["model"] = self.settings.remote_model
        body.update(extra)
        return body

    def _temperature(self, request: Request) -> float:
        if request.temperature is not None:
            return request.temperature
        return self.settings.temperature

    def _stream(
        self, endpoint: str, body: dict[str, Any], pick: Callable[[Any], str], request: Request
    ) -> Iterator[str]:
        stats = request.stats
        # llama-server's names for a request's time limits (a model host reads them too).
        if request.prompt_s is not None:
            body["t_max_prompt_ms"] = round(request.prompt_s * 1000)
        if request.generate_s is not None:
            body["t_max_predict_ms"] = round(request.generate_s * 1000)
        if not self.scheduler.admit(request):
            stats.stopped_by = "cancel"
            return
        try:
            report = Reporter(request)
            started = time.perf_counter()
            connection = _Connection(self, endpoint, body, request)
            try:
                response = connection.open()
                pieces = _events(response, pick, request, connection, report)
                yield from relay(pieces, request, started=started, report=report)
            except _Cancelled as why:
                stats.stopped_by = why.reason
            finally:
                connection.close()
        finally:
            self.scheduler.release(request)

    def complete(self, prompt: str, request: Request | None = None) -> Iterator[str]:
        request = request or Request()
        if request.max_tokens == 0 and not self.warms:
            return iter(())  # an OpenAI-style server has no warm-up request
        body = self._body(_with_grammar({"prompt": prompt}, request.grammar), request)
        return self._stream("/v1/completions", body, completion_text, request)

    def chat(self, messages: list[Message], request: Request | None = None) -> Iterator[str]:
        request = request or Request()
        if request.max_tokens == 0 and not self.warms:
            return iter(())
        payload = [{"role": m.role, "content": m.content} for m in messages]
        body = self._body(_with_grammar({"messages": payload}, request.grammar), request)
        return self._stream("/v1/chat/completions", body, chat_text, request)

    def infill(self, hole: Hole, request: Request | None = None) -> Iterator[str]:
        """Through the server's `/infill` where it has one (asked on first use), else the chat
        emulation; nothing is sent until the stream is read."""
        request = request or Request()
        warm_up = request.max_tokens == 0
        if warm_up and self._infill is not True:
            return  # warm only a server known to cache `/infill` prompts
        if self._infill is not False:
            body = {
                "input_prefix": hole.prefix,
                "input_suffix": hole.suffix,
                "input_extra": [{"filename": c.path, "text": c.text} for c in hole.context],
                # After the middle token (llama-server's `prompt` of /infill): typing on the
                # line changes only the prompt's end.
                "prompt": hole.typed,
                "path": hole.path,
                "n_predict": (
                    self.settings.max_tokens if request.max_tokens is None else request.max_tokens
                ),
                "temperature": self._temperature(request),
                "cache_prompt": True,
                "stream": True,
            }
            try:
                chunks = self._stream("/infill", body, infill_text, request)
                first = next(chunks, None)
            except ServerError as exc:
                if exc.code not in (404, 405, 501):
                    raise
                self._infill = False
            else:
                self._infill = True
                if warm_up:
                    # A warm-up: llama-server still samples one token for `n_predict: 0`;
                    # the prompt is in its cache now, and the token is nobody's.
                    for _ in chunks:
                        pass
                    return
                if first is not None:
                    yield first
                yield from chunks
                return
        yield from emulated_infill(self, hole, request)


class _Cancelled(Exception):
    """The request was cancelled (or out of prompt time) before the server answered."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


class _Connection:
    """One streaming POST whose socket is shut down the moment `cancel` is set (or the prompt
    budget passes before the first byte)."""

    def __init__(
        self, model: RemoteModel, endpoint: str, body: dict[str, Any], request: Request
    ) -> None:
        self.model, self.endpoint, self.body = model, endpoint, body
        self.request, self.cancel = request, request.cancel
        self.prompt_s = request.prompt_s
        self.conn: http.client.HTTPConnection | None = None
        self.done = threading.Event()
        self.first_byte = threading.Event()
        self.finished = False
        """The server said `[DONE]`."""
        self.timed_out = False

    def open(self) -> http.client.HTTPResponse:
        model = self.model
        parts = model._parsed
        self.conn = model.connection()
        headers = model.headers(self.request)
        threading.Thread(target=self._watch, name="assist-remote-cancel", daemon=True).start()
        where = f"{model.url}{self.endpoint}"
        try:
            self.conn.request("POST", parts.path + self.endpoint, json.dumps(self.body), headers)
            response = self.conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if self.cancel.is_set():
                raise _Cancelled("cancel") from None
            if self.timed_out:
                raise _Cancelled("budget") from None
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise ServerGone(
                    f"the model server at {model.url}: its certificate is not trusted: {exc}",
                    "set SSL_CERT_FILE to a file of the CA certificates to trust",
                ) from None
            raise ServerGone(
                f"cannot reach the model server at {model.url}: {exc}",
                "start the server, or fix model.url / ASSIST_MODEL_URL",
            ) from None
        if response.status >= 400:
            detail = response.read(300).decode("utf-8", errors="replace").strip()
            raise ServerError(
                f"model server {where} answered HTTP {response.status}: {detail}",
                "check model.url and the server's log",
                response.status,
            )
        return response

    def _watch(self) -> None:
        # The server is told the budget too (llama-server and a model host stop reading at
        # it and say so); this deadline is for servers that ignore it.
        deadline = None if self.prompt_s is None else time.monotonic() + self.prompt_s + 0.1
        while not self.done.is_set():
            if self.cancel.wait(0.02):
                self._shut()
                return
            late = deadline is not None and time.monotonic() > deadline
            if late and not self.first_byte.is_set():
                self.timed_out = True
                self._shut()
                return

    def _shut(self) -> None:
        sock = self.conn.sock if self.conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.done.set()
        if self.conn is not None:
            self.conn.close()


def _events(
    response: http.client.HTTPResponse,
    pick: Callable[[Any], str],
    request: Request,
    connection: _Connection,
    report: Reporter,
) -> Iterator[str]:
    """The text of each server-sent event (one per generated token on llama-server).

    Besides text, a server may send how far it has read the prompt (`prompt_progress`, as
    llama-server does when asked and a model host always does), its own account of the request
    (`assist_stats`, from a model host) or an `error`; a comment line only keeps the
    connection alive while a host queues the request.
    """
    stats, cancel = request.stats, request.cancel
    try:
        for raw in response:
            if cancel.is_set():
                stats.stopped_by = "cancel"
                return
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                connection.finished = True
                return
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            if read_progress(event, stats):
                report()
                continue
            connection.first_byte.set()
            if isinstance(event.get("error"), dict):
                error = event["error"]
                raise AssistError(
                    str(error.get("message") or "the model server reported an error"),
                    str(error.get("hint") or "check the server's log"),
                )
            if isinstance(event.get("assist_stats"), dict):
                read_stats(event["assist_stats"], stats)
                continue
            usage = event.get("usage")
            if isinstance(usage, dict):
                stats.prompt_tokens = int(usage.get("prompt_tokens", 0) or 0)
            reason = finish_reason(event)
            text = pick(event)
            if text:
                yield text
            if reason == "length":
                stats.stopped_by = "length"
    except (OSError, http.client.HTTPException):
        if connection.timed_out:
            raise _Cancelled("budget") from None
        if not cancel.is_set():
            raise _cut_short() from None
    if cancel.is_set():
        stats.stopped_by = "cancel"
    elif connection.timed_out:
        # Our own prompt budget shut the socket: the read may end as if the stream had.
        raise _Cancelled("budget")
    elif connection.model.ends_with_done and not connection.finished:
        raise _cut_short()  # http.client ends a chunked stream cut short as if it were complete


def _with_grammar(body: dict[str, Any], grammar: str | None) -> dict[str, Any]:
    # llama-server (and llama-cpp-python's server) read GBNF from `grammar`; other servers
    # ignore the field, so the agent validates every call itself anyway.
    if grammar is not None:
        body["grammar"] = grammar
    return body
