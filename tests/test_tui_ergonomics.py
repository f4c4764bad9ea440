"""The TUI's everyday keys and commands, with Pilot on a real repository and real llama.cpp:
sources by number, copying, switching models, the palette, help that scrolls, screenshots, the
demo model's note, the grounding verdict, and a status bar that keeps the speed at 80 columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_tui import SIZE, known_turn, open_ws, steady, tui_gguf, type_text, wait_for, ws
from textual.containers import VerticalScroll
from textual.widgets import Static
from tiny_gguf import CHATML, write_tiny_gguf

from assistant.chat.citations import check
from assistant.chat.history import Turn
from assistant.tui.app import AssistApp
from assistant.tui.screens import HelpScreen, PreviewScreen
from assistant.tui.views import IndexState, LocationList, ModelState, TurnView, status_text
from assistant.workspace import Workspace

__all__ = ["tui_gguf", "ws"]  # fixtures used here


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def notes(app: AssistApp) -> str:
    return "\n".join(n.message for n in app._notifications)


def with_code(turn: Turn) -> Turn:
    answer = turn.answer + "\n\n```python\nfirst()\n```\n\nand\n\n```python\nsecond()\n```\n"
    return Turn(turn.question, answer, turn.sources, turn.citations, model=turn.model,
                grounding=check(answer, turn.sources, turn.question))  # fmt: skip


@pytest.mark.anyio
async def test_alt_number_or_f7_and_a_digit_opens_that_source(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.chat.show_turn(known_turn())
        app.chat.session.turns.append(known_turn())  # type: ignore[union-attr]
        await pilot.press("alt+1")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        screen = app.screen
        assert isinstance(screen, PreviewScreen)
        assert (screen.path, screen.line, screen.end_line) == ("uploads/client.py", 9, 12)
        await pilot.press("escape")
        await pilot.press("alt+4")
        await wait_for(pilot, lambda: "no source [4]" in notes(app))
        # Where a terminal does not send Alt+digit: F7 focuses the sources, a digit opens one.
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.focused, LocationList))
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert app.screen.line == 9  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_copy_an_answer_or_one_of_its_code_blocks(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.run_command("/copy")
        await pilot.pause()
        assert "no answer to copy yet" in notes(app)
        turn = with_code(known_turn())
        app.chat.session.turns.append(turn)  # type: ignore[union-attr]
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.clipboard == turn.answer
        await app.run_command("/copy code")
        assert app.clipboard == "second()"
        await app.run_command("/copy 1")
        assert app.clipboard == "first()"
        # No desktop clipboard here (no DISPLAY): the text is also left in a file.
        assert (ws.index_dir / "clipboard.txt").read_text() == "first()"
        assert "OSC 52" in notes(app)
        await app.run_command("/copy 3")
        await pilot.pause()
        assert "no such code block" in notes(app)


@pytest.mark.anyio
async def test_model_switches_without_a_restart(ws: Workspace, tmp_path: Path) -> None:
    other = write_tiny_gguf(
        tmp_path / "other-model.gguf", family="qwen", metadata=True, chat_template=CHATML,
        favorite="b", context_length=8192,
    )  # fmt: skip
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "/model /no/such/model.gguf")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "model file not found" in notes(app))
        assert "tiny-chat" in str(app.query_one("#status", Static).render())
        await app.run_command(f"/model {other}")
        await pilot.pause()
        assert "other-model" in str(app.query_one("#status", Static).render())
        assert ws.settings.model.path == str(other)
        await type_text(pilot, "where is upload_file?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.chat.busy and len(app.query(TurnView)) == 1)
        assert app.chat.last_answer().startswith("b")  # the new model answered
        await app.run_command("/model")
        await pilot.pause()
        assert "switch with /model PATH" in notes(app)


@pytest.mark.anyio
async def test_palette_has_one_keys_entry_and_help_scrolls_at_once(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=(110, 16)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Keys") == 1 and titles.count("Screenshot") == 1
        assert {"History", "Copy answer", "Copy code block", "Model"} <= set(titles)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        box = app.screen.query_one("#help-box", VerticalScroll)
        assert app.screen.focused is box
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: box.scroll_y > 0)


@pytest.mark.anyio
async def test_a_screenshot_falls_back_to_the_current_directory_or_says_why(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/Downloads
    monkeypatch.chdir(here)
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        app.action_screenshot()
        await pilot.pause()
        saved = list(here.glob("*.svg"))
        assert len(saved) == 1 and str(saved[0]) in notes(app)
        saved[0].unlink()
        here.rmdir()  # the directory assist was started in is gone
        app.action_screenshot()
        await pilot.pause()
        assert "could not save the screenshot in the current directory: No such file" in notes(app)


@pytest.mark.anyio
async def test_the_verdict_on_an_answers_citations_is_shown(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        turn = known_turn()
        bare = Turn(turn.question, "It uploads files.", turn.sources, [],
                    grounding=check("It uploads files.", turn.sources))  # fmt: skip
        view = await app.chat.show_turn(bare)
        await pilot.pause()
        note = str(view.query_one(".turn-note", Static).render())
        assert "no citations: not grounded" in note


@pytest.mark.anyio
async def test_the_demo_model_says_so_once(
    tmp_path: Path, isolated_env: dict[str, str], tui_gguf: Path
) -> None:
    from test_chat import make_repo

    w = open_ws(make_repo(tmp_path / "repo"), isolated_env, tui_gguf)
    demo = Workspace.open(w.root, overrides={"index": {"vectors": False}}, env=isolated_env)
    app = AssistApp(workspace=demo, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = [str(n.render()) for n in app.query(".pane-note").results(Static)]
        assert len(shown) == 1 and "embedded demo model (SmolLM2-135M)" in shown[0]
        assert "--model PATH or model.path" in shown[0]
        assert "(demo)" in str(app.query_one("#status", Static).render())


def test_the_status_bar_keeps_the_speed_at_80_columns() -> None:
    line = status_text(
        IndexState(113, 2154, 1760, 1760, "on"),
        ModelState("SmolLM2-135M-Instruct.Q4_1.gguf", "emulated", 25.3, demo=True),
    ).plain
    assert line.index("25.3 tok/s") + len("25.3 tok/s") <= 80
    reading = status_text(None, ModelState("a" * 60, "tokens", None, "reading 1,368 tokens · 40%"))
    assert reading.plain.index("40%") < 80


def test_snapshot_status_and_focus_at_80_columns(snap_compare: Any, ws: Workspace) -> None:
    """An answer's citation list, focused (accent border), at 80 columns."""

    async def run_before(pilot: Any) -> None:
        await steady(pilot)
        app = pilot.app
        view = await app.chat.show_turn(known_turn())
        view.query_one(".locations").focus()
        await pilot.pause()

    assert snap_compare(AssistApp(workspace=ws, watch=False), terminal_size=(80, 30),
                        run_before=run_before)  # fmt: skip
