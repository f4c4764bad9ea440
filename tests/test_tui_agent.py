"""Agent mode in the TUI, driven with Pilot on a real git repository and real llama.cpp.

The tiny random model cannot choose a tool, so it is steered exactly as in tests/test_agent.py:
`Steered` wraps the real model and swaps in a grammar allowing only the next scripted call. The
app's own approver, approval screen, worker, tools and checkpoints are all real.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_agent import EDIT, FINAL, INJECTION, Steered, git
from test_tui import type_text, wait_for
from textual.widgets import Static
from tiny_gguf import CHATML

import assistant.tui.app
from assistant.agent.loop import Agent
from assistant.config import ModelSettings
from assistant.llm.local import LocalModel
from assistant.tui.agent_pane import AgentPane
from assistant.tui.app import AssistApp
from assistant.tui.approval import ApprovalScreen
from assistant.workspace import Workspace

SIZE = (110, 32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tiny(make_gguf: Callable[..., Path]) -> LocalModel:
    path = make_gguf(chat_template=CHATML, favorite="a", context_length=16384)
    return LocalModel.load(path, ModelSettings(n_ctx=16384, temperature=0.0))


@pytest.fixture
def ws(tmp_path: Path, isolated_env: dict[str, str]) -> Workspace:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "src" / "calc.py").write_text(INJECTION)
    git(root, "add", "src")
    git(root, "commit", "-qm", "init")
    (root / "src" / "calc.py").write_text(INJECTION + "\n# work in progress\n")  # dirty
    w = Workspace.open(root, overrides={"index": {"vectors": False}}, env=isolated_env)
    list(w.index())
    return w


class SteeredApp(AssistApp):
    """The TUI whose chat pane gets the steered agent when it mounts."""

    CSS_PATH = str(Path(assistant.tui.app.__file__).with_name("app.tcss"))  # not beside tests

    def __init__(self, ws: Workspace, model: LocalModel, calls: list[dict[str, Any]]) -> None:
        super().__init__(workspace=ws, watch=False)
        self.steered = (model, calls)

    def on_mount(self) -> None:
        super().on_mount()
        assert self.ws is not None
        model, calls = self.steered
        self.chat.agent = Agent(self.ws, self.chat.approve_in_worker, model=Steered(model, calls))


def agent_app(ws: Workspace, model: LocalModel, calls: list[dict[str, Any]]) -> AssistApp:
    return SteeredApp(ws, model, calls)


def notes(app: AssistApp) -> str:
    return "\n".join(n.message for n in app._notifications)


@pytest.mark.anyio
async def test_declined_edit_leaves_the_file(tiny: LocalModel, ws: Workspace) -> None:
    calc = ws.root / "src" / "calc.py"
    before = calc.read_bytes()
    app = agent_app(ws, tiny, [EDIT, FINAL])
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "/agent swap the operands")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        body = app.screen.query_one("#approval-body", Static).content
        assert "-    return a + b\n+    return b + a\n" in str(getattr(body, "code", body))
        await pilot.press("n")
        await wait_for(pilot, lambda: not app.chat.busy)
        view = app.query_one(AgentPane)
        assert view.result is not None and view.result.text == "done"
        assert any("no: edit src/calc.py" in line for line in view.lines)
        assert calc.read_bytes() == before
        # Nothing changed, so there is nothing to undo: a notification with the fix.
        await type_text(pilot, "/undo")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "nothing to undo" in notes(app))
        assert "Fix:" in notes(app)


@pytest.mark.anyio
async def test_approved_edit_is_applied_and_undo_restores_it(
    tiny: LocalModel, ws: Workspace
) -> None:
    calc = ws.root / "src" / "calc.py"
    before = calc.read_bytes()
    status = git(ws.root, "status", "--porcelain")
    app = agent_app(ws, tiny, [EDIT, FINAL])
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "/agent swap the operands")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.chat.busy)
        view = app.query_one(AgentPane)
        assert any("edit_file(" in line for line in view.lines)
        assert any("/undo reverts it" in line for line in view.lines)
        assert view.result is not None and view.result.reason == "answer"
        # The run ends with one line: outcome, steps, files changed, how to undo.
        assert view.lines[-1] == (
            "agent finished · 2 steps · 1 file changed (src/calc.py) · undo: /undo once"
        )
        assert "return b + a" in calc.read_text()
        await type_text(pilot, "/undo")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "undone" in notes(app))
        assert calc.read_bytes() == before
        assert git(ws.root, "status", "--porcelain") == status
        await type_text(pilot, "/redo")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "redone" in notes(app))
        assert "return b + a" in calc.read_text()


@pytest.mark.anyio
async def test_always_lasts_for_the_tui_session(tiny: LocalModel, ws: Workspace) -> None:
    args = {"path": "src/calc.py", "search": "b + a", "replace": "a + b + 0"}
    second = {"tool": "edit_file", "args": args}
    app = agent_app(ws, tiny, [EDIT, FINAL, second, FINAL])
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "/agent first")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: not app.chat.busy)
        await type_text(pilot, "/agent second")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.query(AgentPane)) == 2 and not app.chat.busy)
        assert not isinstance(app.screen, ApprovalScreen)  # not asked again
        assert "a + b + 0" in (ws.root / "src" / "calc.py").read_text()
        assert any("auto: edit src/calc.py" in line for line in app.query(AgentPane)[1].lines)
