"""Agent mode: the model calls tools step by step until it gives a final answer.

Each step, the model writes one tool call under a grammar built from the tool definitions (so
even a small local model produces a call that parses). The call is validated; an invalid one goes
back to the model as an error message. Reading tools run at once; edits and commands go through
the front-end's `approve` callback first, showing the exact diff or command, and every step that
changed files is checkpointed in git (see `checkpoints.py`) so it can be undone.

The loop is a generator of events, so any front-end (CLI, TUI worker thread) can show progress;
it ends on a final answer, the step limit, an error, or the cancel event (the stop key).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from assistant.agent.calls import (
    STRING_LIMIT,
    TOOLS,
    InvalidCall,
    ToolCall,
    describe_tools,
    grammar,
    max_call_tokens,
    parse_call,
)
from assistant.agent.checkpoints import Checkpoint, Checkpoints
from assistant.agent.toolbox import Action, ApprovalRequest, Toolbox
from assistant.errors import AssistError
from assistant.llm import prompts
from assistant.llm.chat_templates import Message
from assistant.llm.protocol import Model, Request
from assistant.repo.vetted import Vetted
from assistant.workspace import Workspace

Answer = Literal["yes", "no", "always"]
Approver = Callable[[ApprovalRequest], str]
"""Shows the request and returns "yes", "no" or "always" (for this tool, this session)."""
KEEP_FULL_RESULTS = 3
"""Older tool results are shortened in the prompt, so that long sessions still fit."""
_SHORTENED = Vetted.label("\n[shortened: older result]")


@dataclass(frozen=True)
class StepStarted:
    step: int


@dataclass(frozen=True)
class Token:
    """Model output as it streams (the call being written)."""

    text: str


@dataclass(frozen=True)
class CallMade:
    step: int
    call: ToolCall


@dataclass(frozen=True)
class CallInvalid:
    step: int
    error: str
    raw: str


@dataclass(frozen=True)
class Decided:
    step: int
    request: ApprovalRequest
    answer: Literal["yes", "no", "always", "auto"]
    """`auto`: approved in advance (`--yes`, the config key, or an earlier "always")."""


@dataclass(frozen=True)
class ToolResult:
    step: int
    call: ToolCall
    text: str
    ok: bool
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True)
class Finished:
    reason: Literal["answer", "step limit", "stopped", "error"]
    text: str
    steps: int = 0
    changed: tuple[str, ...] = ()
    """Files the run changed (the start checkpoint against the last)."""
    undo_steps: int = 0
    """Checkpointed steps: how many undos take the files back to where the run began."""

    def summary(self, undo_hint: str) -> str:
        """The run's last line: outcome, steps, files changed, how to undo."""
        outcome = {"answer": "finished", "step limit": "stopped at the step limit",
                   "stopped": "stopped by you", "error": "failed"}[self.reason]  # fmt: skip
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        if not self.changed:
            return f"agent {outcome} · {steps} · no files changed"
        files = ", ".join(self.changed[:3]) + (
            f" +{len(self.changed) - 3}" if len(self.changed) > 3 else ""
        )
        times = "once" if self.undo_steps == 1 else f"{self.undo_steps} times"
        return (
            f"agent {outcome} · {steps} · {len(self.changed)} file"
            f"{'s' if len(self.changed) != 1 else ''} changed ({files}) · undo: {undo_hint} {times}"
        )


Event = StepStarted | Token | CallMade | CallInvalid | Decided | ToolResult | Finished


