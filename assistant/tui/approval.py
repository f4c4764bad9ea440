"""The approval screen of agent mode: the exact diff or command, then y / n / a.

Everything shown comes from the model, so it is rendered as plain `rich.text.Text` (never
console markup, which a model could use to restyle or hide text), from the `shown*` properties of
`ApprovalRequest`, where control characters are escaped. Escape means no. "Always" is not offered
for sensitive writes: those are asked every time.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from assistant.agent.toolbox import ApprovalRequest

Answer = Literal["yes", "no", "always"]


class ApprovalScreen(ModalScreen[Answer]):
    """Dismisses with "yes", "no" or "always"; push it with a callback or `push_screen_wait`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer('yes')", "Yes"),
        Binding("n", "answer('no')", "No"),
        Binding("a", "answer('always')", "Always for this tool"),
        Binding("escape", "answer('no')", "No", show=False),
    ]
    DEFAULT_CSS = """
    ApprovalScreen { align: center middle; }
    #approval-box {
        width: 90%; height: 80%; border: thick $warning; background: $surface; padding: 0 1;
    }
    #approval-title { text-style: bold; margin-bottom: 1; }
    #approval-warning { color: $error; text-style: bold; margin-bottom: 1; }
    #approval-detail { height: 1fr; border: round $primary; }
    #approval-keys { margin-top: 1; }
    """

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        req = self.request
        heading = "Apply this edit?" if req.kind == "edit" else "Run this command?"
        with Vertical(id="approval-box"):
            yield Static(Text(f"{heading}  {req.shown_summary}"), id="approval-title")
            if req.warning:
                yield Static(Text(f"WARNING: {req.shown_warning}"), id="approval-warning")
            with VerticalScroll(id="approval-detail"):
                if req.kind == "edit":
                    body: Syntax | Text = Syntax(req.shown, "diff", theme="monokai")
                else:
                    body = Text(req.shown)
                yield Static(body, id="approval-body")
            keys = "y yes   n no (Esc)"
            if not req.sensitive:
                keys += f"   a always for {req.tool} in this session"
            yield Static(Text(keys), id="approval-keys")

    def on_mount(self) -> None:
        self.query_one("#approval-detail", VerticalScroll).focus()

    def action_answer(self, answer: Answer) -> None:
        if answer == "always" and self.request.sensitive:
            return  # must be a plain yes, each time
        self.dismiss(answer)
