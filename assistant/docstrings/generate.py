"""Documenting one file's text: which definitions lack a doc, the model's text for each, and
the edits, applied bottom-up so line numbers never shift under a pending edit.

The result is a report; nothing is written here. Every edit must parse on its own and the whole
result must parse again (tree-sitter, and Python's own parser for Python), or the file is left
as it was.
"""

from __future__ import annotations

import ast
import difflib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from assistant.docstrings import conventions, quality, render
from assistant.docstrings.conventions import DOCUMENTABLE, Site, Style
from assistant.errors import AssistError
from assistant.index.symbols import Symbol, extract_symbols, parse_tree
from assistant.llm import prompts
from assistant.llm.chat_templates import Message
from assistant.llm.fim import Hole
from assistant.llm.protocol import Request
from assistant.repo.vetted import EMPTY, NEWLINE, Vetted

if TYPE_CHECKING:
    from tree_sitter import Tree

    from assistant.llm.protocol import Model, Progress
    from assistant.repo.vetted import Permit

Status = Literal["documented", "skipped", "failed"]
Shown = tuple[list[Vetted], "Permit"]
"""A file's lines as a model may see them (secrets cut, line for line), and its permit."""
_PREFIX_CHARS = 6000
_SUFFIX_CHARS = 2000
_CODE_CHARS = 3000


@dataclass(frozen=True)
class Outcome:
    path: str
    name: str
    kind: str
    line: int
    status: Status
    reason: str = ""
    doc: str = ""

    def as_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v != ""}


@dataclass
class FileReport:
    """One file's coverage and what happened to each symbol that needed a doc."""

    path: str
    original: str
    new: str
    total: int = 0
    documented: int = 0
    """Symbols that had a doc before this run."""
    outcomes: list[Outcome] = field(default_factory=list)
    targets: list[Symbol] = field(default_factory=list)
    edits: list[tuple[int, int, list[str]]] = field(default_factory=list)
    """(start row, end row, new lines without line endings) per applied doc, bottom-up."""
    written: bool = False

    @property
    def changed(self) -> bool:
        return self.new != self.original

    def diff(self) -> str:
        """A patch `git apply` takes: a last line without a newline gets git's marker."""
        lines = difflib.unified_diff(
            self.original.splitlines(keepends=True),
            self.new.splitlines(keepends=True),
            f"a/{self.path}",
            f"b/{self.path}",
        )
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )


# -- planning --------------------------------------------------------------------------------


def parse(source: bytes, language: str) -> Tree | None:
    return parse_tree(source, language)


def parses(text: str, language: str) -> bool:
    """Whether `text` parses without errors (tree-sitter, and Python's own parser for Python)."""
    tree = parse(text.encode("utf-8"), language)
    if tree is None or tree.root_node.has_error:
        return False
    if language == "python":
        try:
            ast.parse(text.removeprefix("\ufeff"))  # a UTF-8 BOM is allowed in a source file
        except (SyntaxError, ValueError):
            return False
    return True


def line_ending(text: str) -> str:
    """The file's line ending: CRLF when most of its lines end so (one stray CRLF line in an
    LF file does not make every inserted line CRLF)."""
    return "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"


def documentable(symbols: list[Symbol]) -> list[Symbol]:
    """Functions, methods and type definitions, leaving out local ones inside functions at any
    depth: a class defined in a function is local, and so are its methods (interrogate's
    `--ignore-nested-functions --ignore-nested-classes`)."""
    by_name = {s.qualified_name: s for s in symbols}

    def local(s: Symbol) -> bool:
        parent = by_name.get(s.parent) if s.parent else None
        while parent is not None:
            if parent.kind in ("function", "method"):
                return True
            parent = by_name.get(parent.parent) if parent.parent else None
        return False

    return [s for s in symbols if s.kind in DOCUMENTABLE and not local(s)]


def plan(
    path: str, text: str, language: str, *, update: bool = False, changed: set[int] | None = None
) -> FileReport:
    """Coverage of one file and the symbols a run would document; calls no model."""
    report = FileReport(path, text, text)
    symbols = documentable(extract_symbols(text.encode("utf-8"), language))
    if changed is not None:
        symbols = [s for s in symbols if _own_lines(s, symbols) & changed]
    report.total = len(symbols)
    lines = text.split("\n")
    documented = {s.qualified_name: conventions.has_doc(s, lines, language) for s in symbols}
    report.documented = sum(documented.values())
    report.targets = [s for s in symbols if update or not documented[s.qualified_name]]
    return report


