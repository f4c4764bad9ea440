"""What the language server tells the editor while work runs: `$/progress` for indexing (then
the watcher keeps the index fresh) and for a long request the user asked for."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from assistant.errors import AssistError
from assistant.index.progress import duration
from assistant.llm.protocol import GenerationStats

if TYPE_CHECKING:
    from lsp.server import AssistServer

log = logging.getLogger("assist.lsp")


class LongRequestProgress:
    """`$/progress` for a request the user asked for, shown once it has taken a second (what
    the model is doing: reading the prompt, writing); quicker requests show nothing."""

    AFTER_S = 1.0

    def __init__(self, ls: AssistServer, title: str) -> None:
        self.ls = ls
        self.title = title
        self.started = time.monotonic()
        self.token = f"assist-{id(self)}"
        caps = ls.client_capabilities.window
        self.supported = bool(caps and caps.work_done_progress)
        self.asked = False
        self.begun = False
        self.ended = False
        self.task: asyncio.Future[None] | None = None

    def report(self, stats: GenerationStats) -> None:
        """From the model's thread."""
        if not self.supported or time.monotonic() - self.started < self.AFTER_S:
            return
        message = stats.describe()
        if not self.asked:
            self.asked = True

            def begin() -> None:
                self.task = asyncio.ensure_future(self._begin(message))

            self.ls.notify_later(begin)
        elif self.begun:
            report = types.WorkDoneProgressReport(message=message)
            self.ls.notify_later(lambda: self.ls.work_done_progress.report(self.token, report))

    async def _begin(self, message: str) -> None:
        try:
            await self.ls.work_done_progress.create_async(self.token)
        except (JsonRpcException, asyncio.CancelledError) as exc:
            log.info("client refused a progress token: %s", exc)
            return
        if self.ended:
            return  # the request finished while the client answered
        begin = types.WorkDoneProgressBegin(title=self.title, message=message)
        self.ls.work_done_progress.begin(self.token, begin)
        self.begun = True

    def end(self) -> None:
        """On the event loop, when the request is done."""
        self.ended = True
        if self.begun:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd())


def index_then_watch(ls: AssistServer, token: str | None) -> None:
    """Bring the index up to date with `$/progress`, then keep it fresh (a worker thread)."""
    from assistant.index.indexer import IndexReport
    from assistant.index.progress import Progress

    ws = ls.ws
    assert ws is not None
    progress = ls.work_done_progress
    last = [-1]

    def send(item: Progress) -> None:
        pct = int(100 * item.done / item.total) if item.total else 0
        if token is None or pct == last[0]:
            return
        last[0] = pct
        report = types.WorkDoneProgressReport(message=item.describe(), percentage=pct)
        ls.notify_later(lambda: progress.report(token, report))

    message = ["index up to date"]

    def indexed(report: IndexReport) -> None:
        message[0] = (
            f"indexed: {report.parsed} parsed, {len(report.skipped)} skipped "
            f"in {duration(report.seconds)}"
        )

    if token is not None:
        begin = types.WorkDoneProgressBegin(title="assist: indexing", percentage=0)
        ls.notify_later(lambda: progress.begin(token, begin))
    try:
        ls.watcher = ws.keep_fresh(on_progress=send, on_indexed=indexed, cancel=ls.stopping)
    except AssistError as exc:
        message[0] = f"indexing failed: {exc.message}"
        ls.warn_once(f"assist: {exc.message} ({exc.hint})")
    finally:
        if token is not None:
            end = types.WorkDoneProgressEnd(message=message[0])
            ls.notify_later(lambda: progress.end(token, end))
