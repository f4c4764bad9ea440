"""The TUI driven with Textual's Pilot on a real git repository, a real SQLite index and a tiny
real llama.cpp model; SVG snapshots of the main screens.

The tiny model writes junk ("aaaa"), never a `path:line`, so opening a citation is tested by
showing a finished answer with real text (`show_turn`); asking, streaming, the sources sent and
opening a source use the real model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_chat import FILES, make_repo
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static
from tiny_gguf import CHATML, write_tiny_gguf

from assistant.chat.citations import Source, map_citations
from assistant.chat.history import Turn
from assistant.chat.session import ChatSession
from assistant.llm.protocol import Model, Request
from assistant.tui.app import AssistApp
from assistant.tui.history_screen import HistoryScreen
from assistant.tui.screens import HelpScreen, PreviewScreen
from assistant.tui.views import (
    LocationList,
    OpenLocation,
    SearchView,
    SourcesView,
    StatusBar,
    TurnView,
)
from assistant.workspace import Workspace

SIZE = (110, 32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tui_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A fixed file name: the status bar shows it, and snapshots must not depend on test order.
    path = tmp_path_factory.mktemp("tui") / "tiny-chat.gguf"
    return write_tiny_gguf(
        path, family="qwen", metadata=True, chat_template=CHATML, favorite="a", context_length=8192
    )


def open_ws(root: Path, env: dict[str, str], gguf: Path, max_tokens: int = 12) -> Workspace:
    overrides: dict[str, dict[str, Any]] = {
        "model": {"path": str(gguf), "temperature": 0.0, "n_ctx": 8192},
        "chat": {"max_tokens": max_tokens},
        "index": {"vectors": False},
    }
    return Workspace.open(root, overrides=overrides, env=env)


@pytest.fixture
def ws(tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path) -> Workspace:
    w = open_ws(make_repo(tmp_path / "repo"), isolated_env, tui_gguf)
    list(w.index())
    return w


async def wait_for(pilot: Pilot[Any], cond: Callable[[], object], timeout: float = 20.0) -> None:
    """Pause the app until `cond()` holds; bounded, never a bare sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {cond}")
        await pilot.pause(0.05)


