"""Agent mode in the TUI: `/agent TASK` runs `Agent` on a worker; `/undo`, `/redo` its checkpoints.

A mixin of `AssistApp`: the agent shares the chat's cancel event and busy flag, so Esc stops it and
a question waits for it.
"""

from __future__ import annotations

import contextlib
import queue

from textual import work

from assistant.agent.checkpoints import Checkpoints, Restored
from assistant.agent.loop import Agent, Finished, Token
from assistant.agent.toolbox import ApprovalRequest
from assistant.errors import AssistError
from assistant.tui.approval import ApprovalScreen
from assistant.tui.host import AppHost
from assistant.tui.views import AgentView, ChatView


class AgentMode(AppHost):
    """`/agent`, the approval prompt, `/undo` and `/redo`."""

    agent: Agent | None

    async def start_agent(self, task: str) -> None:
        if self.ws is None:
            self.notify_error(self.open_error or AssistError("no repository", "restart assist"))
            return
        if not task:
            self.notify_error(AssistError("no task given", "type /agent and what to do"))
            return
        if self.busy:
            self.notify("still working: Esc stops it", severity="warning")
            return
        if self.agent is None:
            self.agent = Agent(self.ws, self.approve_in_worker)
        self.agent.cancel.clear()
        self.cancel = self.agent.cancel  # Esc (action_stop) sets it
        self.busy = "agent"
        view = AgentView(task)
        await self.query_one(ChatView).add(view)
        self.notify("agent mode: each change waits for your y / n / a; Esc stops", timeout=4)
        self.run_agent(self.agent, task, view)

    @work(thread=True, exclusive=True, group="agent", exit_on_error=False)
    def run_agent(self, agent: Agent, task: str, view: AgentView) -> None:
        """A failure (the model cannot be loaded) reaches the app's worker handler."""
        result = Finished("error", "the agent failed (see the notification)")
        try:
            for event in agent.run(task):
                if isinstance(event, Finished):
                    result = event
                elif not isinstance(event, Token):  # the call being written: too chatty
                    self._from_thread(view.show, event)
        finally:
            self._from_thread(self._agent_done, view, result)

    def _agent_done(self, view: AgentView, result: Finished) -> None:
        self.busy = ""
        if not view.is_attached:  # the conversation was cleared meanwhile
            return
        view.finish(result)
        self.query_one(ChatView).scroll_to_end()

    def approve_in_worker(self, request: ApprovalRequest) -> str:
        """The agent's approver: on the agent's worker thread, it shows `ApprovalScreen` and
        blocks until the user answers. (`push_screen_wait` needs to run inside the worker's own
        task, which `call_from_thread` is not, so the answer comes back through a queue.)"""
        answers: queue.Queue[str | None] = queue.Queue()
        self._from_thread(self.push_screen, ApprovalScreen(request), answers.put)
        while self.is_running:
            with contextlib.suppress(queue.Empty):
                return answers.get(timeout=0.1) or "no"
        return "no"  # the app has gone: nothing runs

    def undo_redo(self, *, redo: bool, force: bool = False) -> None:
        if self.ws is None:
            self.notify_error(self.open_error or AssistError("no repository", "restart assist"))
        elif self.busy:
            self.notify("wait until the agent or the answer is done (Esc stops it)")
        else:
            self.restore(redo, force)

    @work(thread=True, exclusive=True, group="undo", exit_on_error=False)
    def restore(self, redo: bool, force: bool) -> None:
        assert self.ws is not None
        checkpoints = self.agent.checkpoints if self.agent else Checkpoints(self.ws.root)
        try:
            done = checkpoints.redo(force=force) if redo else checkpoints.undo(force=force)
        except AssistError as exc:
            if "force it" not in exc.hint:
                raise
            command = f"/{'redo' if redo else 'undo'} --force"
            raise AssistError(exc.message, exc.hint.replace("force it", command)) from None
        self._from_thread(self._restored, done, redo)

    def _restored(self, done: Restored, redo: bool) -> None:
        files = ", ".join([*done.written, *done.deleted]) or "no files"
        verb = "redone" if redo else "undone"
        self.notify(f"{verb}: {files}\nnow at: {done.checkpoint.label}", timeout=6, markup=False)
