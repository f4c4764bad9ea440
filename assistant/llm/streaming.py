"""The streaming loop both runtimes share: stop strings, cancel, the token limit and live stats.

A runtime turns its own output (llama.cpp tokens, server-sent events) into one text piece per
generated token and hands them to `relay`; everything a caller sees of a stream is decided here
once, from the request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

from assistant.llm.protocol import Request

PROGRESS_EVERY_S = 0.1
"""At most this often a running stream reports to its `progress` callback."""


class StopScanner:
    """Holds back streamed text that might be the start of a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit = False

    def feed(self, text: str) -> str:
        self.pending += text
        for stop in self.stops:
            idx = self.pending.find(stop)
            if idx >= 0:
                self.hit = True
                out, self.pending = self.pending[:idx], ""
                return out
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class Reporter:
    """Tells the request's `progress` how it goes, at most every `PROGRESS_EVERY_S` (and at
    the end)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.last = 0.0

    def __call__(self, *, force: bool = False) -> None:
        if self.request.progress is None:
            return
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.request.report()


def relay(
    pieces: Iterable[str],
    request: Request,
    *,
    started: float,
    max_tokens: int | None = None,
    report: Reporter | None = None,
) -> Iterator[str]:
    """Text to the caller from one piece per generated token, until a stop string, the token
    limit, the request's writing time, or cancel; its stats are kept current. A source that
    ends by itself sets `stopped_by` first (`stop token`, `end`, `length`), else it reads
    `end`."""
    stats, cancel, generate_s = request.stats, request.cancel, request.generate_s
    scanner = StopScanner(request.stop)
    first: float | None = None
    report = report or Reporter(request)
    try:
        for piece in pieces:
            now = time.perf_counter()
            if first is None:
                first = now
                stats.prompt_ms = (now - started) * 1000
                stats.prompt_done = stats.prompt_tokens
                stats.phase = "generate"
            stats.generation_ms = (now - first) * 1000
            stats.generated_tokens += 1
            text = scanner.feed(piece)
            if text:
                yield text
            if scanner.hit:
                stats.stopped_by = "stop string"
                return
            if cancel.is_set():
                stats.stopped_by = "cancel"
                return
            if max_tokens is not None and stats.generated_tokens >= max_tokens:
                stats.stopped_by = "length"
                break
            if generate_s is not None and now - first >= generate_s:
                stats.stopped_by = "budget"
                break
            report()
        else:
            if cancel.is_set() and not stats.stopped_by:
                stats.stopped_by = "cancel"
            stats.stopped_by = stats.stopped_by or "end"
        rest = scanner.flush()
        if rest:
            yield rest
    finally:
        report(force=True)