class Gated:
    """The real tiny model, held after its first piece until `gate` is set or the request is
    cancelled: the test then knows an answer is streaming, however fast the machine. A wrapper
    at the `Model` seam, because no real model can be made to pause on cue."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def chat(self, messages: list[Any], request: Request | None = None) -> Iterator[str]:
        request = request or Request()
        for i, piece in enumerate(self.model.chat(messages, request)):
            yield piece
            while i == 0 and not self.gate.wait(0.01):
                if request.cancel.is_set():
                    break


def status(app: AssistApp) -> str:
    return str(app.query_one(StatusBar).render())


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text])


@pytest.mark.anyio
async def test_start_focuses_the_chat_input_and_shows_the_index(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "ask"
        assert "3 files" in status(app) and "watcher off" in status(app)
        assert "tiny-chat" in status(app)


@pytest.mark.anyio
async def test_ask_streams_an_answer_lists_sources_and_opens_one(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "where is upload_file?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query(TurnView) and not app.chat.busy)
        view = app.query_one(TurnView)
        assert view.question == "where is upload_file?"
        assert view.text.strip()  # the tiny model's streamed junk arrived
        # The tiny model has Qwen FIM tokens: the status bar says FIM, not "emulated".
        assert (
            "tok/s" in status(app) and " · FIM  │" in status(app) and "emulated" not in status(app)
        )
        sources = app.query_one(LocationList)
        assert sources.display and sources.option_count >= 1
        assert app.chat.session is not None and app.chat.session.turns[0].answer == view.text
        # The sources toggle shows exactly what was sent.
        await pilot.press("f4")
        assert app.chat.sources_visible
        shown = [str(w.render()) for w in app.query_one(SourcesView).query(Static)]
        assert any("UploadClient.upload_file" in line for line in shown), shown
        sources.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert isinstance(app.screen, PreviewScreen)
        first = app.chat.session.turns[0].sources[0]
        assert (app.screen.path, app.screen.line) == (first.path, first.start_line)
        await pilot.press("escape")
        assert not isinstance(app.screen, PreviewScreen)


def known_turn() -> Turn:
    """A finished answer with real citations, as a capable model would write it."""
    text = FILES["uploads/client.py"].split("\n")
    source = Source(1, "uploads/client.py", "UploadClient.upload_file", "method", 9, 12, 1,
                    "named", 40, "\n".join(text[8:12]))  # fmt: skip
    answer = (
        "`upload_file` reads the file and posts its bytes (uploads/client.py:11).\n\n"
        "Retries happen in `retry_failed_uploads` (uploads/client.py:14), up to `MAX_RETRIES`."
    )
    return Turn("how are files uploaded?", answer, [source], map_citations(answer, [source]),
                model="tiny-chat", created=0.0)  # fmt: skip


@pytest.mark.anyio
async def test_a_citation_opens_the_preview_at_its_line(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        view = await app.chat.show_turn(known_turn())
        locations = view.query_one(LocationList)
        assert [loc[:2] for loc in locations.locations] == [
            ("uploads/client.py", 11),
            ("uploads/client.py", 14),
            ("uploads/client.py", 9),
        ]
        locations.focus()
        await pilot.press("down", "enter")  # the second citation: line 14, outside the source
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        screen = app.screen
        assert isinstance(screen, PreviewScreen)
        assert (screen.path, screen.line) == ("uploads/client.py", 14)
        assert "retry_failed_uploads" in screen.text


@pytest.mark.anyio
async def test_search_as_you_type_and_open_a_result(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        assert app.focused is not None and app.focused.id == "query"
        await type_text(pilot, "formatPrice")
        search = app.query_one(SearchView)
        await wait_for(pilot, lambda: search.hits and search.hits[0].name == "formatPrice")
        await pilot.press("down")
        assert app.focused is app.query_one("#results", OptionList)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert isinstance(app.screen, PreviewScreen)
        # The chunk starts at the comment above the function.
        assert (app.screen.path, app.screen.line) == ("web/format.js", 1)


@pytest.mark.anyio
async def test_first_run_indexes_in_a_worker_while_typing_works(
    tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path
) -> None:
    w = open_ws(make_repo(tmp_path / "fresh"), isolated_env, tui_gguf)
    assert not w.has_index()
    app = AssistApp(workspace=w, watch=True)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "hello")  # typing is not blocked by the index worker
        assert app.query_one("#ask", Input).value == "hello"
        await wait_for(pilot, lambda: "3 files" in status(app))
        await wait_for(pilot, lambda: "watcher on" in status(app))
        assert w.has_index()


@pytest.mark.anyio
async def test_not_a_repository_is_a_notification_with_the_fix(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    app = AssistApp(str(plain), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any("not a git repository" in n and "git init" in n for n in notes)
        assert "no repository" in status(app)
        await type_text(pilot, "hi")
        await pilot.press("enter")
        await pilot.pause()
        assert not app.query(TurnView)
    assert not (plain / ".assist").exists()  # nothing written where nobody asked


@pytest.mark.anyio
async def test_stop_key_cancels_a_long_answer(
    tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path
) -> None:
    w = open_ws(make_repo(tmp_path / "repo"), isolated_env, tui_gguf, max_tokens=6000)
    list(w.index())
    app = AssistApp(workspace=w, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "upload_file")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query(TurnView) and app.query_one(TurnView).text)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.chat.busy)
        assert app.chat.session is not None
        turn = app.chat.session.turns[0]
        assert turn.stopped_by == "cancel" and turn.generated_tokens < 6000


@pytest.mark.anyio
async def test_help_palette_and_slash_commands(ws: Workspace) -> None:
    ChatSession(ws).ask("what does formatPrice do?")
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await type_text(pilot, "/resume")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.query(TurnView)) == 1)
        assert app.query_one(TurnView).question == "what does formatPrice do?"
        await type_text(pilot, "/agent refactor")
        await pilot.press("enter")
        await pilot.pause()
        assert any("agent mode" in n.message for n in app._notifications)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Chat", "Search", "Toggle sources", "Stop answer", "Keys"} <= set(titles)


@pytest.mark.anyio
async def test_first_index_with_a_process_pool_keeps_the_app_up(
    tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path
) -> None:
    # More than 8 files: the indexer parses in a process pool, whose resource tracker once
    # failed to start under Textual's captured stderr and took the app down.
    files = {f"pkg/mod{i}.py": f"def function_{i}(x):\n    return x + {i}\n" for i in range(20)}
    w = open_ws(make_repo(tmp_path / "many", files), isolated_env, tui_gguf)
    assert not w.has_index()
    app = AssistApp(workspace=w, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "20 files" in status(app), timeout=60)
        await wait_for(
            pilot, lambda: "indexing" not in status(app) and "scanning" not in status(app)
        )
        assert app.is_running and w.has_index()
        assert not [n for n in app._notifications if n.severity == "error"]


@pytest.mark.anyio
async def test_new_and_resume_wait_for_a_streaming_answer(
    tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path
) -> None:
    w = open_ws(make_repo(tmp_path / "repo"), isolated_env, tui_gguf, max_tokens=60)
    list(w.index())
    ChatSession(w).ask("an older question")  # something /resume could load
    w._model = Gated(w.model)  # the answer streams until Esc
    app = AssistApp(workspace=w, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "upload_file")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query(TurnView) and app.query_one(TurnView).text)
        asked_in = app.chat.session
        await pilot.press("ctrl+r")
        assert app.chat.busy
        app.action_new_chat()
        await app.run_command("/resume")
        await app.run_command("/new")
        # (Textual shows an identical notification once.)
        assert any("stop the answer first (Esc)" in n.message for n in app._notifications)
        assert app.chat.session is asked_in and len(app.query(TurnView)) == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.chat.busy)
        assert app.is_running and asked_in is not None
        assert [t.question for t in asked_in.turns] == ["upload_file"]
        await pilot.press("ctrl+n")  # now it works
        await wait_for(pilot, lambda: not app.query(TurnView))
        assert app.chat.session is not asked_in and app.chat.session is not None
        assert not app.chat.session.turns


@pytest.mark.anyio
async def test_a_path_with_brackets_opens_in_the_preview(
    tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path
) -> None:
    files = {"pages/[id].py": "def page():\n    return 1\n", "x[/b].py": "y = 2\n"}
    w = open_ws(make_repo(tmp_path / "brackets", files), isolated_env, tui_gguf)
    list(w.index())
    app = AssistApp(workspace=w, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        for path in ("pages/[id].py", "x[/b].py"):
            app.post_message(OpenLocation(path, 1))
            await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
            await pilot.pause()
            title = app.screen.query_one("#preview-title", Static).render()
            assert f"{path}:1" in str(title)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, PreviewScreen))
        await pilot.press("f3")
        await type_text(pilot, "page")
        search = app.query_one(SearchView)
        await wait_for(pilot, lambda: any(h.path == "pages/[id].py" for h in search.hits))
        assert app.is_running


# -- snapshots ---------------------------------------------------------------------------------


async def steady(pilot: Pilot[Any]) -> None:
    """Cursors that do not blink: a snapshot must not depend on when it is taken."""
    for field in pilot.app.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_snapshot_chat_with_a_cited_answer(snap_compare: Any, ws: Workspace) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        app = pilot.app
        assert isinstance(app, AssistApp)
        await app.chat.show_turn(known_turn())
        await pilot.pause()

    assert snap_compare(AssistApp(workspace=ws, watch=False), terminal_size=SIZE,
                        run_before=run_before)  # fmt: skip


def test_snapshot_search(snap_compare: Any, ws: Workspace) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        app = pilot.app
        await pilot.press("f3")
        await type_text(pilot, "upload")
        search = app.query_one(SearchView)
        await wait_for(pilot, lambda: len(search.hits) >= 2)
        await pilot.pause()

    assert snap_compare(AssistApp(workspace=ws, watch=False), terminal_size=SIZE,
                        run_before=run_before)  # fmt: skip


def test_snapshot_preview(snap_compare: Any, ws: Workspace) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        app = pilot.app
        assert isinstance(app, AssistApp)
        view = await app.chat.show_turn(known_turn())
        view.query_one(LocationList).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        await pilot.pause()

    assert snap_compare(AssistApp(workspace=ws, watch=False), terminal_size=SIZE,
                        run_before=run_before)  # fmt: skip


def test_snapshot_help(snap_compare: Any, ws: Workspace) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        await pilot.press("f1")

    assert snap_compare(AssistApp(workspace=ws, watch=False), terminal_size=SIZE,
                        run_before=run_before)  # fmt: skip


def test_logging_goes_to_a_file_while_the_app_runs(tmp_path: Path) -> None:
    import io
    import logging

    from assistant.tui.logfile import log_file_for, logging_to_file

    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    root = logging.getLogger()
    terminal = io.StringIO()
    stream = logging.StreamHandler(terminal)
    root.addHandler(stream)
    try:
        path = log_file_for(str(repo))
        assert path == repo / ".assist" / "tui.log"
        with logging_to_file(path):
            assert stream not in root.handlers
            logging.getLogger("assistant.watcher").warning("cannot watch the repo")
        assert stream in root.handlers
        assert "cannot watch the repo" in path.read_text()
        assert terminal.getvalue() == ""  # nothing painted over the screen
    finally:
        root.removeHandler(stream)


@pytest.mark.anyio
async def test_history_screen_filters_resumes_and_deletes(ws: Workspace) -> None:
    older = ChatSession(ws)
    older.ask("how is a price formatted?")
    newer = ChatSession(ws)
    newer.ask("what does formatPrice do?")
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.run_command("/history")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await wait_for(pilot, lambda: screen.shown)
        assert [s.id for s in screen.shown] == [newer.id, older.id]  # newest first
        await type_text(pilot, "price formatted")
        await wait_for(pilot, lambda: [s.id for s in screen.shown] == [older.id])
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.query(TurnView)) == 1)
        assert app.query_one(TurnView).question == "how is a price formatted?"
        await pilot.press("f6")  # again, by key: delete the newer one
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("down", "delete")
        await wait_for(pilot, lambda: not ChatSession.history(ws).path(newer.id).exists())
        assert ChatSession.history(ws).path(older.id).exists()
        await pilot.press("escape")
        await app.run_command("/resume no-such-id")
        await pilot.pause()
        assert any(n.severity == "error" for n in app._notifications)


class HeldInPrompt:
    """The real tiny model, held inside its prompt reading (at its first progress report,
    between two chunks) until the request is cancelled: Esc or Ctrl+Q then lands mid-prompt on
    any machine. A wrapper at the `Model` seam: no real model pauses on cue."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.request = Request()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def chat(self, messages: list[Any], request: Request | None = None) -> Iterator[str]:
        request = self.request = request or Request()
        shown = request.progress

        def held(stats: Any) -> None:
            if shown is not None:
                shown(stats)
            if stats.phase == "prompt" and stats.prompt_done:
                request.cancel.wait(60)  # generous: the test presses the key at once

        request.progress = held
        return self.model.chat(messages, request)