@dataclass
class Agent:
    """One agent session on a workspace; `run` it once per task. "always" answers last for the
    session (this object), never across sessions."""

    ws: Workspace
    approve: Approver | None
    """None: nothing that needs approval runs (unless auto_approve)."""
    model: Model | None = None
    auto_approve: bool | None = None
    max_steps: int | None = None
    text_limit: int = 8000
    string_limit: int = STRING_LIMIT
    cancel: threading.Event = field(default_factory=threading.Event)
    always: set[str] = field(default_factory=set)
    _checkpoints: Checkpoints | None = None

    def __post_init__(self) -> None:
        settings = self.ws.settings.agent
        if self.auto_approve is None:
            self.auto_approve = settings.auto_approve
        if self.max_steps is None:
            self.max_steps = settings.max_steps
        self.toolbox = Toolbox(
            self.ws, output_limit=settings.output_limit, command_timeout=settings.command_timeout
        )
        self.grammar = grammar(TOOLS, text_limit=self.text_limit, string_limit=self.string_limit)
        self.call_budget = max_call_tokens(
            TOOLS, text_limit=self.text_limit, string_limit=self.string_limit
        )

    @property
    def checkpoints(self) -> Checkpoints:
        if self._checkpoints is None:
            self._checkpoints = Checkpoints(self.ws.root)
        return self._checkpoints

    def run(self, task: str) -> Iterator[Event]:
        """The task's events; the last is always a `Finished` with the run's counts."""
        steps, undo = 0, 0
        start: Checkpoint | None = None  # the files before the run's first change
        for event in self._run(task):
            if isinstance(event, StepStarted):
                steps = event.step
            elif isinstance(event, ToolResult) and event.checkpoint is not None:
                undo += 1
                if start is None:
                    start = self.checkpoints.load(
                        event.checkpoint.parent or event.checkpoint.commit
                    )
            elif isinstance(event, Finished):
                changed: tuple[str, ...] = ()
                if start is not None and undo:
                    changed = tuple(self.checkpoints.changed_since(start))
                yield Finished(event.reason, event.text, steps, changed, undo)
                return
            yield event

    def _run(self, task: str) -> Iterator[Event]:
        model = self.model or self.ws.model
        messages = [
            Message(
                "system",
                prompts.render("agent_system", tools=Vetted.label(describe_tools(TOOLS))),
            ),
            Message("user", prompts.render("agent_task", task=Vetted.from_user(task))),
        ]
        started = False
        previous = ""
        for step in range(1, (self.max_steps or 1) + 1):
            if self.cancel.is_set():
                yield Finished("stopped", "stopped by the user")
                return
            yield StepStarted(step)
            raw = ""
            try:
                request = Request(
                    max_tokens=self.call_budget, cancel=self.cancel, grammar=self.grammar
                )
                for piece in model.chat(_compact(messages), request):
                    raw += piece
                    yield Token(piece)
            except AssistError as exc:
                yield Finished("error", f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
                return
            if self.cancel.is_set():
                yield Finished("stopped", "stopped by the user")
                return
            try:
                call = parse_call(raw, TOOLS)
            except InvalidCall as exc:
                yield CallInvalid(step, str(exc), raw)
                error = Vetted.label(str(exc))
                messages += [
                    Message("assistant", Vetted.from_model(raw)),
                    Message("user", prompts.render("agent_invalid_call", error=error)),
                ]
                continue
            yield CallMade(step, call)
            if call.tool == "final":
                yield Finished("answer", call.text("answer"))
                return
            said = json.dumps({"tool": call.tool, "args": call.args})
            messages.append(Message("assistant", Vetted.from_model(said)))
            if said == previous:  # small models loop; the result would be the same
                note = "error: you just made this exact call; its result is above"
                yield ToolResult(step, call, note, False)
                messages.append(Message("user", _result(call, Vetted.label(note))))
                continue
            previous = said
            events, reply, started = self._step(step, call, started, task)
            yield from events
            messages.append(Message("user", reply))
        yield Finished("step limit", f"stopped after {self.max_steps} steps without a final answer")

    def _step(
        self, step: int, call: ToolCall, started: bool, task: str
    ) -> tuple[list[Event], Vetted, bool]:
        """Prepare, approve and run one call: (events, the reply for the model, started)."""
        events: list[Event] = []
        try:
            action = self.toolbox.prepare(call)
        except AssistError as exc:
            events.append(ToolResult(step, call, exc.message, False))
            return events, self._error(call, exc), started
        if action.request is not None:
            answer = self._decide(action.request)
            events.append(Decided(step, action.request, answer))
            if answer == "no":
                why = "it needs your approval" if self.approve is None else "declined"
                text = prompts.render(
                    "agent_declined", tool=Vetted.from_model(call.tool), why=Vetted.label(why)
                )
                events.append(ToolResult(step, call, f"declined: {action.request.summary}", False))
                return events, text, started
            try:
                if not started:
                    self.checkpoints.begin(task)
                    started = True
            except AssistError as exc:
                events.append(ToolResult(step, call, exc.message, False))
                return events, self._error(call, exc), started
        text, ok = self._execute(action)
        checkpoint = None
        if action.request is not None:
            checkpoint = self.checkpoints.record(f"{call.tool}: {action.request.summary}")
        events.append(ToolResult(step, call, text, ok, checkpoint))
        return events, _result(call, text), started

    def _decide(self, request: ApprovalRequest) -> Literal["yes", "no", "always", "auto"]:
        if request.sensitive:
            # Never approved in advance: the user must see this very write.
            if self.approve is None:
                return "no"
            return "yes" if self.approve(request) in ("yes", "always") else "no"
        if self.auto_approve or request.tool in self.always:
            return "auto"
        if self.approve is None:
            return "no"
        answer = self.approve(request)
        if answer == "always":
            self.always.add(request.tool)
            return "always"
        return "yes" if answer == "yes" else "no"

    def _execute(self, action: Action) -> tuple[Vetted, bool]:
        """The action's result as the model reads it; an error's text is vetted too (it may
        quote a file)."""
        try:
            return action.run(self.cancel), True
        except AssistError as exc:  # ToolError included
            return self.ws.vet_output(f"error: {exc.message}"), False
        except OSError as exc:
            return self.ws.vet_output(f"error: {exc.strerror or exc}"), False

    def _error(self, call: ToolCall, exc: AssistError) -> Vetted:
        return _result(call, self.ws.vet_output(f"error: {exc.message}"))


def _result(call: ToolCall, text: Vetted) -> Vetted:
    return prompts.render("agent_tool_result", tool=Vetted.from_model(call.tool), result=text)


def _compact(messages: list[Message]) -> list[Message]:
    """The prompt with all but the last few tool results cut short."""
    results = [i for i, m in enumerate(messages) if m.role == "user" and i >= 2]
    old = set(results[:-KEEP_FULL_RESULTS])
    out = []
    for i, m in enumerate(messages):
        if i in old and len(m.content) > 400:
            m = Message(m.role, m.content[:400] + _SHORTENED)
        out.append(m)
    return out
