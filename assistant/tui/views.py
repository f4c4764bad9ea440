"""The widgets of the main screen: chat turns, search results, and the status bar.

Views only show what the core returns; opening a location is a message the app handles
(`OpenLocation`), so citations and search results share one path through the privacy check.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Collapsible, Input, Markdown, OptionList, Static
from textual.widgets.markdown import MarkdownStream
from textual.widgets.option_list import Option

from assistant.chat.citations import Citation, Source
from assistant.chat.history import Turn
from assistant.index.search import Hit
from assistant.llm.protocol import FimKind
from assistant.tui.screens import lexer_for


class OpenLocation(Message):
    """Show `path` at `line` in the preview."""

    def __init__(self, path: str, line: int, end_line: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.line = line
        self.end_line = end_line


@dataclass(frozen=True)
class IndexState:
    files: int = 0
    symbols: int = 0
    chunks: int = 0
    vectors: int = 0
    watcher: str = "off"
    indexing: str = ""
    """What indexing is doing now (`parse 12/40`), empty when idle."""


@dataclass(frozen=True)
class ModelState:
    name: str = "not loaded"
    fim: FimKind | None = None
    """None until the model is loaded."""
    tokens_per_second: float | None = None
    activity: str = ""
    """What the model is doing now (`reading 1,368 tokens · 40%`), empty when idle."""
    demo: bool = False


FIM_LABELS: dict[FimKind, str] = {
    "tokens": "FIM",
    "server": "FIM (server)",
    "emulated": "emulated FIM",
}


MODEL_NAME_WIDTH = 30
"""The model's name is cut to this in the status bar, so speed stays visible at 80 columns."""


def status_text(index: IndexState | None, model: ModelState) -> Text:
    """Model first (what it does, its speed), then the index: a narrow terminal cuts the
    index counts, not the speed."""
    text = Text()
    name = model.name.removesuffix(".gguf")
    if len(name) > MODEL_NAME_WIDTH:
        name = name[: MODEL_NAME_WIDTH - 1] + "…"
    text.append(name, style="bold")
    if model.demo:
        text.append(" (demo)", style="yellow")
    if model.activity:
        text.append(f" · {model.activity}", style="yellow")
    elif model.tokens_per_second is not None:
        text.append(f" · {model.tokens_per_second:.1f} tok/s")
    if model.fim is not None:
        text.append(f" · {FIM_LABELS[model.fim]}")
    text.append("  │  ", style="dim")
    if index is None:
        text.append("no repository", style="bold red")
        return text
    if index.indexing:
        text.append(f"{index.indexing} · ", style="yellow")
    text.append(
        f"{index.files} files · {index.symbols} symbols · "
        f"vectors {index.vectors}/{index.chunks} · watcher {index.watcher}"
    )
    return text


class StatusBar(Static):
    """Index and model state, one line at the bottom."""

    def show(self, index: IndexState | None, model: ModelState) -> None:
        self.update(status_text(index, model))


# -- chat --------------------------------------------------------------------------------------


class LocationList(OptionList):
    """Citations and sources of one answer; Enter or a click opens the preview (and, while it
    has focus, 1 … 9 open source [n]: `AssistApp.action_pick_source`)."""

    def __init__(self, *, id: str | None = None, classes: str = "") -> None:
        super().__init__(id=id, classes=classes)
        self.locations: list[tuple[str, int, int]] = []

    def set_locations(self, turn: Turn) -> None:
        self.clear_options()
        self.locations = []
        by_n = {s.n: s for s in turn.sources}
        for c in turn.citations:
            self._add(c, by_n.get(c.source) if c.source is not None else None)
        for s in turn.sources:
            label = Text.assemble(
                (f"[{s.n}] ", "bold"),
                (f"{s.path}:{s.start_line}-{s.end_line}", "cyan"),
                f"  {s.kind}  {s.name}",
                (f"  ({s.reason}, {s.tokens} tokens)", "dim"),
            )
            self.locations.append((s.path, s.start_line, s.end_line))
            self.add_option(Option(label))
        self.display = bool(self.locations)
        if self.locations:
            self.highlighted = 0

    def _add(self, c: Citation, source: Source | None) -> None:
        if source is None:
            # Still openable when it names a line: the user can see what the model meant.
            label = Text.assemble(
                ("cited ", "bold red"), (c.written if not c.path else c.location, "red"),
                ("  not among the sources sent", "dim"),
            )  # fmt: skip
            self.add_option(Option(label, disabled=not c.path))
            self.locations.append((c.path, c.line, c.end_line))
            return
        where = f"{c.path}:{c.line}" + (f"-{c.end_line}" if c.end_line > c.line else "")
        label = Text.assemble(
            ("cited ", "bold green"), (f"{c.written} " if c.written.startswith("[") else ""),
            (where, "cyan"), (f"  in [{source.n}] {source.name}", "dim"),
        )  # fmt: skip
        self.locations.append((c.path, c.line, c.end_line))
        self.add_option(Option(label))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        path, line, end = self.locations[event.option_index]
        self.post_message(OpenLocation(path, line, end))


