"""The same `Model` protocol over an OpenAI-compatible HTTP server.

Works with llama.cpp's `llama-server` (which also has a native `/infill` endpoint that applies
the model's FIM tokens server-side), llama-cpp-python's server, vLLM and Ollama. Where `/infill`
is missing, completions fall back to FIM emulation through the chat endpoint, as locally.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from assistant.chat_format import Message
from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.fim import ContextFile, trim_emulated
from assistant.model import GenerationStats, _Flight, _StopScanner, emulation_messages


class ServerError(AssistError):
    def __init__(self, message: str, hint: str, code: int) -> None:
        super().__init__(message, hint)
        self.code = code


class RemoteModel:
    def __init__(self, url: str, settings: ModelSettings) -> None:
        self.base = url.rstrip("/").removesuffix("/v1")
        self.settings = settings
        self.name = settings.remote_model or self.base
        self.last_stats = GenerationStats()
        self._infill: bool | None = None  # unknown until the server is asked
        self._flight = _Flight()

    @property
    def fim_mode(self) -> str:
        if self._infill is False:
            return "emulated (server has no /infill; chat prompt)"
        return "server /infill (the server applies the model's FIM tokens)"

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
        self, endpoint: str, body: dict[str, Any], pick: Any, cancel: threading.Event | None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:  # fmt: skip
        cancel = cancel or threading.Event()
        self._flight.begin(cancel)
        try:
            yield from self._events(endpoint, body, pick, cancel, stop)
        finally:
            self._flight.end(cancel)

    def _events(
        self, endpoint: str, body: dict[str, Any], pick: Any, cancel: threading.Event,
        stop: Sequence[str],
    ) -> Iterator[str]:  # fmt: skip
        request = urllib.request.Request(
            self.base + endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        if self.settings.api_key:
            request.add_header("Authorization", f"Bearer {self.settings.api_key}")
        stats = GenerationStats()
        self.last_stats = stats
        start = time.perf_counter()
        first: float | None = None
        scanner = _StopScanner(stop)
        try:
            response = urllib.request.urlopen(request, timeout=self.settings.timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", errors="replace").strip()
            raise ServerError(
                f"model server {self.base}{endpoint} answered HTTP {exc.code}: {detail}",
                "check model.url and the server's log",
                exc.code,
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AssistError(
                f"cannot reach the model server at {self.base}: {reason}",
                "start the server, or fix model.url / ASSIST_MODEL_URL",
            ) from None
        stats.stopped_by = "end"
        with response:
            for raw in response:
                if cancel.is_set():
                    stats.stopped_by = "cancel"
                    break
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and "usage" in event and event["usage"]:
                    stats.prompt_tokens = int(event["usage"].get("prompt_tokens", 0))
                text = pick(event)
                if not text:
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now
                    stats.prompt_ms = (now - start) * 1000
                stats.generation_ms = (now - first) * 1000
                stats.generated_tokens += 1
                out = scanner.feed(text)
                if out:
                    yield out
                if scanner.hit:
                    stats.stopped_by = "stop string"
                    break
        if not scanner.hit:
            rest = scanner.flush()
            if rest:
                yield rest

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        body = self._body(_with_grammar({"prompt": prompt}, grammar), max_tokens)
        return self._stream("/v1/completions", body, _completion_text, cancel, stop)

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        body = self._body(_with_grammar({"messages": payload}, grammar), max_tokens)
        return self._stream("/v1/chat/completions", body, _chat_text, cancel)

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        if self._infill is not False:
            body = {
                "input_prefix": prefix,
                "input_suffix": suffix,
                "input_extra": [{"filename": c.path, "text": c.text} for c in context],
                "n_predict": max_tokens or self.settings.max_tokens,
                "temperature": self.settings.temperature,
                "stream": True,
            }
            try:
                chunks = self._stream("/infill", body, _infill_text, cancel)
                first = next(chunks, None)
            except ServerError as exc:
                if exc.code not in (404, 405, 501):
                    raise
                self._infill = False
            else:
                self._infill = True
                return _chain(first, chunks)
        text = "".join(
            self.chat(
                emulation_messages(prefix, suffix, path, context),
                max_tokens=max_tokens,
                cancel=cancel,
            )
        )
        trimmed = trim_emulated(text, prefix, suffix)
        return iter([trimmed] if trimmed else [])


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


def _completion_text(event: Any) -> str:
    choices = event.get("choices") or [{}]
    return str(choices[0].get("text") or "")


def _chat_text(event: Any) -> str:
    choices = event.get("choices") or [{}]
    delta = choices[0].get("delta") or {}
    return str(delta.get("content") or "")


def _infill_text(event: Any) -> str:
    return str(event.get("content") or "")
