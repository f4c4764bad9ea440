"""The conversation: questions and their streamed, cited answers, agent tasks, and the input.

The pane holds the conversation's state in reactive attributes (`busy`, `sources_visible`) and
the session, agent and cancel event behind them; what the status bar should show about the model
goes up as a `ModelChanged` message. Slow work runs on the app's workers, so the app's one
handler shows any failure; the session asked in travels with the worker, since /new may replace
`self.session` while an answer streams.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from assistant.agent.checkpoints import Checkpoints, Restored
from assistant.agent.loop import Agent
from assistant.chat.citations import Source
from assistant.chat.history import Turn
from assistant.chat.session import ChatSession
from assistant.errors import AssistError
from assistant.llm.protocol import FimKind, GenerationStats
from assistant.tui.agent_pane import AgentPane
from assistant.tui.approval import ApprovalScreen
from assistant.tui.views import SourcesView, TurnView

if TYPE_CHECKING:
    from assistant.agent.toolbox import ApprovalRequest
    from assistant.workspace import Workspace


class ChatPane(Vertical):
    """The conversation above, the question input below."""

    busy: reactive[str] = reactive("")
    """What holds the conversation now: "" (nothing), "answer" or "agent"."""
    sources_visible: reactive[bool] = reactive(False)
    """Whether each turn shows the chunks that were sent with its question."""

    class ModelChanged(Message):
        """What the model is (name, FIM kind) or does (activity, speed) changed."""

        def __init__(
            self,
            name: str | None = None,
            fim: FimKind | None = None,
            tokens_per_second: float | None = None,
            activity: str | None = None,
        ) -> None:
            super().__init__()
            self.name, self.fim = name, fim
            self.tokens_per_second, self.activity = tokens_per_second, activity

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ws: Workspace | None = None
        self.session: ChatSession | None = None
        self.agent: Agent | None = None
        """One per TUI session, made at the first /agent, so that "always" lasts the session."""
        self.cancel: threading.Event | None = None
        """Stops the answer or agent run in progress (Esc)."""

    def on_mount(self) -> None:
        # Worker threads use this, not `self.app`: that looks the app up in a context variable
        # and fails once the app has gone, in the middle of a worker stopping.
        self._app: App[Any] = self.app

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="messages")
        yield Input(
            placeholder="Ask about the code: Enter sends, Esc stops, /help lists commands",
            id="ask",
        )

    def open(self, ws: Workspace) -> None:
        self.ws = ws
        self.session = ChatSession(ws)

    # -- the message list ----------------------------------------------------------------------

    async def begin(self, question: str) -> TurnView:
        view = TurnView(question)
        await self.add(view)
        view.query_one(SourcesView).collapsed = not self.sources_visible
        return view

    async def add(self, widget: Vertical) -> None:
        messages = self.query_one("#messages", VerticalScroll)
        await messages.mount(widget)
        messages.scroll_end(animate=False)

    def show_note(self, text: str) -> None:
        """A line at the top of the conversation (the demo model's note): said once, before
        the first question, and scrolled away by the answers."""
        note = Static(Text(text, style="yellow"), classes="pane-note")
        self.query_one("#messages", VerticalScroll).mount(note)

    def last_turn(self) -> Turn | None:
        return self.session.turns[-1] if self.session and self.session.turns else None

    def last_answer(self) -> str:
        turn = self.last_turn()
        return turn.answer if turn else ""

    def last_source(self, n: int) -> Source | None:
        turn = self.last_turn()
        return next((s for s in turn.sources if s.n == n), None) if turn else None

    def clear(self) -> None:
        self.query_one("#messages", VerticalScroll).remove_children()

    def scroll_to_end(self) -> None:
        self.query_one("#messages", VerticalScroll).scroll_end(animate=False)

    def watch_sources_visible(self, visible: bool) -> None:
        for view in self.query(SourcesView):
            view.collapsed = not visible

    def _later(self, callback: Any, *args: Any) -> None:
        """From a worker thread; quiet once the app has gone."""
        if self._app.is_running:
            with contextlib.suppress(RuntimeError):
                self._app.call_from_thread(callback, *args)

    def refuse_while_busy(self) -> bool:
        """A streaming answer (or agent) writes into the current conversation: keep it."""
        if self.busy:
            self.notify("stop the answer first (Esc)", severity="warning", timeout=4)
        return bool(self.busy)

    def stop(self) -> None:
        if self.cancel is not None and self.busy:
            self.cancel.set()

    # -- questions -----------------------------------------------------------------------------

    async def ask(self, question: str) -> None:
        if self.ws is None or self.session is None:
            return
        if self.busy:
            self.notify("still answering: Esc stops it", severity="warning")
            return
        view = await self.begin(question)
        self.busy = "answer"
        self.cancel = cancel = threading.Event()
        session, ws = self.session, self.ws

        def answer() -> None:
            turn: Turn | None = None
            try:
                model = ws.model
                self._later(self.post_message, self.ModelChanged(model.name, model.fim_kind))
                prepared = session.prepare(question, model)
                self._later(view.show_sources, prepared.sources)
                pieces: list[str] = []

                def progress(stats: GenerationStats) -> None:
                    self._later(self.post_message, self.ModelChanged(activity=stats.describe()))

                request = session.request(cancel, progress)
                for piece in session.stream(prepared, request, model):
                    pieces.append(piece)
                    self._later(view.append, piece)
                turn = session.finish(prepared, "".join(pieces), request, model)
            finally:
                self._later(self._answered, view, turn)

        self.app.run_worker(answer, thread=True, group="chat", exclusive=True, exit_on_error=False)

    async def _answered(self, view: TurnView, turn: Turn | None) -> None:
        """The answer is shown whole before the conversation is free again."""
        try:
            self.post_message(self.ModelChanged(activity=""))
            if not view.is_attached:
                return
            if turn is None:
                view.fail("no answer (see the notification)")
                return
            await view.finish(turn)
            self.post_message(self.ModelChanged(tokens_per_second=turn.tokens_per_second))
            self.scroll_to_end()
        finally:
            self.busy = ""

    async def show_turn(self, turn: Turn) -> TurnView:
        """Show a finished turn (a resumed conversation, or a test's known answer)."""
        view = await self.begin(turn.question)
        await view.finish(turn)
        return view

    # -- conversations -------------------------------------------------------------------------

    def new_chat(self) -> None:
        if self.ws is None or self.refuse_while_busy():
            return
        self.session = ChatSession(self.ws)
        self.clear()
        self.notify("new conversation", timeout=2)

    async def resume(self, session_id: str | None = None) -> None:
        if self.ws is None or self.refuse_while_busy():
            return
        session = ChatSession.resume(self.ws, session_id)
        if not session.turns:
            self.notify("no saved conversation yet", timeout=3)
            return
        self.session = session
        self.clear()
        for turn in session.turns:
            await self.show_turn(turn)
        self.notify(f"resumed {len(session.turns)} turns", timeout=3)

    def show_history(self) -> None:
        """The saved conversations, newest first: their ids go to `/resume ID`."""
        if self.ws is None:
            return
        saved = ChatSession.summaries(self.ws)[:10]
        if not saved:
            self.notify("no saved conversation yet", timeout=3)
            return
        lines = [f"{s.id}  {s.turns} turns  {s.first_question[:60]}" for s in saved]
        self.notify("\n".join(lines), title="/resume ID", timeout=20, markup=False)

    # -- the agent -----------------------------------------------------------------------------

    async def start_agent(self, task: str) -> None:
        if self.ws is None:
            return
        if not task:
            raise AssistError("no task given", "type /agent and what to do")
        if self.busy:
            self.notify("still working: Esc stops it", severity="warning")
            return
        if self.agent is None:
            self.agent = Agent(self.ws, self.approve_in_worker)
        self.agent.cancel.clear()
        self.cancel = self.agent.cancel  # Esc (stop) sets it
        self.busy = "agent"
        pane = AgentPane(task, self.agent)
        await self.add(pane)
        self.notify("agent mode: each change waits for your y / n / a; Esc stops", timeout=4)
        pane.start()

    def on_agent_pane_done(self, message: AgentPane.Done) -> None:
        self.busy = ""
        if message.pane.is_attached:
            self.scroll_to_end()

    def approve_in_worker(self, request: ApprovalRequest) -> str:
        """The agent's approver: on the agent's worker thread, it shows `ApprovalScreen` and
        blocks until the user answers (the answer comes back through a queue: the worker is
        not the screen's task, so `push_screen_wait` cannot be used)."""
        answers: queue.Queue[str | None] = queue.Queue()
        self._later(self._app.push_screen, ApprovalScreen(request), answers.put)
        while self._app.is_running:
            with contextlib.suppress(queue.Empty):
                return answers.get(timeout=0.1) or "no"
        return "no"  # the app has gone: nothing runs

    def undo_redo(self, *, redo: bool, force: bool = False) -> None:
        if self.ws is None:
            return
        if self.busy:
            self.notify("wait until the agent or the answer is done (Esc stops it)")
            return
        ws, agent = self.ws, self.agent

        def restore() -> None:
            checkpoints = agent.checkpoints if agent else Checkpoints(ws.root)
            try:
                done = checkpoints.redo(force=force) if redo else checkpoints.undo(force=force)
            except AssistError as exc:
                if "force it" not in exc.hint:
                    raise
                command = f"/{'redo' if redo else 'undo'} --force"
                raise AssistError(exc.message, exc.hint.replace("force it", command)) from None
            self._later(self._restored, done, redo)

        self.app.run_worker(restore, thread=True, group="undo", exclusive=True, exit_on_error=False)

    def _restored(self, done: Restored, redo: bool) -> None:
        files = ", ".join([*done.written, *done.deleted]) or "no files"
        verb = "redone" if redo else "undone"
        self.notify(f"{verb}: {files}\nnow at: {done.checkpoint.label}", timeout=6, markup=False)