def _own_lines(symbol: Symbol, symbols: list[Symbol]) -> set[int]:
    own = set(range(symbol.start_line, symbol.end_line + 1))
    for other in symbols:
        if other.parent == symbol.qualified_name:
            own -= set(range(other.start_line, other.end_line + 1))
    return own


# -- generating --------------------------------------------------------------------------------


def generate(
    model: Model, site: Site, shown: Shown, path: str, request: Request
) -> tuple[str, bool]:
    """The model's raw text for one site (FIM where the model has it, else a chat prompt), and
    whether the model closed the comment itself."""
    lines, permit = shown
    start, end = site.remove if site.remove is not None else (site.row, site.row)
    before, after = NEWLINE.joined(lines[:start]), NEWLINE.joined(lines[end:])
    before = before + NEWLINE if start else EMPTY
    opening, closing = (permit.vet(part) for part in conventions.frame(site))
    if model.fim_kind != "emulated":
        prefix = (before + opening)[-_PREFIX_CHARS:]
        suffix = (closing + after)[:_SUFFIX_CHARS]
        text = "".join(model.infill(Hole(prefix, suffix, path=path), request))
        kept = _cut_at_close(text, site)
        return kept, len(kept) < len(text)  # the closing marker came: the text is whole
    symbol = site.symbol
    code = NEWLINE.joined(lines[symbol.start_line - 1 : symbol.end_line])[:_CODE_CHARS]
    messages = [
        Message("system", prompts.render("docstring_system")),
        Message(
            "user",
            prompts.render(
                "docstring_user",
                path=Vetted.label(path),
                language=Vetted.label(site.language),
                kind=Vetted.label(symbol.kind),
                symbol=permit.vet(symbol.name),
                params=permit.vet(", ".join(p.name for p in site.params) or "none"),
                code=code,
            ),
        ),
    ]
    text = "".join(model.chat(messages, request))
    return text, False


def _describe_params(
    model: Model,
    site: Site,
    shown: Shown,
    path: str,
    parts: conventions.DocParts,
    style: Style,
    cancel: threading.Event | None,
) -> conventions.DocParts:
    """Fill in missing parameter descriptions, one short FIM answer each, written where the
    project's convention puts them (`Args:` / `Parameters` / `:param`)."""
    lines, permit = shown
    start, end = site.remove if site.remove is not None else (site.row, site.row)
    before = NEWLINE.joined(lines[:start]) + (NEWLINE if start else EMPTY)
    after = NEWLINE.joined(lines[end:])
    described = dict(parts.params)
    for name in quality.missing_params(parts, site):
        if cancel is not None and cancel.is_set():
            break
        done = replace(parts, params=tuple(described.items()), returns="")
        body = render.render(done, site, style)
        text = "\n".join(body)
        # Open the body at the new parameter's line and let the model finish it.
        head = text.rsplit('"""', 1)[0].rstrip() if text.rstrip().endswith('"""') else text
        lead = render.param_lead(site, style, name, has_section=bool(described))
        prefix = (before + permit.vet(head + lead))[-_PREFIX_CHARS:]
        suffix = (permit.vet("\n" + site.indent + '"""' + "\n") + after)[:_SUFFIX_CHARS]
        request = Request(max_tokens=32, cancel=cancel or threading.Event())
        answer = "".join(model.infill(Hole(prefix, suffix, path=path), request))
        line = answer.split("\n", 1)[0].split('"""', 1)[0].strip()
        if line:
            described[name] = render.tidy(line)
    ordered = tuple((p.name, described[p.name]) for p in site.params if described.get(p.name))
    return replace(parts, params=ordered)


def _cut_at_close(text: str, site: Site) -> str:
    """A FIM answer up to where the comment closes; the model may run on into code."""
    conv = conventions.CONVENTIONS[site.language]
    if conv.kind == "docstring":
        return re.split(r'"""|\'\'\'', text, maxsplit=1)[0]
    if conv.kind == "block":
        return text.split("*/", 1)[0]
    kept = []
    for i, line in enumerate(text.split("\n")):
        if i and not line.strip().startswith(conv.opener):
            break
        kept.append(line)
    return "\n".join(kept)