async def ask_and_hold(pilot: Pilot[Any], app: AssistApp) -> None:
    """Ask a question and wait until the model is held mid-prompt."""
    await type_text(pilot, "where is upload_file?")
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.model_state.activity.startswith("reading"))


@pytest.mark.anyio
async def test_esc_stops_an_answer_while_the_prompt_is_read(ws: Workspace) -> None:
    held = HeldInPrompt(ws.model)
    ws._model = held
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask_and_hold(pilot, app)
        await pilot.press("escape")
        note = app.query_one(TurnView).query_one(".turn-note", Static)
        await wait_for(pilot, lambda: not app.chat.busy and "(stopped)" in str(note.render()))
        stats = held.request.stats
        assert stats.stopped_by == "cancel" and stats.generated_tokens == 0
        assert 0 < stats.prompt_done < stats.prompt_tokens  # stopped between prompt chunks


@pytest.mark.anyio
async def test_quitting_stops_an_answer_while_the_prompt_is_read(ws: Workspace) -> None:
    held = HeldInPrompt(ws.model)
    ws._model = held
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await ask_and_hold(pilot, app)
        await pilot.press("ctrl+q")
    stats = held.request.stats
    deadline = time.monotonic() + 60
    while held.model.scheduler.running() and time.monotonic() < deadline:
        time.sleep(0.01)  # the worker thread lets go of the model
    assert not held.model.scheduler.running()
    assert stats.stopped_by == "cancel" and stats.prompt_done < stats.prompt_tokens
