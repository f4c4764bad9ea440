"""Who runs next on a model shared by several front-ends.

One request runs at a time (a llama.cpp context is one sequence). A person waiting comes first:
an explicit request pre-empts a background completion at its next prompt chunk or token, and
waits ahead of every background one. Within a lane (one client's model object), a newer request
supersedes an older one of the same or lower priority, running or waiting: an editor that asked
again after a keystroke no longer wants the old completion (but a completion does not cancel the
docstring its editor asked for). A warm-up runs only when nothing else does, and anything that
arrives cancels it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from assistant.llm.protocol import Priority

_RANK: dict[Priority, int] = {"explicit": 0, "background": 1, "idle": 2}
Dropped = Literal["", "superseded", "pre-empted", "busy", "gone"]
"""Why a request was cancelled by the scheduler (or by its client leaving: `gone`)."""
_order = itertools.count()


@dataclass(eq=False)
class Ticket:
    """One request's place: its priority, its lane and the event that cancels it."""

    priority: Priority
    lane: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    dropped: Dropped = ""
    seq: int = field(default_factory=lambda: next(_order))
    waited_ms: float = 0.0
    order: int = 0
    """Its place among the requests the scheduler let run (1 is the first)."""

    def drop(self, why: Dropped) -> None:
        if not self.cancel.is_set():
            self.dropped = why
            self.cancel.set()


class Scheduler:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: Ticket | None = None
        self._waiting: list[Ticket] = []
        self._admitted = 0

    def admit(
        self, ticket: Ticket, *, on_tick: Callable[[], None] | None = None, tick_s: float = 1.0
    ) -> bool:
        """Block until `ticket` may use the model (True), or it is cancelled first (False).

        `on_tick` runs every `tick_s` while the request waits (the host writes a keep-alive to
        its client then), outside the scheduler's lock.
        """
        begun = last_tick = time.monotonic()
        with self._cond:
            if ticket.priority == "idle" and (self._running or self._live_waiting()):
                ticket.drop("busy")
                return False
            if ticket.lane:
                for other in (self._running, *self._waiting):
                    if (other is not None and other.lane == ticket.lane
                            and _RANK[other.priority] >= _RANK[ticket.priority]):  # fmt: skip
                        other.drop("superseded")
            running = self._running
            if running is not None and _RANK[running.priority] > _RANK[ticket.priority]:
                running.drop("pre-empted")
            self._waiting.append(ticket)
            self._cond.notify_all()
            try:
                while True:
                    if ticket.cancel.is_set():
                        return False
                    if self._running is None and self._next() is ticket:
                        self._running = ticket
                        self._admitted += 1
                        ticket.order = self._admitted
                        ticket.waited_ms = (time.monotonic() - begun) * 1000
                        return True
                    # Short waits: a client leaving sets `cancel` without notifying.
                    self._cond.wait(0.05)
                    if on_tick is not None and time.monotonic() - last_tick >= tick_s:
                        last_tick = time.monotonic()
                        self._cond.release()
                        try:
                            on_tick()
                        finally:
                            self._cond.acquire()
            finally:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()

    def release(self, ticket: Ticket) -> None:
        with self._cond:
            if self._running is ticket:
                self._running = None
            self._cond.notify_all()

    def _live_waiting(self) -> list[Ticket]:
        return [t for t in self._waiting if not t.cancel.is_set()]

    def _next(self) -> Ticket | None:
        live = self._live_waiting()
        return min(live, key=lambda t: (_RANK[t.priority], t.seq)) if live else None
