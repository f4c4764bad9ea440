"""Grounded chat in the TUI: a question streams its answer into a `TurnView` from a worker.

A mixin of `AssistApp`; the session asked in travels with the worker, since /new may replace
`self.session` while an answer streams.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from textual import work

from assistant.chat import ChatSession, Turn
from assistant.errors import AssistError
from assistant.tui.host import AppHost
from assistant.tui.views import ChatView, ModelState, SourcesView, TurnView

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class ChatMode(AppHost):
    """Asking, streaming the answer, and showing finished turns."""

    session: ChatSession | None
    sources_visible: bool
    model_state: ModelState

    async def ask(self, question: str) -> None:
        if self.ws is None or self.session is None:
            self.notify_error(self.open_error or AssistError("no repository", "restart assist"))
            return
        if self._answering:
            self.notify("still answering: Esc stops it", severity="warning")
            return
        view = await self.query_one(ChatView).begin(question)
        view.query_one(SourcesView).collapsed = not self.sources_visible
        self._answering = True
        self._cancel = threading.Event()
        self.answer(question, view, self._cancel, self.session)

    def show_history(self) -> None:
        """The saved conversations, newest first: their ids go to `/resume ID`."""
        if self.ws is None:
            return
        saved = list(reversed(ChatSession.list_sessions(self.ws)))[:10]
        if not saved:
            self.notify("no saved conversation yet", timeout=3)
            return
        lines = []
        for path in saved:
            turns: list[Any] = []
            try:
                turns = json.loads(path.read_text(encoding="utf-8")).get("turns", [])
                first = str(turns[0].get("question", "")) if turns else ""
            except (OSError, ValueError, AttributeError, IndexError):
                first = "(unreadable)"
            lines.append(f"{path.stem}  {len(turns)} turns  {first[:60]}")
        self.notify("\n".join(lines), title="/resume ID", timeout=20, markup=False)

    @work(thread=True, exclusive=True, group="chat")
    def answer(
        self, question: str, view: TurnView, cancel: threading.Event, session: ChatSession
    ) -> None:
        """The session is the one asked in, not `self.session`, which /new may replace."""
        assert self.ws is not None
        try:
            model = self.ws.model
            self._from_thread(self._model_loaded)
            prepared = session.prepare(question, model)
            self._from_thread(view.show_sources, prepared.sources)
            pieces: list[str] = []
            for piece in session.stream(prepared, model, cancel):
                pieces.append(piece)
                self._from_thread(view.append, piece)
            turn = session.finish(prepared, "".join(pieces), model)
        except AssistError as exc:
            self._from_thread(self._answer_failed, view, exc)
            return
        except Exception as exc:
            log.exception("answering failed")
            self._from_thread(self._answer_failed, view, exc)
            return
        self._from_thread(self._answered, view, turn)

    def _model_loaded(self) -> None:
        assert self.ws is not None
        model = self.ws.model
        self.model_state = ModelState(
            model.name, model.fim_mode, self.model_state.tokens_per_second
        )
        self.refresh_status()

    async def _answered(self, view: TurnView, turn: Turn) -> None:
        self._answering = False
        if not view.is_attached:
            return
        await view.finish(turn)
        self.model_state = ModelState(
            self.model_state.name, self.model_state.mode, turn.tokens_per_second
        )
        self.refresh_status()
        self.query_one(ChatView).scroll_to_end()

    def _answer_failed(self, view: TurnView, exc: Exception) -> None:
        self._answering = False
        if isinstance(exc, AssistError):
            self.notify_error(exc)
        else:
            self.notify_bug(exc)
        if view.is_attached:
            view.fail(exc.message if isinstance(exc, AssistError) else f"{type(exc).__name__}")

    async def show_turn(self, turn: Turn) -> TurnView:
        """Show a finished turn (a resumed conversation, or a test's known answer)."""
        view = await self.query_one(ChatView).begin(turn.question)
        view.query_one(SourcesView).collapsed = not self.sources_visible
        await view.finish(turn)
        return view
