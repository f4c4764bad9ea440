"""Who runs next on a shared model: explicit first, superseded dropped, warm-ups only when idle.

Threads wait on the real scheduler; every wait is for an event, with a generous deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from assistant.llm.protocol import Request
from assistant.llm.schedule import Scheduler

DEADLINE = 60.0


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Waiter:
    """`admit` in a thread of its own; `admitted` says how it ended."""

    def __init__(self, scheduler: Scheduler, ticket: Request) -> None:
        self.ticket = ticket
        self.admitted: bool | None = None
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(scheduler,), daemon=True)
        self.thread.start()

    def _run(self, scheduler: Scheduler) -> None:
        self.admitted = scheduler.admit(self.ticket)
        self.finished.set()

    def result(self) -> bool | None:
        assert self.finished.wait(DEADLINE)
        return self.admitted


def queued(scheduler: Scheduler, n: int) -> None:
    wait_for(lambda: len(scheduler._waiting) == n)


def test_an_explicit_request_pre_empts_a_background_completion() -> None:
    s = Scheduler()
    background = Request(priority="background", lane="editor")
    assert s.admit(background)
    explicit = Waiter(s, Request(priority="explicit", lane="tui"))
    wait_for(background.cancel.is_set)
    assert background.dropped == "pre-empted"
    assert not explicit.finished.is_set()  # it waits for the model to be free
    s.release(background)
    assert explicit.result() is True


def test_a_background_completion_waits_behind_explicit_requests() -> None:
    s = Scheduler()
    first = Request(priority="explicit", lane="hook")
    assert s.admit(first)
    background = Waiter(s, Request(priority="background", lane="editor"))
    queued(s, 1)
    explicit = Waiter(s, Request(priority="explicit", lane="tui"))
    queued(s, 2)
    assert not first.cancel.is_set()  # explicit work is never pre-empted by anyone else
    s.release(first)
    assert explicit.result() is True
    assert not background.finished.is_set()
    s.release(explicit.ticket)
    assert background.result() is True


def test_a_newer_request_of_the_same_lane_supersedes_the_older() -> None:
    s = Scheduler()
    busy = Request(priority="explicit", lane="tui")
    assert s.admit(busy)
    old = Waiter(s, Request(priority="background", lane="editor"))
    queued(s, 1)
    new = Waiter(s, Request(priority="background", lane="editor"))
    assert old.result() is False
    assert old.ticket.dropped == "superseded"
    s.release(busy)
    assert new.result() is True
    # And a running one is superseded too (its client asked again).
    again = Waiter(s, Request(priority="background", lane="editor"))
    wait_for(new.ticket.cancel.is_set)
    assert new.ticket.dropped == "superseded"
    s.release(new.ticket)
    assert again.result() is True


def test_a_warm_up_runs_only_when_idle_and_gives_way() -> None:
    s = Scheduler()
    busy = Request(priority="background", lane="a")
    assert s.admit(busy)
    refused = Request(priority="idle", lane="a")
    assert s.admit(refused) is False
    assert refused.dropped == "busy"
    assert not busy.cancel.is_set()  # a warm-up of the same lane does not cancel real work
    s.release(busy)
    warm = Request(priority="idle", lane="b")
    assert s.admit(warm)
    request = Waiter(s, Request(priority="background", lane="c"))
    wait_for(warm.cancel.is_set)
    assert warm.dropped == "pre-empted"
    s.release(warm)
    assert request.result() is True


def test_a_client_that_leaves_while_queued_frees_its_place() -> None:
    s = Scheduler()
    busy = Request(priority="explicit")
    assert s.admit(busy)
    leaving = Waiter(s, Request(priority="explicit", lane="x"))
    queued(s, 1)
    leaving.ticket.drop("gone")
    assert leaving.result() is False
    assert not s._waiting
    s.release(busy)
    assert not s.running()


def test_keep_alive_ticks_while_waiting() -> None:
    s = Scheduler()
    busy = Request(priority="explicit")
    assert s.admit(busy)
    ticks = threading.Event()
    ticket = Request(priority="explicit", lane="x")
    thread = threading.Thread(
        target=s.admit, args=(ticket,), kwargs={"on_tick": ticks.set, "tick_s": 0.05}, daemon=True
    )
    thread.start()
    assert ticks.wait(DEADLINE)
    s.release(busy)
    thread.join(DEADLINE)
    assert not thread.is_alive()


def test_a_completion_does_not_supersede_an_explicit_request_of_its_lane() -> None:
    s = Scheduler()
    docstring = Request(priority="explicit", lane="editor")
    assert s.admit(docstring)
    completion = Waiter(s, Request(priority="background", lane="editor"))
    queued(s, 1)
    assert not docstring.cancel.is_set()
    s.release(docstring)
    assert completion.result() is True


def test_newer_means_made_later_not_arrived_later() -> None:
    """An editor's two keystrokes: the older request's thread may reach the scheduler after
    the newer one's; it is the one superseded, and it cancels nothing."""
    s = Scheduler()
    older = Request(priority="background", lane="editor")
    newer = Request(priority="background", lane="editor")
    assert s.admit(newer)
    assert s.admit(older) is False
    assert older.dropped == "superseded" and not newer.cancelled
    # A request already cancelled when it arrives changes nothing either.
    s.release(newer)
    gone = Request(priority="explicit", lane="editor")
    gone.cancel.set()
    runner = Request(priority="background", lane="editor")
    assert s.admit(runner)
    assert s.admit(gone) is False and not runner.cancelled


def test_a_models_own_callers_are_one_lane() -> None:
    s = Scheduler(lane="in-process")
    first = Request(priority="explicit")
    assert s.admit(first)
    second = Waiter(s, Request(priority="explicit"))
    wait_for(first.cancel.is_set)  # the newer request of the one client supersedes it
    s.release(first)
    assert second.result() is True