class SourcesView(Collapsible):
    """Exactly the chunks that went into the prompt, each with its location and text."""

    def __init__(self) -> None:
        super().__init__(title="Sources sent to the model", collapsed=True, classes="sources")

    def set_sources(self, sources: list[Source]) -> None:
        total = sum(s.tokens for s in sources)
        chunks = "1 chunk" if len(sources) == 1 else f"{len(sources)} chunks"
        self.title = f"Sources sent to the model: {chunks}, {total} tokens"
        body = self.query_one(Collapsible.Contents)
        body.remove_children()
        if not sources:
            body.mount(Static("No indexed code matched; the model answered without context."))
        for s in sources:
            body.mount(
                Static(Text(f"[{s.n}] {s.path}:{s.start_line}-{s.end_line}  {s.kind} {s.name}")),
                Static(
                    Syntax(s.text, lexer_for(s.path), line_numbers=True, start_line=s.start_line),
                    classes="source-code",
                ),
            )


class TurnView(Vertical):
    """One question and its streamed answer, sources and citations."""

    def __init__(self, question: str) -> None:
        super().__init__(classes="turn")
        self.question = question
        self.answer = Markdown("", classes="answer")
        self.stream: MarkdownStream | None = None
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("› ", "bold magenta"), self.question), classes="question")
        yield SourcesView()
        yield self.answer
        yield Static("", classes="turn-note")
        yield LocationList(classes="locations")

    def on_mount(self) -> None:
        self.query_one(LocationList).display = False

    def show_sources(self, sources: list[Source]) -> None:
        self.query_one(SourcesView).set_sources(sources)

    async def append(self, piece: str) -> None:
        if self.stream is None:
            self.stream = Markdown.get_stream(self.answer)
        self.text += piece
        await self.stream.write(piece)

    async def finish(self, turn: Turn) -> None:
        if self.stream is not None:
            await self.stream.stop()
            self.stream = None
        if turn.answer != self.text or not turn.answer:
            await self.answer.update(turn.answer or "*(empty answer)*")
        self.text = turn.answer
        note = self.query_one(".turn-note", Static)
        parts: list[tuple[str, str]] = []
        if turn.stopped_by == "cancel":
            parts.append(("(stopped) ", "yellow"))
        elif turn.stopped_by == "length":
            parts.append(("(cut at the token limit: chat.max_tokens) ", "yellow"))
        if turn.grounding is not None and turn.answer:
            ok = turn.grounding.grounded
            mark = "✓ " if ok else "⚠ "
            parts.append((mark + turn.grounding.describe(), "green" if ok else "bold yellow"))
        if parts:
            note.update(Text.assemble(*parts))
        if not self.query_one(SourcesView).title.startswith("Sources sent to the model:"):
            self.show_sources(turn.sources)
        self.query_one(LocationList).set_locations(turn)

    def fail(self, message: str) -> None:
        self.query_one(".turn-note", Static).update(Text(message, style="red"))


# -- search ------------------------------------------------------------------------------------


def hit_label(hit: Hit) -> Text:
    return Text.assemble(
        (f"{hit.path}:{hit.start_line}", "cyan"), f"  {hit.kind}  ", (hit.name, "bold")
    )


class SearchView(Vertical):
    """Type to search; results on the left, the highlighted one's code on the right."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hits: list[Hit] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search the code (hybrid): type, ↓ to the results", id="query")
        with Horizontal(id="search-body"):
            yield OptionList(id="results")
            with VerticalScroll(id="snippet-box"):
                yield Static("", id="snippet")

    def show_hits(self, hits: list[Hit], note: str = "") -> None:
        self.hits = hits
        results = self.query_one("#results", OptionList)
        results.clear_options()
        results.add_options([Option(hit_label(h)) for h in hits])
        if hits:
            results.highlighted = 0
            self.show_snippet(0)
        else:
            self.query_one("#snippet", Static).update(Text(note or "no results", style="dim"))

    def show_snippet(self, index: int) -> None:
        if not 0 <= index < len(self.hits):
            return
        hit = self.hits[index]
        code = Syntax(
            hit.snippet, lexer_for(hit.path), line_numbers=True, start_line=hit.start_line
        )
        self.query_one("#snippet", Static).update(code)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "results":
            self.show_snippet(event.option_index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "results":
            event.stop()
            self.open(event.option_index)

    def open(self, index: int) -> None:
        if 0 <= index < len(self.hits):
            hit = self.hits[index]
            self.post_message(OpenLocation(hit.path, hit.start_line, hit.end_line))

    def open_highlighted(self) -> None:
        highlighted = self.query_one("#results", OptionList).highlighted
        self.open(highlighted if highlighted is not None else 0)
