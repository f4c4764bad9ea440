"""What the TUI does beyond asking: slash commands, palette entries, copying and screenshots.

Each is a function of the app, so `app.py` keeps to layout, state and indexing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand

from assistant.errors import AssistError
from assistant.repo.atomic import write_atomic
from assistant.repo.own_files import PRIVATE_FILE

if TYPE_CHECKING:
    from textual.screen import Screen

    from assistant.tui.app import AssistApp

CHAT_COMMANDS: list[tuple[str, str]] = [
    ("@path  @symbol", "in a question: send that file or definition with it (pinned)"),
    ("/new", "start a new conversation"),
    ("/resume [ID]", "load the latest saved conversation, or the one with this id"),
    ("/history", "browse the saved conversations: filter, resume, delete"),
    ("/sources", "show or hide the chunks sent with each question"),
    ("/copy [code|N]", "copy the last answer, its last code block, or code block N"),
    ("/model [PATH]", "show the model in use, or switch to another GGUF file"),
    ("/agent TASK", "agent mode: the model reads, edits and runs commands, each change approved"),
    ("/undo", "undo the agent's last change (/undo --force: over your own edits too)"),
    ("/redo", "redo what /undo undid"),
    ("/help", "this help"),
]
MORE_KEYS: list[tuple[str, str]] = [
    ("alt+1…9", "open source [1] … [9] of the last answer (where the terminal sends Alt+digit; "
     "else F7, then 1 … 9)"),
    ("enter", "send the question / open the selected result or citation"),
    ("ctrl+p", "command palette: every action"),
    ("ctrl+q", "quit"),
    ("tab", "move focus"),
]  # fmt: skip
"""Keys the help lists beside the app's bindings: the widgets' own, and Textual's."""
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
CLIPBOARD_TOOLS = (
    ("WAYLAND_DISPLAY", ["wl-copy"]),
    ("DISPLAY", ["xclip", "-selection", "clipboard"]),
    ("DISPLAY", ["xsel", "--clipboard", "--input"]),
    ("", ["pbcopy"]),
)
"""(environment variable that must be set, command): tried after OSC 52, which some terminals
ignore (or strip inside tmux)."""


async def run_command(app: AssistApp, text: str) -> None:
    name, _, rest = text.partition(" ")
    rest = rest.strip()
    try:
        if name == "/new":
            app.action_new_chat()
        elif name == "/resume":
            await app.action_resume_chat(rest or None)
        elif name == "/history":
            app.action_history()
        elif name == "/sources":
            app.action_toggle_sources()
        elif name == "/copy":
            copy_from_answer(app, rest)
        elif name == "/model":
            switch_model(app, rest)
        elif name == "/help":
            app.action_help()
        elif name == "/agent":
            await app.chat.start_agent(rest)
        elif name in ("/undo", "/redo"):
            app.chat.undo_redo(redo=name == "/redo", force=rest == "--force")
        else:
            app.notify(
                f"unknown command {name} (/help lists them)", severity="warning", markup=False
            )
    except AssistError as exc:
        app.notify_error(exc)


def system_commands(app: AssistApp, screen: Screen[Any]) -> Iterable[SystemCommand]:
    """The palette: Textual's own entries, with ours in place of its "Keys" (the help panel
    it opens says less than F1) and "Screenshot" (ours says why a save failed)."""
    for command in app.builtin_system_commands(screen):
        if command.title not in ("Keys", "Screenshot"):
            yield command
    yield SystemCommand("Keys", "Every key and chat command (F1)", app.action_help)
    yield SystemCommand("Chat", "Go to the chat and its input (F2)", app.action_show_chat)
    yield SystemCommand("Search", "Search the index (F3)", app.action_show_search)
    yield SystemCommand(
        "Toggle sources", "Show the chunks sent with each question (F4)", app.action_toggle_sources
    )
    yield SystemCommand("Stop answer", "Stop the answer or the agent (Esc)", app.action_stop)
    yield SystemCommand("New conversation", "Start over (Ctrl+N)", app.action_new_chat)
    yield SystemCommand(
        "Resume conversation", "Load the latest saved one (Ctrl+R)", app.action_resume_chat
    )
    yield SystemCommand("History", "Browse saved conversations (Ctrl+H)", app.action_history)
    yield SystemCommand("Copy answer", "Copy the last answer (Ctrl+Y)", app.action_copy_answer)
    yield SystemCommand(
        "Copy code block", "Copy the last answer's last code block", app.action_copy_code
    )
    yield SystemCommand(
        "Model", "Show the model in use; /model PATH switches", lambda: switch_model(app, "")
    )
    yield SystemCommand("Re-index", "Bring the index up to date (F5)", app.action_reindex)
    yield SystemCommand("Screenshot", "Save an SVG of the screen", app.action_screenshot)


