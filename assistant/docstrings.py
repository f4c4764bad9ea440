"""`assist docstring`: find definitions without a doc, have the model write one, insert it.

A file is planned (which symbols, where), then every doc is generated against the original
text and the edits are applied bottom-up, so line numbers never shift under a pending edit. A
file is written only when every edit parses on its own and the whole result parses again, and
then atomically: an interrupted run leaves each file either untouched or complete.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from assistant import doc_comments, prompts
from assistant.chat_format import Message
from assistant.doc_comments import DOCUMENTABLE, Site, Style
from assistant.errors import AssistError
from assistant.git_diff import changed_lines
from assistant.languages import language_for_path
from assistant.symbols import Symbol, extract_symbols

if TYPE_CHECKING:
    from tree_sitter import Tree

    from assistant.model import Model
    from assistant.workspace import Workspace

Status = Literal["documented", "skipped", "failed"]
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
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                f"a/{self.path}",
                f"b/{self.path}",
            )
        )


@dataclass(frozen=True)
class Step:
    """Progress: symbol `done` of `total` in file `file_done` of `file_total`."""

    path: str
    name: str
    done: int
    total: int
    file_done: int
    file_total: int


@dataclass(frozen=True)
class TextEdit:
    """An edit on the text a caller passed in; rows and columns 0-based, end exclusive."""

    line: int
    character: int
    end_line: int
    end_character: int
    new_text: str


# -- planning --------------------------------------------------------------------------------


def parse(source: bytes, language: str) -> Tree | None:
    from assistant.symbols import _parser

    parser = _parser(language)
    return None if parser is None else parser.parse(source)


def parses(text: str, language: str) -> bool:
    """Whether `text` parses without errors (tree-sitter, and Python's own parser for Python)."""
    tree = parse(text.encode("utf-8"), language)
    if tree is None or tree.root_node.has_error:
        return False
    if language == "python":
        try:
            ast.parse(text)
        except (SyntaxError, ValueError):
            return False
    return True


def documentable(symbols: list[Symbol]) -> list[Symbol]:
    """Functions, methods and type definitions, leaving out local ones inside functions."""
    by_name = {s.qualified_name: s for s in symbols}
    kept = []
    for s in symbols:
        parent = by_name.get(s.parent) if s.parent else None
        if s.kind in DOCUMENTABLE and (parent is None or parent.kind not in ("function", "method")):
            kept.append(s)
    return kept


def plan(
    path: str, text: str, language: str, *, update: bool = False, changed: set[int] | None = None
) -> FileReport:
    """Coverage of one file and the symbols a run would document; calls no model."""
    report = FileReport(path, text, text)
    symbols = documentable(extract_symbols(text.encode("utf-8"), language))
    if changed is not None:
        symbols = [s for s in symbols if _own_lines(s, symbols) & changed]
    report.total = len(symbols)
    report.documented = sum(1 for s in symbols if s.doc)
    report.targets = [s for s in symbols if update or not s.doc]
    return report


def _own_lines(symbol: Symbol, symbols: list[Symbol]) -> set[int]:
    own = set(range(symbol.start_line, symbol.end_line + 1))
    for other in symbols:
        if other.parent == symbol.qualified_name:
            own -= set(range(other.start_line, other.end_line + 1))
    return own


# -- generating --------------------------------------------------------------------------------


def generate(
    model: Model,
    site: Site,
    lines: list[str],
    path: str,
    *,
    max_tokens: int,
    cancel: threading.Event | None = None,
) -> str:
    """The model's raw text for one site: FIM where the model has it, else a chat prompt."""
    start, end = site.remove if site.remove is not None else (site.row, site.row)
    before, after = "\n".join(lines[:start]), "\n".join(lines[end:])
    before = before + "\n" if start else ""
    opening, closing = doc_comments.frame(site)
    if not model.fim_mode.startswith("emulated"):
        prefix = (before + opening)[-_PREFIX_CHARS:]
        suffix = (closing + after)[:_SUFFIX_CHARS]
        text = "".join(
            model.infill(prefix, suffix, path=path, max_tokens=max_tokens, cancel=cancel)
        )
        return _cut_at_close(text, site)
    symbol = site.symbol
    code = "\n".join(lines[symbol.start_line - 1 : symbol.end_line])[:_CODE_CHARS]
    messages = [
        Message("system", prompts.render("docstring_system")),
        Message(
            "user",
            prompts.render(
                "docstring_user",
                path=path,
                language=site.language,
                kind=symbol.kind,
                symbol=symbol.name,
                params=", ".join(p.name for p in site.params) or "none",
                code=code,
            ),
        ),
    ]
    return "".join(model.chat(messages, max_tokens=max_tokens, cancel=cancel))


def _cut_at_close(text: str, site: Site) -> str:
    """A FIM answer up to where the comment closes; the model may run on into code."""
    conv = doc_comments.CONVENTIONS[site.language]
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
    on_symbol: Callable[[int, int, str], None] | None = None,
    rows: set[int] | None = None,
) -> FileReport:
    """Plan, generate and apply the docs of one file's text; writes nothing.

    With `model` None it only plans (coverage). `rows` keeps only the sites whose insertion row
    is in it (the hook's partial-staging guard).
    """
    report = plan(path, text, language, update=update, changed=changed)
    if model is None or not report.targets:
        return report
    if not parses(text, language):
        for s in report.targets:
            report.outcomes.append(
                _out(path, s, "skipped", f"the file does not parse as {language}")
            )
        return report
    # Lines keep their "\r" in a CRLF file; inserted lines get one too.
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split("\n")
    tree = parse(text.encode("utf-8"), language)
    assert tree is not None
    ready: list[tuple[Site, list[str], str]] = []
    for i, symbol in enumerate(report.targets):
        if cancel is not None and cancel.is_set():
            break
        if on_symbol is not None:
            on_symbol(i, len(report.targets), symbol.qualified_name)
        site = doc_comments.find_site(tree.root_node, lines, symbol, language, update=update)
        if isinstance(site, str):
            report.outcomes.append(_out(path, symbol, "skipped", site))
            continue
        if rows is not None and site.row not in rows:
            report.outcomes.append(_out(path, symbol, "skipped", "unstaged changes next to it"))
            continue
        try:
            raw = generate(model, site, lines, path, max_tokens=max_tokens, cancel=cancel)
        except AssistError as exc:  # e.g. a prompt too long for the context: this symbol only
            report.outcomes.append(_out(path, symbol, "failed", exc.message))
            continue
        if cancel is not None and cancel.is_set():
            break
        parts = doc_comments.parse_output(raw, site)
        if not parts.summary:
            report.outcomes.append(_out(path, symbol, "failed", "the model wrote no usable text"))
            continue
        rendered = doc_comments.render(parts, site, style)
        if not parses("\n".join(doc_comments.insert(lines, site, rendered, eol)), language):
            report.outcomes.append(_out(path, symbol, "failed", "the result would not parse"))
            continue
        ready.append((site, rendered, parts.summary))
    new_lines = lines
    for site, rendered, _ in sorted(ready, key=lambda r: -r[0].row):
        new_lines = doc_comments.insert(new_lines, site, rendered, eol)
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


