"""The `assist` TUI: grounded chat, search and live status over one `Workspace`.

Everything slow runs in thread workers: the first index, model loading, answers, agent runs and
searches, all started on the app, so one handler (`on_worker_state_changed`) shows any failure.
Textual cannot kill a thread, so a worker stops through the cancel event every model stream
takes; results come back with `call_from_thread`. The conversation and the agent live in
`ChatPane` and `AgentPane`; this module holds layout, indexing, search, slash commands, actions
and the status bar's state.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.resource_tracker
import threading
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, ProgressBar, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from assistant.errors import AssistError
from assistant.index.indexer import IndexReport
from assistant.index.progress import Progress, duration
from assistant.tui import commands
from assistant.tui.chat_pane import ChatPane
from assistant.tui.history_screen import HistoryScreen
from assistant.tui.screens import HelpScreen, PreviewScreen
from assistant.tui.views import (
    IndexState,
    LocationList,
    ModelState,
    OpenLocation,
    SearchView,
    StatusBar,
)
from assistant.workspace import Workspace, find_root

log = logging.getLogger(__name__)


def log_hint() -> str:
    """Where the traceback of an unexpected error went: the root logger's log file."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return f"details: {files[0].baseFilename}" if files else "details: in the log (docs/tui.md)"


class AssistApp(App[int]):
    """One repository, one workspace; views only translate."""

    CSS_PATH = "app.tcss"
    TITLE = "assist"
    AUTO_FOCUS = "#ask"

    index_state: reactive[IndexState | None] = reactive(None)
    model_state: reactive[ModelState] = reactive(ModelState)
    BINDINGS: ClassVar[list[BindingType]] = [*commands.bindings()]

    def __init__(
        self,
        path: str | None = None,
        *,
        model: str | None = None,
        workspace: Workspace | None = None,
        watch: bool = True,
    ) -> None:
        super().__init__()
        # The indexer's process pool starts multiprocessing's resource tracker, which passes
        # `sys.stderr.fileno()` to the child; under Textual stderr is a capture whose fileno()
        # is -1 and the start fails. Start the tracker now, while stderr is still the real one.
        multiprocessing.resource_tracker.ensure_running()
        self.path = path
        self.model_path = model
        self.ws: Workspace | None = workspace
        self.watch_files = watch
        self.watcher: Any = None
        self.chat = ChatPane(id="chat")
        """The conversation; kept here too, so that quitting can stop it after it unmounts."""
        self._index_cancel = threading.Event()
        """Set at exit, so that quitting during an index does not wait for all of it."""
        self.open_error: AssistError | None = None

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with TabbedContent(id="tabs", initial="chat-tab"):
            with TabPane("Chat", id="chat-tab"):
                yield self.chat
            with TabPane("Search", id="search-tab"):
                yield SearchView(id="search")
        yield ProgressBar(id="progress", show_eta=False)
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#progress", ProgressBar).display = False
        if self.ws is None:
            try:
                self.ws = self._open_workspace()
            except AssistError as exc:
                self.open_error = exc
                self.notify_error(exc)
        if self.ws is not None:
            self.sub_title = self.ws.root.name
            self.chat.open(self.ws)
            demo = self.ws.demo_note()
            self.model_state = ModelState(
                name=self._model_label(), activity="loads at first question", demo=bool(demo)
            )
            if demo:
                self.chat.show_note(f"Note: {demo}.")
            if self.ws.has_index():
                self.refresh_index_state()
            else:
                self.index_state = IndexState(indexing="no index yet")
            self.run_index()
        self.query_one("#ask", Input).focus()

    def _open_workspace(self) -> Workspace:
        start = Path(self.path).expanduser() if self.path else Path.cwd()
        if start.exists() and find_root(start) is None:
            raise AssistError(
                f"{start.resolve()}: not a git repository",
                "run assist inside a repository (or `git init` here) and start it again",
            )
        return Workspace.open(start, overrides={"model": {"path": self.model_path}})

    def _model_label(self) -> str:
        from assistant.llm.source import choose_model

        assert self.ws is not None
        try:
            choice = choose_model(self.ws.settings)
        except AssistError:
            return "no model"
        return choice.location if choice.kind == "remote" else Path(choice.location).name

    # -- status ---------------------------------------------------------------------------------

    def notify_error(self, exc: AssistError) -> None:
        text = exc.message + (f"\nFix: {exc.hint}" if exc.hint else "")
        self.notify(text, title="assist", severity="error", timeout=15, markup=False)

    def notify_bug(self, exc: BaseException) -> None:
        """An unexpected error in a worker: logged with its traceback, shown, and survived."""
        self.notify(
            f"{type(exc).__name__}: {exc}\n{log_hint()}",
            title="assist: unexpected error", severity="error", timeout=20, markup=False,
        )  # fmt: skip

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's failure is shown: a known one as its message and fix, a
        bug with its type and where the traceback went."""
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        exc = event.worker.error
        if isinstance(exc, AssistError):
            self.notify_error(exc)
        else:
            log.error("worker %s failed", event.worker.name, exc_info=exc)
            self.notify_bug(exc)

    def refresh_index_state(self, indexing: str = "") -> None:
        if self.ws is None:
            return
        counts = self.ws.store.counts()
        watching = "off"
        if self.watcher is not None:
            watching = "on" if self.watcher.watching else "rescanning"
        self.index_state = IndexState(
            counts["files"], counts["symbols"], counts["chunks"], counts["vectors"], watching,
            indexing,
        )  # fmt: skip

    def watch_index_state(self) -> None:
        self._show_status()

    def watch_model_state(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        with contextlib.suppress(NoMatches):  # before the first compose
            self.query_one("#status", StatusBar).show(self.index_state, self.model_state)

    def _from_thread(self, callback: Any, *args: Any) -> None:
        """`call_from_thread` that is quiet once the app has gone (a late watcher batch)."""
        if self.is_running:
            # The event loop may close between the check and the call: nothing to show then.
            with contextlib.suppress(RuntimeError):
                self.call_from_thread(callback, *args)

    # -- indexing and watching ------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="index", exit_on_error=False)
    def run_index(self) -> None:
        """Index, then keep fresh (`Workspace.keep_fresh`); failures reach the worker handler."""
        assert self.ws is not None
        if not self.ws.has_index():
            self._from_thread(self._progress, None)
        try:
            watcher = self.ws.keep_fresh(
                on_progress=lambda p: self._from_thread(self._progress, p),
                on_indexed=lambda r: self._from_thread(self._indexed, r),
                on_batch=lambda _: self._from_thread(self._batch_done),
                cancel=self._index_cancel,
                watch=self.watch_files and self.watcher is None,
            )
            if watcher is not None:
                self.watcher = watcher
        finally:
            self._from_thread(self._batch_done)

    def _progress(self, item: Progress | None) -> None:
        """Show indexing: `None` while files are listed before a first index."""
        if item is not None and not item.total and self.ws is not None and self.ws.has_index():
            return  # an up-to-date index: nothing worth a progress bar
        bar = self.query_one("#progress", ProgressBar)
        bar.display = True
        bar.update(total=(item.total or None) if item else None, progress=item.done if item else 0)
        s = self.index_state or IndexState()
        doing = item.describe() if item else "listing files …"
        self.index_state = IndexState(s.files, s.symbols, s.chunks, s.vectors, s.watcher, doing)

    def _indexed(self, report: IndexReport) -> None:
        self.refresh_index_state()
        if report.parsed or report.embedded:
            self.notify(f"indexed {report.files} files in {duration(report.seconds)}", timeout=4)

    def _batch_done(self) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.refresh_index_state()

    def on_chat_pane_model_changed(self, message: ChatPane.ModelChanged) -> None:
        s = self.model_state
        self.model_state = ModelState(
            message.name if message.name is not None else s.name,
            message.fim if message.fim is not None else s.fim,
            s.tokens_per_second if message.tokens_per_second is None else message.tokens_per_second,
            s.activity if message.activity is None else message.activity,
            s.demo,
        )

    def on_unmount(self) -> None:
        self._index_cancel.set()
        self.chat.stop()
        if self.watcher is not None:
            # `Watcher.stop` waits for a batch being indexed; a daemon thread lets quitting go
            # on after a short wait (the process ends the batch with it).
            stopper = threading.Thread(
                target=self.watcher.stop, name="assist-tui-stop", daemon=True
            )
            stopper.start()
            stopper.join(1.0)

    # -- chat ------------------------------------------------------------------------------------

    @on(Input.Submitted, "#ask")
    async def ask_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        if text.startswith("/"):
            await self.run_command(text)
            return
        if self.ws is None:
            self.notify_error(self.open_error or AssistError("no repository", "restart assist"))
            return
        await self.chat.ask(text)

    async def run_command(self, text: str) -> None:
        await commands.run_command(self, text)

    # -- opening locations -----------------------------------------------------------------------

    def on_open_location(self, message: OpenLocation) -> None:
        if self.ws is None:
            return
        try:
            _, text = self.ws.read_text(message.path)
        except AssistError as exc:
            self.notify_error(exc)
            return
        self.push_screen(PreviewScreen(message.path, text, message.line, message.end_line))

    # -- search ----------------------------------------------------------------------------------

    @on(Input.Changed, "#query")
    def query_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#query")
    def query_submitted(self, event: Input.Submitted) -> None:
        self.query_one(SearchView).open_highlighted()

    def on_key(self, event: Any) -> None:
        # ↓ from the search box moves into the results, keyboard first.
        if event.key == "down" and self.focused is not None and self.focused.id == "query":
            self.query_one("#results", OptionList).focus()
            event.stop()

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def search(self, query: str) -> None:
        from assistant.index.search import SearchTimings

        if self.ws is None or not query.strip():
            self._from_thread(self._show_hits, [], "")
            return
        timings = SearchTimings()
        hits = self.ws.search(query, timings=timings)
        if not get_current_worker().is_cancelled:  # a newer query has taken over
            self._from_thread(self._show_hits, hits, "; ".join(timings.notes))

    def _show_hits(self, hits: list[Any], note: str) -> None:
        """On the UI thread: widgets are looked up here, never on a worker."""
        self.query_one(SearchView).show_hits(hits, note)

    # -- actions ---------------------------------------------------------------------------------

    def action_command(self, name: str) -> Awaitable[None] | None:
        """What every command key is bound to: the command of that name (commands.COMMANDS)."""
        return commands.invoke(self, commands.BY_NAME[name])

    def action_help(self) -> None:
        self.push_screen(HelpScreen(commands.key_rows(), commands.chat_rows()))

    def action_show_chat(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "chat-tab"
        self.query_one("#ask", Input).focus()

    def action_show_search(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "search-tab"
        self.query_one("#query", Input).focus()

    def action_toggle_sources(self) -> None:
        self.chat.sources_visible = not self.chat.sources_visible

    def action_stop(self) -> None:
        self.chat.stop()

    def action_new_chat(self) -> None:
        self.chat.new_chat()

    async def action_resume_chat(self, session_id: str | None = None) -> None:
        try:
            await self.chat.resume(session_id)
        except AssistError as exc:
            self.notify_error(exc)

    def action_reindex(self) -> None:
        if self.watcher is not None:
            self.watcher.request_rescan("F5")
        elif self.ws is not None:
            self.run_index()

    def action_history(self) -> None:
        if self.ws is None:
            return

        async def chosen(session_id: str | None) -> None:
            if session_id is not None:
                await self.action_resume_chat(session_id)

        from assistant.chat.session import ChatSession

        self.push_screen(HistoryScreen(ChatSession.history(self.ws)), chosen)

    def action_focus_sources(self) -> None:
        """F7: the last answer's citations and sources, where 1 … 9 open source [n]."""
        lists = self.query(LocationList)
        if not lists:
            self.notify("no answer with sources yet", severity="warning", timeout=3)
            return
        self.query_one("#tabs", TabbedContent).active = "chat-tab"
        # At once, not `focus()` (deferred): a digit typed right after must reach the list,
        # not the chat input.
        self.screen.set_focus(lists.last())
        lists.last().scroll_visible()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pick_source":  # digits are digits, except on the sources list
            return isinstance(self.focused, LocationList)
        return True

    def action_pick_source(self, n: int) -> None:
        self.action_open_source(n)

    def action_open_source(self, n: int) -> None:
        """Alt+n: source [n] of the last answer, in the preview."""
        found = self.chat.last_source(n)
        if found is None:
            self.notify(f"no source [{n}] in the last answer", severity="warning", timeout=3)
            return
        self.post_message(OpenLocation(found.path, found.start_line, found.end_line))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        commands.save_screenshot(self)

    def model_changed(self) -> None:
        """After `/model`: the status bar names the new model, which loads on first use."""
        if self.ws is None:
            return
        self.model_state = ModelState(
            name=self._model_label(), activity="loads at first question",
            demo=self.ws.demo_note() is not None,
        )  # fmt: skip

    def builtin_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        return super().get_system_commands(screen)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        return commands.system_commands(self, screen)
