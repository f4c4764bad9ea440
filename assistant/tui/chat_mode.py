"""Grounded chat in the TUI: a question streams its answer into a `TurnView` from a worker.

A mixin of `AssistApp`; the session asked in travels with the worker, since /new may replace
`self.session` while an answer streams.
"""

from __future__ import annotations

import threading

from textual import work

from assistant.chat.history import Turn
from assistant.chat.session import ChatSession
from assistant.errors import AssistError
from assistant.llm.protocol import GenerationStats
from assistant.tui.host import AppHost
from assistant.tui.views import ChatView, ModelState, SourcesView, TurnView


class ChatMode(AppHost):
    """Asking, streaming the answer, and showing finished turns."""

    session: ChatSession | None
    sources_visible: bool
    model_state: ModelState

    async def ask(self, question: str) -> None:
        if self.ws is None or self.session is None:
            self.notify_error(self.open_error or AssistError("no repository", "restart assist"))
            return
        if self.busy:
            self.notify("still answering: Esc stops it", severity="warning")
            return
        view = await self.query_one(ChatView).begin(question)
        view.query_one(SourcesView).collapsed = not self.sources_visible
        self.busy = "answer"
        self.cancel = threading.Event()
        self.answer(question, view, self.cancel, self.session)

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

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def answer(
        self, question: str, view: TurnView, cancel: threading.Event, session: ChatSession
    ) -> None:
        """The session is the one asked in, not `self.session`, which /new may replace. A
        failure reaches the app's worker handler; the view says it failed."""
        assert self.ws is not None
        turn: Turn | None = None
        try:
            model = self.ws.model
            self._from_thread(self._model_loaded)
            prepared = session.prepare(question, model)
            self._from_thread(view.show_sources, prepared.sources)
            pieces: list[str] = []

            def progress(stats: GenerationStats) -> None:
                self._from_thread(self._model_activity, stats.describe())

            for piece in session.stream(prepared, model, cancel, progress):
                pieces.append(piece)
                self._from_thread(view.append, piece)
            turn = session.finish(prepared, "".join(pieces), model)
        finally:
            self._from_thread(self._answered, view, turn)

    def _model_activity(self, activity: str) -> None:
        state = self.model_state
        self.model_state = ModelState(state.name, state.fim, state.tokens_per_second, activity)

    def _model_loaded(self) -> None:
        assert self.ws is not None
        model = self.ws.model
        self.model_state = ModelState(
            model.name, model.fim_kind, self.model_state.tokens_per_second
        )

    async def _answered(self, view: TurnView, turn: Turn | None) -> None:
        """The answer is shown whole before the conversation is free again."""
        try:
            self._model_activity("")
            if not view.is_attached:
                return
            if turn is None:
                view.fail("no answer (see the notification)")
                return
            await view.finish(turn)
            state = self.model_state
            self.model_state = ModelState(state.name, state.fim, turn.tokens_per_second)
            self.query_one(ChatView).scroll_to_end()
        finally:
            self.busy = ""

    async def show_turn(self, turn: Turn) -> TurnView:
        """Show a finished turn (a resumed conversation, or a test's known answer)."""
        view = await self.query_one(ChatView).begin(turn.question)
        view.query_one(SourcesView).collapsed = not self.sources_visible
        await view.finish(turn)
        return view
