"""`assist docstring`: document the files of a repository, and report coverage.

A file is written only when its whole report is clean (see `generate.py`), atomically, and only
if it still holds what was read: an interrupted run leaves each file untouched or complete, and
an edit saved during a long run is never overwritten.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.docstrings import conventions
from assistant.docstrings.conventions import Style
from assistant.docstrings.generate import FileReport, Outcome, document_text, plan
from assistant.errors import AssistError
from assistant.index.languages import language_for_path
from assistant.repo.atomic import write_atomic
from assistant.repo.git import changed_lines

if TYPE_CHECKING:
    from assistant.workspace import Workspace


@dataclass(frozen=True)
class Step:
    """Progress: symbol `done` of `total` in file `file_done` of `file_total`."""

    path: str
    name: str
    done: int
    total: int
    file_done: int
    file_total: int


# -- the repository: files, style, changed lines, writing ------------------------------------


def resolve_style(ws: Workspace, style: str | None = None) -> Style:
    chosen = style or ws.settings.docstring.style
    if chosen == "auto":
        return detect_style(ws.root)
    if chosen not in conventions.STYLES:
        raise AssistError(f"unknown docstring style {chosen!r}", "use auto, google, numpy or rest")
    return chosen


_STYLE_MARKS: dict[Style, re.Pattern[str]] = {
    "google": re.compile(r"^\s+(Args|Arguments|Returns|Raises|Yields):\s*$", re.M),
    "numpy": re.compile(r"^\s+(Parameters|Returns|Raises)\s*\n\s+-{3,}\s*$", re.M),
    "rest": re.compile(r"^\s+:(param|returns?|rtype|raises)\b", re.M),
}


def wants_sections(ws: Workspace) -> bool:
    """Whether generated Python docs must describe every parameter: the user chose a style,
    or the repository's own docs have Args/Parameters/:param sections."""
    if ws.settings.docstring.style != "auto":
        return True
    return sum(_style_counts(ws.root).values()) > 0


def detect_style(root: Path, max_files: int = 300) -> Style:
    """The Python docstring style most used in the repository's tracked files; Google if none."""
    counts = _style_counts(root, max_files)
    best = max(conventions.STYLES, key=lambda s: counts[s])
    return best if counts[best] else "google"


@lru_cache(maxsize=8)
def _style_counts(root: Path, max_files: int = 300) -> dict[Style, int]:
    from assistant.repo.files import list_paths

    paths = list_paths(root)
    counts = dict.fromkeys(conventions.STYLES, 0)
    for rel in [p for p in paths if p.endswith(".py")][:max_files]:
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            continue
        for style, pattern in _STYLE_MARKS.items():
            counts[style] += len(pattern.findall(text))
    return counts


def collect(ws: Workspace, paths: list[str]) -> tuple[list[str], list[Outcome]]:
    """The supported files under `paths` (repository-relative), and the ones refused, why."""
    from assistant.repo.files import scan

    wanted = [ws.rules.relative(p) for p in paths] or [""]
    files, _skips = scan(
        ws.root, ws.rules, ws.settings.index.max_file_size, language_of=language_for_path
    )
    listed = {f.path for f in files if f.language in conventions.CONVENTIONS}
    chosen: set[str] = set()
    refused: list[Outcome] = []
    for rel in wanted:
        if rel and (ws.root / rel).is_file():
            why = ws.rules.reason(rel)
            if why:
                refused.append(Outcome(rel, "", "file", 0, "skipped", why))
            elif language_for_path(rel) not in conventions.CONVENTIONS:
                refused.append(Outcome(rel, "", "file", 0, "skipped", "unsupported language"))
            else:
                chosen.add(rel)
        elif rel and not (ws.root / rel).exists():
            raise AssistError(f"{rel}: no such file or directory", "check the path")
        else:
            prefix = rel.rstrip("/") + "/" if rel and rel != "." else ""
            chosen.update(p for p in listed if p.startswith(prefix))
    return sorted(chosen), refused


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
    sections = generate_docs and wants_sections(ws)
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
            permit = ws.permit(full)  # the privacy check, right before text reaches a prompt

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
                sections=sections,
                permit=permit,
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
