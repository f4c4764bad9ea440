"""The language server's "Generate docstring" action: one definition of an unsaved buffer."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.docstrings import conventions
from assistant.docstrings.generate import document_text, documentable
from assistant.docstrings.run import resolve_style
from assistant.errors import AssistError
from assistant.index.languages import language_for_path
from assistant.index.symbols import Symbol, extract_symbols

if TYPE_CHECKING:
    from assistant.llm.protocol import Progress
    from assistant.workspace import Workspace


@dataclass(frozen=True)
class TextEdit:
    """An edit on the text a caller passed in; rows and columns 0-based, end exclusive."""

    line: int
    character: int
    end_line: int
    end_character: int
    new_text: str


def definition_at(text: str, language: str | None, line: int) -> Symbol | None:
    """The innermost documentable definition whose lines hold 1-based `line`, in a language
    with a doc convention; what `docstring_edit` documents (and an editor offers to)."""
    if language not in conventions.CONVENTIONS:
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
    progress: Progress | None = None,
) -> TextEdit | None:
    """The edit that documents the definition at `line` (1-based) of unsaved `text`, or None.

    The innermost documentable definition whose lines hold `line` is chosen; None when there is
    none or it already has a doc (unless `update`). When the model's text is refused (see
    `quality.py`), AssistError says why.
    """
    permit = ws.permit(path)
    rel = permit.rel or path
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
        progress=progress,
        permit=permit,
    )
    mine = [o for o in report.outcomes if o.line == target.def_line]
    if not any(o.status == "documented" for o in mine):
        if not mine or (cancel is not None and cancel.is_set()):
            return None  # it has its doc already, or the user moved on
        why = next((o.reason for o in mine if o.reason), "the model wrote no usable text")
        raise AssistError(
            f"no docstring for {target.qualified_name}: {why}",
            "ask again, or choose a code model (docs/models.md)",
        )
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
