"""Modal screens: the code preview that citations and search results open, and the key help."""

from __future__ import annotations

from typing import ClassVar

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from assistant.index.languages import language_for_path

# Lexer names rich (pygments) knows for our grammar names, where they differ.
_LEXERS = {"c_sharp": "csharp", "tsx": "tsx", "bash": "bash"}
PREVIEW_CONTEXT = 6
"""Lines shown above the cited line when the preview opens."""


def lexer_for(path: str) -> str:
    language = language_for_path(path) or "text"
    return _LEXERS.get(language, language)


class PreviewScreen(ModalScreen[None]):
    """A file with the cited lines highlighted, scrolled so they are in view."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Close preview")]

    def __init__(self, path: str, text: str, line: int, end_line: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.text = text
        self.line = max(1, line)
        self.end_line = max(self.line, end_line or self.line)

    def compose(self) -> ComposeResult:
        lines = range(self.line, self.end_line + 1)
        syntax = Syntax(
            self.text,
            lexer_for(self.path),
            line_numbers=True,
            highlight_lines=set(lines),
            theme="monokai",
            word_wrap=False,
            indent_guides=False,
        )
        with Vertical(id="preview-box"):
            # Not markup: a path like `pages/[id].tsx` is shown as it is.
            title = Content.assemble(
                (f"{self.path}:{self.line}", "bold"), "  ", ("(Esc to close)", "dim")
            )
            yield Static(title, id="preview-title")
            with VerticalScroll(id="preview-scroll"):
                yield Static(syntax, id="preview-code")

    def on_mount(self) -> None:
        scroll = self.query_one("#preview-scroll", VerticalScroll)
        scroll.focus()
        self.call_after_refresh(
            scroll.scroll_to, y=max(0, self.line - 1 - PREVIEW_CONTEXT), animate=False
        )

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


def _cell(text: str) -> str:
    """A markdown table cell: a `|` (in `/copy [code|N]`) would split it."""
    return text.replace("|", "\\|")


class HelpScreen(ModalScreen[None]):
    """Every key and chat command, one table each (made from commands.COMMANDS)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,f1", "dismiss", "Close help")]

    def __init__(self, keys: list[tuple[str, str]], commands: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys
        self.commands = commands

    def compose(self) -> ComposeResult:
        rows = "\n".join(f"| `{_cell(k)}` | {_cell(what)} |" for k, what in self.keys)
        cmds = "\n".join(f"| `{_cell(c)}` | {_cell(what)} |" for c, what in self.commands)
        text = (
            "# Keys\n\n| key | action |\n|---|---|\n"
            f"{rows}\n\n"
            "# Chat commands\n\n| type | does |\n|---|---|\n"
            f"{cmds}\n\n"
            "Ctrl+P opens the command palette with every action. The mouse works too: click a "
            "tab, a result or a citation. ↑ ↓ PgUp PgDn scroll; Esc or q closes this help."
        )
        with VerticalScroll(id="help-box"):
            yield Markdown(text, id="help-text")

    def on_mount(self) -> None:
        # Focused at once, so ↑ ↓ PgUp PgDn Home End scroll it without a Tab first.
        self.query_one("#help-box", VerticalScroll).focus()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
