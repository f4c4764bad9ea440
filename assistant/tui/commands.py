"""What the TUI does beyond asking: its commands, copying and screenshots.

`COMMANDS` is the one table of what the user can do and every way to reach it: the app's key
bindings, the command palette, the slash commands, the help screen and the key table in
docs/tui.md are all made from it (tests/test_tui_commands_table.py holds them to it), so a key
cannot be F6 in one place and Ctrl+H in another. Each command runs as a function of the app, so
`app.py` keeps to layout, state and indexing.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand
from textual.binding import Binding

from assistant.errors import AssistError
from assistant.repo.atomic import write_atomic
from assistant.repo.own_files import PRIVATE_FILE

if TYPE_CHECKING:
    from textual.screen import Screen

    from assistant.tui.app import AssistApp


@dataclass(frozen=True)
class Command:
    """One thing the user can do, and the ways to reach it."""

    name: str
    """`/name` when `slash`; bindings run it as the app's `command('name')` action."""
    title: str
    """Its palette entry."""
    help: str
    """What it does, as the help screen, the palette and docs/tui.md say it."""
    run: Callable[[AssistApp, str], object]
    """Runs it, with what follows a slash command ("" from a key or the palette)."""
    key: str = ""
    """A Textual key name: "f6", "ctrl+n"."""
    slash: bool = False
    args: str = ""
    """What the slash command takes, as the help shows it: "[ID]"."""
    footer: str = ""
    """Shown in the footer, under this label; not shown when empty."""
    palette: bool = True
    priority: bool = False
    """Handled as the key arrives (F7: a digit right behind it must see the new focus)."""

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.args}".rstrip()


def _agent(app: AssistApp, task: str) -> Awaitable[None]:
    return app.chat.start_agent(task)


def _undo(app: AssistApp, arg: str, *, redo: bool) -> None:
    app.chat.undo_redo(redo=redo, force=arg == "--force")


COMMANDS: tuple[Command, ...] = (
    Command("help", "Keys", "every key and chat command: this help",
            lambda app, _: app.action_help(), key="f1", slash=True, footer="Help"),
    Command("chat", "Chat", "go to the chat and its input",
            lambda app, _: app.action_show_chat(), key="f2", footer="Chat"),
    Command("search", "Search", "search the index",
            lambda app, _: app.action_show_search(), key="f3", footer="Search"),
    Command("sources", "Toggle sources", "show or hide the chunks sent with each question",
            lambda app, _: app.action_toggle_sources(), key="f4", slash=True, footer="Sources"),
    Command("stop", "Stop answer", "stop the answer or the agent",
            lambda app, _: app.action_stop(), key="escape"),
    Command("new", "New conversation", "start a new conversation (stop a streaming answer first)",
            lambda app, _: app.action_new_chat(), key="ctrl+n", slash=True, footer="New chat"),
    Command("resume", "Resume conversation",
            "load the latest saved conversation (/resume ID: that one)",
            lambda app, arg: app.action_resume_chat(arg or None), key="ctrl+r", slash=True,
            args="[ID]"),
    Command("reindex", "Re-index", "bring the index up to date",
            lambda app, _: app.action_reindex(), key="f5"),
    Command("history", "History",
            "browse the saved conversations: type to filter, Enter resumes, Delete removes",
            lambda app, _: app.action_history(), key="f6", slash=True),
    Command("copy", "Copy answer",
            "copy the last answer (/copy code: its last code block; /copy N: code block N)",
            lambda app, arg: copy_from_answer(app, arg), key="ctrl+y", slash=True,
            args="[code|N]"),
    Command("copy-code", "Copy code block", "copy the last answer's last code block",
            lambda app, _: copy_from_answer(app, "code")),
    Command("sources-list", "Sources list",
            "focus the last answer's sources, where 1 … 9 open source [1] … [9]",
            lambda app, _: app.action_focus_sources(), key="f7", priority=True),
    Command("model", "Model", "show the model in use, or switch to another GGUF file",
            lambda app, arg: switch_model(app, arg), slash=True, args="[PATH]"),
    Command("agent", "Agent",
            "agent mode: the model reads, edits and runs commands, each change approved",
            _agent, slash=True, args="TASK", palette=False),
    Command("undo", "Undo agent change",
            "undo the agent's last change (--force: over your own edits too)",
            lambda app, arg: _undo(app, arg, redo=False), slash=True, args="[--force]"),
    Command("redo", "Redo agent change", "redo what /undo undid",
            lambda app, arg: _undo(app, arg, redo=True), slash=True),
    Command("screenshot", "Screenshot", "save an SVG of the screen",
            lambda app, _: save_screenshot(app)),
)  # fmt: skip
BY_NAME = {c.name: c for c in COMMANDS}
SOURCE_DIGITS = range(1, 10)
"""Alt+n opens source [n] from anywhere; on the focused sources list (F7), n alone does."""
MORE_KEYS: tuple[tuple[str, str], ...] = (
    ("Alt+1 … Alt+9", "open source [1] … [9] of the last answer (where the terminal sends "
     "Alt+digit; else F7, then 1 … 9)"),
    ("Enter", "send the question; open the selected result, citation or source"),
    ("Esc / q", "close a preview or the help"),
    ("y / n / a", "on an agent approval: yes / no / always for that tool this session (Esc: no)"),
    ("Tab", "move focus"),
    ("Ctrl+P", "command palette: every action"),
    ("Ctrl+Q", "quit"),
)  # fmt: skip
"""Keys that are not commands: the app's source keys, the widgets' and screens' own, Textual's."""
MORE_CHAT: tuple[tuple[str, str], ...] = (
    ("@path  @symbol", "in a question: send that file or definition with it (pinned)"),
)
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
CLIPBOARD_TOOLS = (
    ("WAYLAND_DISPLAY", ["wl-copy"]),
    ("DISPLAY", ["xclip", "-selection", "clipboard"]),
    ("DISPLAY", ["xsel", "--clipboard", "--input"]),
    ("", ["pbcopy"]),
)
"""(environment variable that must be set, command): tried after OSC 52, which some terminals
ignore (or strip inside tmux)."""


