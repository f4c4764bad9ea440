"""The agent's approval screen in a minimal real Textual app, driven by Pilot keys."""

from __future__ import annotations

import pytest
from rich.syntax import Syntax
from rich.text import Text
from textual.app import App
from textual.widgets import Static

from assistant.agent.toolbox import ApprovalRequest
from assistant.tui.approval import ApprovalScreen

EDIT = ApprovalRequest(
    "edit_file",
    "edit",
    "edit src/app.py",
    "--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n",
    ("src/app.py",),
)
SNEAKY = "echo [b]safe[/b]\x1b[2K\rrm -rf ~"  # console markup and a line-erasing escape
COMMAND = ApprovalRequest("run_command", "command", f"run: {SNEAKY}", SNEAKY)
HOOK = ApprovalRequest(
    "create_file", "edit", "create .vscode/tasks.json", "+{}\n", (".vscode/tasks.json",),
    ".vscode/tasks.json can make tools run commands later",
)  # fmt: skip


class Host(App[None]):
    """Pushes one approval screen and keeps its answer, as the agent's worker would."""

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__()
        self.request = request
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(ApprovalScreen(self.request), self.answers.append)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize(("key", "answer"), [("y", "yes"), ("n", "no"), ("a", "always"),
                                             ("escape", "no")])  # fmt: skip
async def test_keys_answer(key: str, answer: str) -> None:
    app = Host(EDIT)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ApprovalScreen)
        await pilot.press("x")  # not a key of the screen: nothing happens
        assert app.answers == []
        await pilot.press(key)
        await pilot.pause()
        assert app.answers == [answer]
        assert not isinstance(app.screen, ApprovalScreen)


@pytest.mark.anyio
async def test_edit_shows_the_diff() -> None:
    app = Host(EDIT)
    async with app.run_test() as pilot:
        await pilot.pause()
        shown = app.screen.query_one("#approval-body", Static)
        assert isinstance(shown.content, Syntax) and shown.content.code == EDIT.detail
        title = app.screen.query_one("#approval-title", Static).content
        assert isinstance(title, Text) and "edit src/app.py" in title.plain


@pytest.mark.anyio
async def test_command_is_shown_exactly_as_plain_text() -> None:
    app = Host(COMMAND)
    async with app.run_test() as pilot:
        await pilot.pause()
        shown = app.screen.query_one("#approval-body", Static).content
        assert isinstance(shown, Text)
        assert shown.plain == "echo [b]safe[/b]\\x1b[2K\\rrm -rf ~"  # markup not applied


@pytest.mark.anyio
async def test_sensitive_write_warns_and_offers_no_always() -> None:
    app = Host(HOOK)
    async with app.run_test() as pilot:
        await pilot.pause()
        warning = app.screen.query_one("#approval-warning", Static).content
        assert isinstance(warning, Text) and "run commands later" in warning.plain
        keys = app.screen.query_one("#approval-keys", Static).content
        assert isinstance(keys, Text) and "always" not in keys.plain
        await pilot.press("a")
        await pilot.pause()
        assert app.answers == [] and isinstance(app.screen, ApprovalScreen)
        await pilot.press("y")
        await pilot.pause()
        assert app.answers == ["yes"]


@pytest.mark.anyio
async def test_title_and_warning_show_escapes_not_obey_them() -> None:
    # The summary holds a path the model chose; a concealing escape in it must not hide text.
    name = "notes\x1b[8m.txt"
    request = ApprovalRequest(
        "create_file", "edit", f"create {name}", "+hi\n", (name,), f"{name} is \x1b[8msensitive"
    )
    app = Host(request)
    async with app.run_test() as pilot:
        await pilot.pause()
        title = app.screen.query_one("#approval-title", Static).content
        warning = app.screen.query_one("#approval-warning", Static).content
        assert isinstance(title, Text) and isinstance(warning, Text)
        assert title.plain.endswith("create notes\\x1b[8m.txt") and "\x1b" not in title.plain
        assert "\\x1b[8msensitive" in warning.plain and "\x1b" not in warning.plain
