"""Idle-time cache warming: when the editor goes quiet (a file opened, a pause in typing), the
completion engine grows the window at the last cursor a step, or chooses the file's context
ring, and reads it into the model's cache in the background; steps follow one another while the
editor stays quiet, so the next keystroke pays only for what changed.

A warm-up never pre-empts a request (the model's scheduler refuses it while one runs or waits)
and any request cancels it within one prompt chunk.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from assistant.errors import AssistError

if TYPE_CHECKING:
    from lsp.server import AssistServer

log = logging.getLogger("assist.lsp")


def did_open(ls: AssistServer, params: types.DidOpenTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_change(ls: AssistServer, params: types.DidChangeTextDocumentParams) -> None:
    schedule(ls, params.text_document.uri)


def did_close(ls: AssistServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.cursors.pop(params.text_document.uri, None)


NEXT_STEP_S = 0.02
"""Pause between warm-up steps while the editor stays quiet."""


def schedule(ls: AssistServer, uri: str, delay: float | None = None) -> None:
    """(Re)start the idle timer: the warm-up runs once the editor has been quiet long enough.
    Must run on the event loop."""
    engine = ls.engine
    if ls.loop is None or engine is None:
        return
    if ls.warm_timer is not None:
        ls.warm_timer.cancel()
    idle_s = engine.settings.idle_ms / 1000 if delay is None else delay
    ls.warm_timer = ls.loop.call_later(idle_s, _start, ls, uri)


def _start(ls: AssistServer, uri: str) -> None:
    ls.warm_timer = None
    engine, loop = ls.engine, ls.loop
    if engine is None or loop is None or ls.stopping.is_set():
        return
    if ls.inflight:
        return  # busy: the request's end schedules the next warm-up
    doc = ls.workspace.text_documents.get(uri)
    path = to_fs_path(uri)
    if doc is None or path is None:
        return
    text = doc.source
    line, col = ls.cursors.get(uri, (0, 0))
    lines = text.split("\n")
    line = min(line, len(lines) - 1)
    col = min(col, len(lines[line]))
    cancel = threading.Event()
    ls.warming = cancel

    def run() -> None:
        try:
            done = engine.warm(path, text, line, col, cancel=cancel)
        except AssistError as exc:
            log.info("no warm-up for %s: %s", uri, exc.message)
            return
        except Exception:  # a warm-up is an optimisation: log it, never let it go unseen
            log.exception("warm-up for %s failed", uri)
            return
        if done is None:
            return
        stats = done.stats
        log.info(
            "warmed %s:%d: %s, %d prompt tokens: reused %d, shifted %d, read %d, %.0f ms%s",
            path, line + 1, done.what, stats.prompt_tokens, stats.cached_tokens,
            stats.shifted_tokens, stats.read_tokens, stats.prompt_ms,
            "" if stats.stopped_by == "length" else " (stopped)",
        )  # fmt: skip
        if done.more and not cancel.is_set():
            ls.notify_later(lambda: _next_step(ls, uri))

    loop.run_in_executor(None, run)


def _next_step(ls: AssistServer, uri: str) -> None:
    """Another step at once, unless the editor spoke meanwhile (its own timer is running)."""
    if ls.warm_timer is None and not ls.inflight:
        schedule(ls, uri, NEXT_STEP_S)


def stop(ls: AssistServer) -> None:
    """Cancel the timer and any warm-up (shutdown)."""
    if ls.warm_timer is not None:
        ls.warm_timer.cancel()
        ls.warm_timer = None
    if ls.warming is not None:
        ls.warming.set()
