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
from assistant.llm.protocol import Budget, FimKind, GenerationStats, Progress, StopReason
from assistant.llm.streaming import Flight, Reporter, relay

CHARS_PER_TOKEN = 3.5
"""Estimate of a server's tokenizer: code averages 3–4 characters a token."""


class ServerError(AssistError):
    def __init__(self, message: str, hint: str, code: int) -> None:
        super().__init__(message, hint)
        self.code = code


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
        background: bool = False,
    ) -> Iterator[str]:
        cancel = cancel or threading.Event()
        if background:
            if not self._flight.begin_idle(cancel):
                return  # a warm-up never pre-empts a request
        else:
            self._flight.begin(cancel)
        try:
            stats = GenerationStats()
            self.last_stats = stats
            report = Reporter(stats, progress)
            started = time.perf_counter()
            connection = _Connection(self, endpoint, body, cancel, budget)
            try:
                response = connection.open()
                pieces = _events(response, pick, stats, cancel, connection)
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
            "/v1/completions", body, _completion_text, cancel, stop=stop, progress=progress,
            budget=budget,
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
            "/v1/chat/completions", body, _chat_text, cancel, progress=progress, budget=budget
        )

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
                "n_predict": self.settings.max_tokens if max_tokens is None else max_tokens,
                "temperature": self.settings.temperature,
                "cache_prompt": True,
                "stream": True,
            }
            try:
                chunks = self._stream(
                    "/infill", body, _infill_text, cancel, progress=progress, budget=budget,
                    background=max_tokens == 0,
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
    ) -> None:
        self.model, self.endpoint, self.body, self.cancel = model, endpoint, body, cancel
        self.prompt_s = budget.prompt_s if budget else None
        self.conn: http.client.HTTPConnection | None = None
        self.done = threading.Event()
        self.first_byte = threading.Event()
        self.timed_out = False

    def open(self) -> http.client.HTTPResponse:
        model = self.model
        parts = model._parsed
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(parts.hostname or "", parts.port, timeout=model.settings.timeout)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if model.settings.api_key:
            headers["Authorization"] = f"Bearer {model.settings.api_key}"
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
            raise AssistError(
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
) -> Iterator[str]:
    """The text of each server-sent event (one per generated token on llama-server)."""
    try:
        for raw in response:
            connection.first_byte.set()
            if cancel.is_set():
                stats.stopped_by = "cancel"
                return
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            usage = event.get("usage")
            if isinstance(usage, dict):
                stats.prompt_tokens = int(usage.get("prompt_tokens", 0) or 0)
            reason = _finish_reason(event)
            text = pick(event)
            if text:
                yield text
            if reason == "length":
                stats.stopped_by = "length"
    except (OSError, http.client.HTTPException):
        if connection.timed_out:
            raise _Cancelled("budget") from None
        if not cancel.is_set():
            raise AssistError(
                "the model server closed the connection mid-answer",
                "check the server's log",
            ) from None
    if cancel.is_set():
        stats.stopped_by = "cancel"


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


def _finish_reason(event: dict[str, Any]) -> str:
    choices = event.get("choices") or [{}]
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return str(choices[0].get("finish_reason") or "")
    return "length" if event.get("stopped_limit") else ""


def _completion_text(event: Any) -> str:
    choices = event.get("choices") or [{}]
    return str(choices[0].get("text") or "")


def _chat_text(event: Any) -> str:
    choices = event.get("choices") or [{}]
    delta = choices[0].get("delta") or {}
    return str(delta.get("content") or "")


def _infill_text(event: Any) -> str:
    return str(event.get("content") or "")
