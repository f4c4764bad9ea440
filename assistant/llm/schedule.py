"""Who runs next on a model, and who is cancelled: the one policy every runtime applies.

A local model runs one request at a time (a llama.cpp context is one sequence); a remote server
runs several, so a remote model admits at once and applies only the cancelling rules. The rules:

- A person waiting comes first: an explicit request pre-empts a running background completion
  (at its next prompt chunk or token) and waits ahead of every background one.
- Within a lane (one client), a newer request supersedes an older one of the same or lower
  priority, running or waiting: an editor that asked again after a keystroke no longer wants the
  old completion. A completion never supersedes the docstring its editor asked for; it waits.
- A warm-up runs only when nothing else runs or waits, and anything that arrives cancels it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from assistant.llm.protocol import Priority, Request

_RANK: dict[Priority, int] = {"explicit": 0, "background": 1, "idle": 2}


class Scheduler:
    def __init__(self, *, exclusive: bool = True, lane: str = "") -> None:
        self.exclusive = exclusive
        """One request at a time (a local model); otherwise only the cancelling rules."""
        self.lane = lane
        """The lane of requests that name none: a model's own callers are one client."""
        self._cond = threading.Condition()
        self._running: list[Request] = []
        self._waiting: list[Request] = []
        self._admitted = 0

    def admit(
        self, request: Request, *, on_tick: Callable[[], None] | None = None, tick_s: float = 1.0
    ) -> bool:
        """Block until `request` may use the model (True), or it is cancelled first (False).

        `on_tick` runs every `tick_s` while the request waits (a model host writes a
        keep-alive to its client then), outside the scheduler's lock.
        """
        begun = last_tick = time.monotonic()
        lane = request.lane or self.lane
        with self._cond:
            if request.cancel.is_set():
                return False  # cancelled before it arrived: it changes nothing
            busy = self._running or self._live_waiting()
            if request.priority == "idle" and busy:
                request.drop("busy")
                return False
            # Newer and older by when requests were made, not by when their threads got here.
            for other in (*self._running, *self._waiting) if lane else ():
                if (other.lane or self.lane) != lane:
                    continue
                if other.made < request.made and _RANK[other.priority] >= _RANK[request.priority]:
                    other.drop("superseded")
                elif other.made > request.made and _RANK[request.priority] >= _RANK[other.priority]:
                    request.drop("superseded")
                    return False
            for running in self._running:
                if _RANK[running.priority] > _RANK[request.priority]:
                    running.drop("pre-empted")
            self._waiting.append(request)
            self._cond.notify_all()
            try:
                while True:
                    if request.cancel.is_set():
                        return False
                    if self._may_run(request):
                        self._running.append(request)
                        self._admitted += 1
                        request.order = self._admitted
                        request.stats.wait_ms = (time.monotonic() - begun) * 1000
                        return True
                    # Short waits: a client leaving sets `cancel` without notifying.
                    self._cond.wait(0.02)
                    if on_tick is not None and time.monotonic() - last_tick >= tick_s:
                        last_tick = time.monotonic()
                        self._cond.release()
                        try:
                            on_tick()
                        finally:
                            self._cond.acquire()
            finally:
                if request in self._waiting:
                    self._waiting.remove(request)
                self._cond.notify_all()

    def release(self, request: Request) -> None:
        with self._cond:
            if request in self._running:
                self._running.remove(request)
            self._cond.notify_all()

    def running(self) -> list[Request]:
        with self._cond:
            return list(self._running)

    def _may_run(self, request: Request) -> bool:
        if self.exclusive and self._running:
            return False
        live = self._live_waiting()
        return min(live, key=lambda r: (_RANK[r.priority], r.seq)) is request

    def _live_waiting(self) -> list[Request]:
        return [r for r in self._waiting if not r.cancel.is_set()]