def document_text(
    model: Model | None,
    path: str,
    text: str,
    language: str,
    *,
    style: Style = "google",
    update: bool = False,
    changed: set[int] | None = None,
    max_tokens: int = 160,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    on_symbol: Callable[[int, int, str], None] | None = None,
    rows: set[int] | None = None,
    sections: bool = False,
    permit: Permit | None = None,
) -> FileReport:
    """Plan, generate and apply the docs of one file's text; writes nothing.

    With `model` None it only plans (coverage). `rows` keeps only the sites whose insertion row
    is in it (the hook's partial-staging guard). `permit` (the workspace's, for `path`) vets
    what the model sees; the edits are made on `text` itself.
    """
    report = plan(path, text, language, update=update, changed=changed)
    if model is None or not report.targets:
        return report
    shown = _shown(permit, path, text)
    if not parses(text, language):
        for s in report.targets:
            report.outcomes.append(
                _out(path, s, "skipped", f"the file does not parse as {language}")
            )
        return report
    # Lines keep their "\r" in a CRLF file; inserted lines get one too.
    eol = line_ending(text)
    lines = text.split("\n")
    tree = parse(text.encode("utf-8"), language)
    assert tree is not None
    ready: list[tuple[Site, list[str], str]] = []
    for i, symbol in enumerate(report.targets):
        if cancel is not None and cancel.is_set():
            break
        if on_symbol is not None:
            on_symbol(i, len(report.targets), symbol.qualified_name)
        site = conventions.find_site(tree.root_node, lines, symbol, language, update=update)
        if isinstance(site, str):
            report.outcomes.append(_out(path, symbol, "skipped", site))
            continue
        if rows is not None and site.row not in rows:
            report.outcomes.append(_out(path, symbol, "skipped", "unstaged changes next to it"))
            continue
        request = Request(
            max_tokens=max_tokens, cancel=cancel or threading.Event(), progress=progress
        )
        try:
            raw, closed = generate(model, site, shown, path, request)
        except AssistError as exc:  # e.g. a prompt too long for the context: this symbol only
            report.outcomes.append(_out(path, symbol, "failed", exc.message))
            continue
        if cancel is not None and cancel.is_set():
            break
        ended = closed or request.stats.stopped_by not in ("length", "budget")
        parts = render.parse_output(raw, site)
        if not parts.summary:
            report.outcomes.append(_out(path, symbol, "failed", "the model wrote no usable text"))
            continue
        wanted = sections and site.language == "python" and model.fim_kind != "emulated"
        if wanted and quality.missing_params(parts, site):
            # The summary is there, the parameters are not: ask for each one in its place.
            parts = _describe_params(model, site, shown, path, parts, style, cancel)
        refused = quality.problem(parts, site, ended=ended, sections=wanted)
        if refused:
            reason = f"generated doc refused: {refused}"
            report.outcomes.append(_out(path, symbol, "skipped", reason))
            continue
        rendered = render.render(parts, site, style)
        if not parses("\n".join(render.insert(lines, site, rendered, eol)), language):
            report.outcomes.append(_out(path, symbol, "failed", "the result would not parse"))
            continue
        ready.append((site, rendered, parts.summary))
    new_lines = lines
    for site, rendered, _ in sorted(ready, key=lambda r: -r[0].row):
        new_lines = render.insert(new_lines, site, rendered, eol)
        start, end = site.remove if site.remove is not None else (site.row, site.row)
        report.edits.append((start, end, rendered))
    new = "\n".join(new_lines)
    if ready and not parses(new, language):
        report.edits.clear()
        for site, _, _ in ready:
            report.outcomes.append(
                _out(path, site.symbol, "failed", "the file would not parse with all its docs")
            )
        return report
    report.new = new
    for site, _, summary in ready:
        report.outcomes.append(_out(path, site.symbol, "documented", doc=summary))
    report.outcomes.sort(key=lambda o: o.line)
    return report


def _shown(permit: Permit | None, path: str, text: str) -> Shown:
    """`text` vetted line for line, so that a site's rows index the model's view of it too."""
    if permit is None:
        raise AssistError(f"{path}: no permit to send its text to a model", "a bug in assist")
    lines = permit.vet(text).lines()
    if len(lines) != text.count("\n") + 1:
        raise AssistError(f"{path}: its secrets could not be cut line by line", "a bug in assist")
    return lines, permit


def _out(path: str, s: Symbol, status: Status, reason: str = "", doc: str = "") -> Outcome:
    return Outcome(path, s.qualified_name, s.kind, s.def_line, status, reason, doc)
