"""The saved conversations as a screen: type to filter, Enter resumes one, Delete removes it."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from assistant.chat.history import History, Summary


def summary_label(s: Summary) -> Text:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.modified))
    if not s.readable:
        return Text.assemble((when, "dim"), "  ", (f"{s.id}  (unreadable)", "red"))
    turns = "1 turn" if s.turns == 1 else f"{s.turns} turns"
    return Text.assemble((when, "dim"), "  ", (f"{turns:9}", "cyan"), "  ", s.first_question[:70])


class HistoryScreen(ModalScreen[str | None]):
    """Dismissed with the id of the conversation to resume, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("delete,ctrl+d", "delete", "Delete the highlighted conversation"),
        Binding("down", "to_list", "To the list", show=False),
    ]

    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history
        self.all: list[Summary] = history.summaries()
        self.shown: list[Summary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box"):
            yield Static(
                Text.assemble(
                    ("Saved conversations", "bold"),
                    ("  type to filter · Enter resumes · Delete removes · Esc closes", "dim"),
                ),
                id="history-title",
            )
            yield Input(placeholder="filter by question or id", id="history-filter")
            yield OptionList(id="history-list")

    def on_mount(self) -> None:
        self.show("")
        self.query_one("#history-filter", Input).focus()

    def show(self, needle: str) -> None:
        found = self.query("#history-list")
        if not found:
            return  # the filter's first Changed event can come before the list exists
        listing = found.first(OptionList)
        needle = needle.strip().lower()
        self.shown = [
            s for s in self.all if needle in s.first_question.lower() or needle in s.id.lower()
        ]
        listing.clear_options()
        if not self.shown:
            what = "no saved conversation yet" if not self.all else "nothing matches"
            listing.add_option(Option(Text(what, style="dim"), disabled=True))
            return
        listing.add_options([Option(summary_label(s)) for s in self.shown])
        listing.highlighted = 0

    @on(Input.Changed, "#history-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.show(event.value)

    @on(Input.Submitted, "#history-filter")
    def filter_submitted(self) -> None:
        self._resume(self.query_one("#history-list", OptionList).highlighted)

    @on(OptionList.OptionSelected, "#history-list")
    def selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._resume(event.option_index)

    def _resume(self, index: int | None) -> None:
        if index is not None and 0 <= index < len(self.shown) and self.shown[index].readable:
            self.dismiss(self.shown[index].id)

    def action_to_list(self) -> None:
        self.query_one("#history-list", OptionList).focus()

    def action_delete(self) -> None:
        listing = self.query_one("#history-list", OptionList)
        index = listing.highlighted
        if index is None or not 0 <= index < len(self.shown):
            return
        gone = self.shown[index]
        self.history.delete(gone.id)
        self.all = [s for s in self.all if s.id != gone.id]
        self.show(self.query_one("#history-filter", Input).value)
        self.notify(f"deleted conversation {gone.id}", timeout=3)