def _out(path: str, s: Symbol, status: Status, reason: str = "", doc: str = "") -> Outcome:
    return Outcome(path, s.qualified_name, s.kind, s.def_line, status, reason, doc)


# -- the repository: files, style, changed lines, writing ------------------------------------


def resolve_style(ws: Workspace, style: str | None = None) -> Style:
    chosen = style or ws.settings.docstring.style
    if chosen == "auto":
        return detect_style(ws.root)
    if chosen not in doc_comments.STYLES:
        raise AssistError(f"unknown docstring style {chosen!r}", "use auto, google, numpy or rest")
    return chosen


_STYLE_MARKS: dict[Style, re.Pattern[str]] = {
    "google": re.compile(r"^\s+(Args|Arguments|Returns|Raises|Yields):\s*$", re.M),
    "numpy": re.compile(r"^\s+(Parameters|Returns|Raises)\s*\n\s+-{3,}\s*$", re.M),
    "rest": re.compile(r"^\s+:(param|returns?|rtype|raises)\b", re.M),
}


@lru_cache(maxsize=8)
def detect_style(root: Path, max_files: int = 300) -> Style:
    """The Python docstring style most used in the repository's tracked files; Google if none."""
    from assistant.repo_files import git_paths, walk_paths

    paths = git_paths(root) or walk_paths(root)
    counts = dict.fromkeys(doc_comments.STYLES, 0)
    for rel in [p for p in paths if p.endswith(".py")][:max_files]:
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            continue
        for style, pattern in _STYLE_MARKS.items():
            counts[style] += len(pattern.findall(text))
    best = max(doc_comments.STYLES, key=lambda s: counts[s])
    return best if counts[best] else "google"


def collect(ws: Workspace, paths: list[str]) -> tuple[list[str], list[Outcome]]:
    """The supported files under `paths` (repository-relative), and the ones refused, why."""
    from assistant.repo_files import scan

    wanted = [ws.rules.relative(p) for p in paths] or [""]
    files, _skips = scan(ws.root, ws.rules, ws.settings.index.max_file_size)
    listed = {f.path for f in files if f.language in doc_comments.CONVENTIONS}
    chosen: set[str] = set()
    refused: list[Outcome] = []
    for rel in wanted:
        if rel and (ws.root / rel).is_file():
            why = ws.rules.reason(rel)
            if why:
                refused.append(Outcome(rel, "", "file", 0, "skipped", why))
            elif language_for_path(rel) not in doc_comments.CONVENTIONS:
                refused.append(Outcome(rel, "", "file", 0, "skipped", "unsupported language"))
            else:
                chosen.add(rel)
        elif rel and not (ws.root / rel).exists():
            raise AssistError(f"{rel}: no such file or directory", "check the path")
        else:
            prefix = rel.rstrip("/") + "/" if rel and rel != "." else ""
            chosen.update(p for p in listed if p.startswith(prefix))
    return sorted(chosen), refused


