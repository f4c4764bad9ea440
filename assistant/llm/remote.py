"""The same `Model` protocol over an OpenAI-compatible HTTP server.

Works with llama.cpp's `llama-server` (which also has a native `/infill` endpoint that applies
the model's FIM tokens server-side), llama-cpp-python's server, vLLM and Ollama. Where `/infill`
is missing, completions fall back to FIM emulation through the chat endpoint, as locally.

A cancelled request closes its connection at once, even while the server is still reading the
prompt and has sent nothing: a thread waits on the cancel event and shuts the socket down, which
wakes the blocked read (and tells llama-server to stop working on it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.emulation import emulated_infill
from assistant.llm.fim import ContextFile
from assistant.llm.protocol import (
    Budget,
    FimKind,
    GenerationStats,
    Priority,
    Progress,
    StopReason,
    priority_of,
)
from assistant.llm.server_events import (
    chat_text,
    completion_text,
    finish_reason,
    infill_text,
    read_progress,
    read_stats,
)
from assistant.llm.streaming import Flight, Reporter, relay

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
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AssistError(
                f"model.url {url!r} is not an http(s) URL",
                "set it like http://127.0.0.1:8080 (the server's base URL)",
            )
        self.url = url.rstrip("/").removesuffix("/v1")
        self._parsed = urllib.parse.urlsplit(self.url)
        self.settings = settings
        self.name = settings.remote_model or self.url
        self.last_stats = GenerationStats()
        self._infill: bool | None = None  # unknown until the server is asked
        self._flight = Flight()
        self.ends_with_done = False
        """The server always ends a stream with `[DONE]` (a model host does), so a stream
        without it was cut short."""
        self.lane = f"{os.getpid()}-{id(self):x}"
        """Names this client to a shared model host, whose newer request supersedes its older."""

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the server (a model host's is a Unix socket)."""
        parts = self._parsed
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        return cls(parts.hostname or "", parts.port, timeout=self.settings.timeout)

    def headers(self, priority: Priority) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        # Read by a model host (llm/host.py); other servers ignore unknown headers.
        headers["X-Assist-Priority"] = priority
        headers["X-Assist-Lane"] = self.lane
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

    def _body(self, extra: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": max_tokens or self.settings.max_tokens,
            "temperature": self.settings.temperature,
            "stream": True,
        }
        if self.settings.remote_model:
            body["model"] = self.settings.remote_model
        body.update(extra)
        return body

    def _stream(
        self,
        endpoint: str,
        body: dict[str, Any],
        pick: Callable[[Any], str],
        cancel: threading.Event | None,
        *,
        stop: Sequence[str] = (),
        progress: Progress | None = None,
        budget: Budget | None = None,
        priority: Priority = "explicit",
    ) -> Iterator[str]:
        cancel = cancel or threading.Event()
        if priority == "idle":
            if not self._flight.begin_idle(cancel):
                return  # a warm-up never pre-empts a request
        else:
            self._flight.begin(cancel)
        try:
            stats = GenerationStats()
            self.last_stats = stats
            report = Reporter(stats, progress)
            started = time.perf_counter()
            connection = _Connection(self, endpoint, body, cancel, budget, priority)
            try:
                response = connection.open()
                pieces = _events(response, pick, stats, cancel, connection, report)
                yield from relay(
                    pieces, stats, started=started, stop=stop, cancel=cancel,
                    generate_s=budget.generate_s if budget else None, report=report,
                )  # fmt: skip
            except _Cancelled as why:
                stats.stopped_by = why.reason
            finally:
                connection.close()
        finally:
            self._flight.end(cancel)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        if max_tokens == 0:
            return iter(())  # an OpenAI-style server has no warm-up request
        body = self._body(_with_grammar({"prompt": prompt}, grammar), max_tokens)
        return self._stream(
            "/v1/completions", body, completion_text, cancel, stop=stop, progress=progress,
            budget=budget, priority=priority_of(max_tokens, budget),
        )  # fmt: skip

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        if max_tokens == 0:
            return iter(())
        payload = [{"role": m.role, "content": m.content} for m in messages]
        body = self._body(_with_grammar({"messages": payload}, grammar), max_tokens)
        return self._stream(
            "/v1/chat/completions", body, chat_text, cancel, progress=progress, budget=budget,
            priority=priority_of(max_tokens, budget),
        )  # fmt: skip

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        if max_tokens == 0 and self._infill is not True:
            return iter(())  # warm only a server known to cache `/infill` prompts
        if self._infill is not False:
            body = {
                "input_prefix": prefix,
                "input_suffix": suffix,
                "input_extra": [{"filename": c.path, "text": c.text} for c in context],
                "path": path,
                "n_predict": self.settings.max_tokens if max_tokens is None else max_tokens,
                "temperature": self.settings.temperature,
                "cache_prompt": True,
                "stream": True,
            }
            try:
                chunks = self._stream(
                    "/infill", body, infill_text, cancel, progress=progress, budget=budget,
                    priority=priority_of(max_tokens, budget),
                )  # fmt: skip
                first = next(chunks, None)
            except ServerError as exc:
                if exc.code not in (404, 405, 501):
                    raise
                self._infill = False
            else:
                self._infill = True
                if max_tokens == 0:
                    # A warm-up: llama-server still samples one token for `n_predict: 0`;
                    # the prompt is in its cache now, and the token is nobody's.
                    for _ in chunks:
                        pass
                    return iter(())
                return _chain(first, chunks)
        return emulated_infill(
            self, prefix, suffix, path=path, context=context, max_tokens=max_tokens,
            cancel=cancel, progress=progress, budget=budget,
        )  # fmt: skip


class _Cancelled(Exception):
    """The request was cancelled (or out of prompt time) before the server answered."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


class _Connection:
    """One streaming POST whose socket is shut down the moment `cancel` is set (or the prompt
    budget passes before the first byte)."""

    def __init__(
        self,
        model: RemoteModel,
        endpoint: str,
        body: dict[str, Any],
        cancel: threading.Event,
        budget: Budget | None,
        priority: Priority,
    ) -> None:
        self.model, self.endpoint, self.body, self.cancel = model, endpoint, body, cancel
        self.priority = priority
        self.prompt_s = budget.prompt_s if budget else None
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
        headers = model.headers(self.priority)
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
        deadline = None if self.prompt_s is None else time.monotonic() + self.prompt_s
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
    stats: GenerationStats,
    cancel: threading.Event,
    connection: _Connection,
    report: Reporter,
) -> Iterator[str]:
    """The text of each server-sent event (one per generated token on llama-server).

    Besides text, a server may send how far it has read the prompt (`prompt_progress`, as
    llama-server does when asked and a model host always does), its own account of the request
    (`assist_stats`, from a model host) or an `error`; a comment line only keeps the
    connection alive while a host queues the request.
    """
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
    elif connection.model.ends_with_done and not connection.finished:
        raise _cut_short()  # http.client ends a chunked stream cut short as if it were complete


def _with_grammar(body: dict[str, Any], grammar: str | None) -> dict[str, Any]:
    # llama-server (and llama-cpp-python's server) read GBNF from `grammar`; other servers
    # ignore the field, so the agent validates every call itself anyway.
    if grammar is not None:
        body["grammar"] = grammar
    return body


def _chain(first: str | None, rest: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
    yield from rest
