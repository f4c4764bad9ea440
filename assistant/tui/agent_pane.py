"""One agent task in the conversation: its calls, approvals and results as they happen, then how
it ended. The widget owns the run: its state is the reactive `outcome`, and it tells the chat
pane it is done with a message (messages up, attributes down)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Markdown, Static

from assistant.agent.loop import (
    CallInvalid,
    CallMade,
    Decided,
    Event,
    Finished,
    StepStarted,
    Token,
    ToolResult,
)
from assistant.untrusted import visible

if TYPE_CHECKING:
    from assistant.agent.loop import Agent


def agent_line(event: Event) -> tuple[str, str] | None:
    """One line of the agent's log for `event` (None: not shown). Model text stays plain."""
    if isinstance(event, StepStarted):
        return f"step {event.step}", "dim"
    if isinstance(event, CallMade) and event.call.tool != "final":
        args = ", ".join(f"{k}={str(v)[:60]!r}" for k, v in event.call.args.items())
        return visible(f"{event.call.tool}({args})"), "bold cyan"
    if isinstance(event, CallInvalid):
        return visible(f"invalid call: {event.error}"), "yellow"
    if isinstance(event, Decided):
        return f"{event.answer}: {visible(event.request.summary)}", (
            "red" if event.answer == "no" else "green"
        )
    if isinstance(event, ToolResult):
        lines = visible(event.text).splitlines() or [""]
        more = f"\n… {len(lines) - 8} more lines" if len(lines) > 8 else ""
        undo = "\n(checkpointed: /undo reverts it)" if event.checkpoint is not None else ""
        return "\n".join(lines[:8]) + more + undo, "" if event.ok else "red"
    return None


class AgentPane(Vertical):
    """One `/agent TASK`, run on a worker of the app (whose one handler shows failures)."""

    outcome: reactive[str] = reactive("running")
    """`running`, then `Finished.reason`: `answer`, `step limit`, `stopped` or `error`."""

    class Done(Message):
        def __init__(self, pane: AgentPane) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, task: str, agent: Agent) -> None:
        super().__init__(classes="turn")
        self.agent_task = task
        self.agent = agent
        self.lines: list[str] = []
        self.result: Finished | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(("agent › ", "bold magenta"), self.agent_task), classes="question"
        )

    def start(self) -> None:
        self._app: App[Any] = self.app  # for the worker thread (see ChatPane.on_mount)
        self._app.run_worker(
            self._run, thread=True, group="agent", exclusive=True, exit_on_error=False
        )

    def _run(self) -> None:
        result = Finished("error", "the agent failed (see the notification)")
        try:
            for event in self.agent.run(self.agent_task):
                if isinstance(event, Finished):
                    result = event
                elif not isinstance(event, Token):  # the call being written: too chatty
                    self._later(self.show, event)
        finally:
            self._later(self.finish, result)

    def _later(self, callback: object, *args: object) -> None:
        if self._app.is_running:
            with contextlib.suppress(RuntimeError):  # the loop closed as the app quit
                self._app.call_from_thread(callback, *args)  # type: ignore[arg-type]

    def show(self, event: Event) -> None:
        line = agent_line(event)
        if line is not None:
            self.show_note(*line)

    def finish(self, result: Finished) -> None:
        self.result = result
        if self.is_attached:
            if result.reason == "answer":
                self.mount(Markdown(result.text or "*(empty answer)*", classes="answer"))
            else:
                self.show_note(f"agent {result.reason}: {result.text}", "yellow")
            style = "bold green" if result.reason == "answer" else "bold yellow"
            self.show_note(visible(result.summary("/undo")), style)
        self.outcome = result.reason
        self.post_message(self.Done(self))

    def show_note(self, text: str, style: str) -> None:
        self.lines.append(text)
        self.mount(Static(Text(text, style=style), classes="turn-note"))