def write_atomic(path: Path, text: str, *, expected: bytes | None = None) -> bool:
    """Replace `path` with `text` via a synced temp file beside it, keeping the mode bits.

    With `expected` (the bytes the edit was made from), False and nothing written when the file
    no longer holds them: an edit saved during a long run is never overwritten.
    """
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".assist", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if expected is not None and path.read_bytes() != expected:
            return False
        os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def unwritten(report: FileReport, reason: str) -> None:
    """Turn a report's planned docs into skips: the file was left as it is."""
    report.outcomes = [
        replace(o, status="skipped", reason=reason) if o.status == "documented" else o
        for o in report.outcomes
    ]
    report.new, report.edits = report.original, []


def run(
    ws: Workspace,
    paths: list[str],
    *,
    generate_docs: bool,
    write: bool = False,
    update: bool = False,
    changed_only: bool = False,
    style: str | None = None,
    cancel: threading.Event | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Iterator[FileReport]:
    """Each file's report, as it is done; writes only when `write`."""
    files, refused = collect(ws, paths)
    for outcome in refused:
        report = FileReport(outcome.path, "", "")
        report.outcomes.append(outcome)
        yield report
    changed = changed_lines(ws.root) if changed_only else None
    chosen_style = resolve_style(ws, style) if generate_docs else "google"
    for n, rel in enumerate(files):
        if cancel is not None and cancel.is_set():
            return
        language = language_for_path(rel)
        assert language is not None
        full = ws.root / rel
        try:
            raw = full.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            report = FileReport(rel, "", "")
            report.outcomes.append(Outcome(rel, "", "file", 0, "skipped", f"unreadable: {exc}"))
            yield report
            continue
        lines = None if changed is None else changed.get(rel, set())
        report = plan(rel, text, language, update=update, changed=lines)
        if generate_docs and report.targets:
            ws.rules.check(full)  # the privacy check, right before text reaches a prompt

            def progress(i: int, total: int, name: str, rel: str = rel, n: int = n) -> None:
                if on_step is not None:
                    on_step(Step(rel, name, i, total, n, len(files)))

            report = document_text(
                ws.model,
                rel,
                text,
                language,
                style=chosen_style,
                update=update,
                changed=lines,
                max_tokens=ws.settings.docstring.max_tokens,
                cancel=cancel,
                on_symbol=progress,
            )
            if write and report.changed and not (cancel is not None and cancel.is_set()):
                if write_atomic(full, report.new, expected=raw):
                    report.written = True
                else:
                    unwritten(report, "the file changed during the run; not written")
        yield report


def coverage(reports: list[FileReport]) -> tuple[int, int, float]:
    """(documented, total, percent) over the reports, counting docs written in this run."""
    total = sum(r.total for r in reports)
    done = sum(r.documented for r in reports)
    done += sum(1 for r in reports for o in r.outcomes if o.status == "documented")
    return done, total, 100.0 * done / total if total else 100.0


# -- the language server's code action -----------------------------------------------------------


def definition_at(text: str, language: str | None, line: int) -> Symbol | None:
    """The innermost documentable definition whose lines hold 1-based `line`, in a language
    with a doc convention; what `docstring_edit` documents (and an editor offers to)."""
    if language not in doc_comments.CONVENTIONS:
        return None
    assert language is not None
    symbols = documentable(extract_symbols(text.encode("utf-8"), language))
    around = [s for s in symbols if s.start_line <= line <= s.end_line]
    if not around:
        return None
    return min(around, key=lambda s: (s.end_line - s.start_line, -s.start_line))


def docstring_edit(
    ws: Workspace,
    path: str,
    text: str,
    line: int,
    *,
    update: bool = False,
    cancel: threading.Event | None = None,
) -> TextEdit | None:
    """The edit that documents the definition at `line` (1-based) of unsaved `text`, or None.

    The innermost documentable definition whose lines hold `line` is chosen; None when there is
    none, it already has a doc (unless `update`), or the model wrote nothing usable.
    """
    rel = ws.rules.check(path)
    language = language_for_path(rel)
    target = definition_at(text, language, line)
    if target is None or language is None:
        return None
    report = document_text(
        ws.model,
        rel,
        text,
        language,
        style=resolve_style(ws),
        update=update,
        changed={target.def_line},
        max_tokens=ws.settings.docstring.max_tokens,
        cancel=cancel,
    )
    if not any(o.status == "documented" and o.line == target.def_line for o in report.outcomes):
        return None
    return _single_edit(text, report.new)


def _single_edit(old: str, new: str) -> TextEdit:
    """The one replaced run of whole lines that turns `old` into `new`."""
    a, b = old.split("\n"), new.split("\n")
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    inserted = "".join(line + "\n" for line in b[start:end_b])
    return TextEdit(start, 0, end_a, 0, inserted)
