"""The TUI's key bindings, command palette, slash commands, help screen and docs/tui.md key
table all say the same thing, because all come from `commands.COMMANDS`: each test here fails
when one of them drifts (the palette once said Ctrl+H for History while the key was F6)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_tui import SIZE, tui_gguf, wait_for, ws
from textual.app import App
from textual.binding import Binding

from assistant.tui import commands
from assistant.tui.app import AssistApp
from assistant.tui.approval import ApprovalScreen
from assistant.tui.commands import BY_NAME, COMMANDS, key_label
from assistant.tui.screens import HelpScreen, PreviewScreen
from assistant.workspace import Workspace

__all__ = ["tui_gguf", "ws"]  # fixtures used here

DOC = Path(__file__).resolve().parent.parent / "docs" / "tui.md"
KEY_WORDS = re.compile(r"\b(?:Ctrl|Alt|Shift)\+(?:F\d{1,2}|\w)\b|\bF\d{1,2}\b|\bEsc\b")
"""A key as the palette and help write it."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def keys_of(bindings: list[Any]) -> dict[str, str]:
    """key -> action, with "escape,q" split into its keys."""
    return {k: b.action for b in bindings if isinstance(b, Binding) for k in b.key.split(",")}


def test_every_binding_is_a_command_or_a_source_key() -> None:
    bound = keys_of(AssistApp.BINDINGS)
    for c in COMMANDS:
        if c.key:
            assert bound.pop(c.key) == f"command({c.name!r})", c
    digits = {str(n): f"pick_source({n})" for n in commands.SOURCE_DIGITS}
    alts = {f"alt+{n}": f"open_source({n})" for n in commands.SOURCE_DIGITS}
    assert bound == digits | alts  # nothing bound outside the table
    assert len({c.name for c in COMMANDS}) == len(COMMANDS)
    assert len({c.key for c in COMMANDS if c.key}) == len([c for c in COMMANDS if c.key])


def test_each_key_named_in_words_is_the_key_bound() -> None:
    """A help text may name another command's key ("else F7"), never a key nothing binds."""
    bound = {key_label(k) for k in keys_of(AssistApp.BINDINGS)}
    others = {"Ctrl+P", "Ctrl+Q"}  # Textual's, checked below
    for text in [c.help for c in COMMANDS] + [w for row in commands.MORE_KEYS for w in row]:
        for word in KEY_WORDS.findall(text):
            assert word in bound | others, (word, text)


def test_the_other_keys_the_help_lists_are_bound() -> None:
    assert App.COMMAND_PALETTE_BINDING == "ctrl+p"
    assert keys_of(App.BINDINGS)["ctrl+q"] == "quit"
    approval = keys_of(ApprovalScreen.BINDINGS)
    assert [approval[k] for k in ("y", "n", "a", "escape")] == [
        "answer('yes')", "answer('no')", "answer('always')", "answer('no')"
    ]  # fmt: skip
    assert {"escape", "q"} <= set(keys_of(PreviewScreen.BINDINGS))
    assert {"escape", "q"} <= set(keys_of(HelpScreen.BINDINGS))
    labels = [k for k, _ in commands.MORE_KEYS]
    assert {"Ctrl+P", "Ctrl+Q", "y / n / a", "Esc / q", "Alt+1 … Alt+9"} <= set(labels)


def test_every_slash_command_in_the_help_dispatches_to_itself() -> None:
    for usage, _ in commands.chat_rows():
        if usage.startswith("/"):
            command = BY_NAME[usage.split()[0].removeprefix("/")]
            assert command.slash and command.usage == usage
    assert {c.usage for c in COMMANDS if c.slash} <= {u for u, _ in commands.chat_rows()}


def doc_key_table() -> list[tuple[str, str]]:
    section = DOC.read_text().split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return [tuple(cell.strip() for cell in row.strip("|").split(" | ")) for row in rows]  # type: ignore[misc]


def test_the_docs_key_table_is_the_help_table() -> None:
    assert doc_key_table() == commands.key_rows(), (
        "docs/tui.md: paste in this table:\n"
        + "\n".join(f"| {k} | {w} |" for k, w in commands.key_rows())
    )


def test_the_docs_name_every_slash_command_and_no_other() -> None:
    section = DOC.read_text().split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`/([a-z]+)", section))
    assert named == {c.name for c in COMMANDS if c.slash}


@pytest.mark.anyio
async def test_the_palette_and_the_help_screen_show_every_command(ws: Workspace) -> None:
    app = AssistApp(workspace=ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        palette = {c.title: c for c in app.get_system_commands(app.screen)}
        assert len(palette) == len(list(app.get_system_commands(app.screen)))  # no title twice
        for c in COMMANDS:
            if not c.palette:
                assert c.title not in palette
                continue
            words = KEY_WORDS.findall(palette[c.title].help)
            assert words == ([key_label(c.key)] if c.key else []), (c.title, words)
            assert not c.slash or c.usage in palette[c.title].help
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert help_screen.keys == commands.key_rows()
        assert help_screen.commands == commands.chat_rows()
        # The palette's "Keys" is ours: it opens the same help (and runs through the table).
        await pilot.press("escape")
        assert palette["Keys"].callback() is None  # a sync command: it ran at once
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