def key_label(key: str) -> str:
    """A key as people write it: "ctrl+n" is "Ctrl+N", "escape" is "Esc"."""
    names = {"escape": "Esc", "ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "enter": "Enter"}
    return "+".join(names.get(part, part.upper()) for part in key.split("+"))


def bindings() -> list[Binding]:
    """The app's key bindings: the commands' keys, then the source keys."""
    return [
        *[
            Binding(c.key, f"command({c.name!r})", c.footer or c.title, show=bool(c.footer),
                    priority=c.priority)
            for c in COMMANDS if c.key
        ],
        *[Binding(str(n), f"pick_source({n})", show=False, priority=True) for n in SOURCE_DIGITS],
        *[Binding(f"alt+{n}", f"open_source({n})", f"source [{n}]", show=False)
          for n in SOURCE_DIGITS],
    ]  # fmt: skip


def key_rows() -> list[tuple[str, str]]:
    """(key, what it does) for the help screen and docs/tui.md."""
    return [(key_label(c.key), c.help) for c in COMMANDS if c.key] + list(MORE_KEYS)


def chat_rows() -> list[tuple[str, str]]:
    """(what to type, what it does) for the help screen."""
    return list(MORE_CHAT) + [(c.usage, c.help) for c in COMMANDS if c.slash]


def invoke(app: AssistApp, command: Command, arg: str = "") -> Awaitable[None] | None:
    """Run `command`; what a coroutine leaves comes back to be awaited. A known failure is
    shown, from a key, the palette or a slash command alike."""
    try:
        result = command.run(app, arg)
    except AssistError as exc:
        app.notify_error(exc)
        return None
    return _shown(app, result) if inspect.isawaitable(result) else None


async def _shown(app: AssistApp, pending: Awaitable[Any]) -> None:
    try:
        await pending
    except AssistError as exc:
        app.notify_error(exc)


async def run_command(app: AssistApp, text: str) -> None:
    """A slash command typed in the chat input."""
    name, _, rest = text.partition(" ")
    command = BY_NAME.get(name.removeprefix("/"))
    if command is None or not command.slash:
        app.notify(f"unknown command {name} (/help lists them)", severity="warning", markup=False)
        return
    if (pending := invoke(app, command, rest.strip())) is not None:
        await pending


def system_commands(app: AssistApp, screen: Screen[Any]) -> Iterable[SystemCommand]:
    """The palette: Textual's own entries, with ours in place of its "Keys" (the help panel
    it opens says less than F1) and "Screenshot" (ours says why a save failed)."""
    ours = {c.title for c in COMMANDS}
    for command in app.builtin_system_commands(screen):
        if command.title not in ours:
            yield command
    for c in COMMANDS:
        if c.palette:
            ways = ", ".join(w for w in (c.key and key_label(c.key), c.slash and c.usage) if w)
            help = c.help[0].upper() + c.help[1:] + (f" ({ways})" if ways else "")
            yield SystemCommand(c.title, help, lambda c=c: invoke(app, c))


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