# -- copying ------------------------------------------------------------------------------------


def code_blocks(markdown: str) -> list[str]:
    return [m.group(1).rstrip("\n") for m in _FENCE.finditer(markdown)]


def copy_from_answer(app: AssistApp, which: str = "") -> None:
    """`/copy`: the last answer; `/copy code`: its last code block; `/copy N`: block N."""
    answer = app.chat.last_answer()
    if not answer:
        raise AssistError("no answer to copy yet", "ask a question first")
    if not which:
        copy_text(app, answer, "the answer")
        return
    blocks = code_blocks(answer)
    if not blocks:
        raise AssistError("the last answer has no code block", "/copy copies the whole answer")
    if which == "code":
        copy_text(app, blocks[-1], "the last code block")
        return
    if not which.isdigit() or not 1 <= int(which) <= len(blocks):
        raise AssistError(f"/copy {which}: no such code block", f"blocks are 1 to {len(blocks)}")
    copy_text(app, blocks[int(which) - 1], f"code block {which}")


def copy_text(app: AssistApp, text: str, what: str) -> None:
    """OSC 52 to the terminal, then a clipboard command if the desktop has one; failing both,
    a file the user can open. The notification says which worked."""
    app.copy_to_clipboard(text)
    ways = ["terminal (OSC 52)"]
    for needs, cmd in CLIPBOARD_TOOLS:
        if (needs and not os.environ.get(needs)) or shutil.which(cmd[0]) is None:
            continue
        if cmd[0] == "pbcopy" and sys.platform != "darwin":
            continue
        try:
            subprocess.run(cmd, input=text.encode(), timeout=2, check=True, capture_output=True)
        except (OSError, subprocess.SubprocessError):
            continue
        ways.append(cmd[0])
        break
    note = f"copied {what} ({len(text):,} characters) to the clipboard: {' and '.join(ways)}"
    if len(ways) == 1 and app.ws is not None:
        saved = app.ws.index_dir / "clipboard.txt"
        try:
            app.ws.own_dir()
            write_atomic(saved, text, mode=PRIVATE_FILE)
            note += f"; if your terminal ignores OSC 52, it is also in {saved}"
        except (OSError, AssistError):
            pass
    app.notify(note, timeout=5, markup=False)


# -- the model ----------------------------------------------------------------------------------


def switch_model(app: AssistApp, path: str) -> None:
    """`/model`: what is in use; `/model PATH`: that GGUF from the next question on."""
    ws = app.ws
    if ws is None:
        return
    if not path:
        note = ws.demo_note()
        app.notify(
            f"model: {app.model_state.name} ({ws.settings.origin('model.path')})\n"
            + (f"{note}\n" if note else "")
            + "switch with /model PATH (a .gguf file)",
            timeout=12, markup=False,
        )  # fmt: skip
        return
    if app.chat.refuse_while_busy():
        return
    ws.use_model(str(Path(path).expanduser()))
    app.model_changed()
    app.notify(f"model: {Path(path).name} (loads at the next question)", timeout=5, markup=False)


# -- screenshots --------------------------------------------------------------------------------


def save_screenshot(app: AssistApp) -> None:
    """To ~/Downloads when it exists, else the current directory; a failure says why."""
    downloads = Path.home() / "Downloads"
    where = "the current directory"
    try:
        where = str(downloads if downloads.is_dir() else Path.cwd())
        saved = app.save_screenshot(path=where)
    except OSError as exc:
        app.notify(
            f"could not save the screenshot in {where}: {exc.strerror or exc}",
            title="Screenshot", severity="error", markup=False,
        )  # fmt: skip
        return
    app.notify(f"saved the screenshot to {saved}", title="Screenshot", markup=False)
