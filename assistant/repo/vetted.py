"""Text that may go into a prompt: the one type every prompt builder takes.

File text reaches a model only as `Vetted`, and `Vetted` is made in few places, each named:

- `Permit.vet` and `Permit.vet_around`: text of one file (on disk, in an editor, staged). A
  permit is granted by the workspace once every name the path goes by passed the privacy rules;
  vetting then cuts secrets out by content (repo/secrets.py).
- `vet_indexed`: a chunk the index holds, under a name the rules still allow; cut again, since
  the content rules may have grown since it was indexed.
- `vet_output`: text that no one file holds (a command's output, a tool's report): content rules.
- `Vetted.from_user`, `from_model`, `from_client`: words a person typed, the model's own words
  fed back to it, text a client of the model host vetted before sending it.
- `Vetted.label`: names and markup assist writes itself (a path already checked, a line number,
  a comment opener); the content rules run on it anyway. `fill`: a template of `prompts/` with
  vetted values in its holes.

The workspace alone calls `grant`, `vet_indexed` and `vet_output` (tests/test_vetted.py checks
it); prompt builders (`prompts.render`, `Hole`, `Message`, `Model.complete`) take only `Vetted`,
so mypy rejects raw file text on the way to a model. Slicing vetted text, stripping it and
joining vetted pieces keep it vetted; anything else gives a plain `str`.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping
from typing import SupportsIndex, overload

from assistant.errors import AssistError
from assistant.repo.privacy import PathRules, Resolved
from assistant.repo.secrets import redact

_KEY = object()
"""Held by this module only: `Vetted(text, _KEY)` is how vetted text is made."""
EDGE_LINES = 2
"""Lines read on each side of a window, so that a secret split over lines (string literals
joined across lines) is seen whole although the window shows only part of it."""


class Vetted(str):
    """Text that passed the privacy rules of every name it came by, then the content rules."""

    __slots__ = ()

    def __new__(cls, text: str, key: object) -> Vetted:
        if key is not _KEY:
            raise TypeError(
                "Vetted text comes from the workspace (Workspace.permit(path).vet(text), "
                "vet_chunk, vet_output) or a named way in (Vetted.from_user, from_model, label)"
            )
        return super().__new__(cls, text)

    # -- the named ways in -----------------------------------------------------------------

    @classmethod
    def from_user(cls, text: str) -> Vetted:
        """Words the person typed (a question, a task): theirs to send, not repository text."""
        return cls(text, _KEY)

    @classmethod
    def from_model(cls, text: str) -> Vetted:
        """The model's own words fed back to it (its answers, its tool calls)."""
        return cls(text, _KEY)

    @classmethod
    def from_client(cls, text: str) -> Vetted:
        """Text the model host received: its client (an assist process) vetted it."""
        return cls(text, _KEY)

    @classmethod
    def label(cls, text: str) -> Vetted:
        """Names and markup assist writes itself; the content rules run on it all the same."""
        return cls(redact(text).text, _KEY)

    # -- what keeps it vetted --------------------------------------------------------------

    def __getitem__(self, key: SupportsIndex | slice, /) -> Vetted:
        return Vetted(str.__getitem__(self, key), _KEY)

    @overload
    def __add__(self, value: Vetted, /) -> Vetted: ...
    @overload
    def __add__(self, value: str, /) -> str: ...
    def __add__(self, value: str, /) -> str:
        joined = str.__add__(self, value)
        return Vetted(joined, _KEY) if isinstance(value, Vetted) else joined

    def strip(self, chars: str | None = None, /) -> Vetted:
        return Vetted(str.strip(self, chars), _KEY)

    def lstrip(self, chars: str | None = None, /) -> Vetted:
        return Vetted(str.lstrip(self, chars), _KEY)

    def rstrip(self, chars: str | None = None, /) -> Vetted:
        return Vetted(str.rstrip(self, chars), _KEY)

    def lines(self) -> list[Vetted]:
        """The text split at each "\\n" (line endings kept as they are otherwise)."""
        return [Vetted(line, _KEY) for line in self.split("\n")]

    def joined(self, parts: Iterable[Vetted]) -> Vetted:
        """`parts` with this text between them (`str.join` for vetted pieces)."""
        return Vetted(self.join(parts), _KEY)

    # Copies stay what they are; pickling (a process boundary) gives plain text.
    def __copy__(self) -> Vetted:
        return self

    def __deepcopy__(self, memo: object) -> Vetted:
        return self

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)


EMPTY = Vetted("", _KEY)
NEWLINE = Vetted("\n", _KEY)


class Permit:
    """Leave to put text of one file into a prompt: every name its path goes by passed the
    privacy rules. Only `grant` makes one."""

    __slots__ = ("resolved",)

    def __init__(self, resolved: Resolved, key: object) -> None:
        if key is not _KEY:
            raise TypeError("a Permit comes from Workspace.permit(path)")
        self.resolved = resolved

    @property
    def rel(self) -> str | None:
        """The repository path ("." for the root), or None for a file outside it."""
        return self.resolved.rel

    def vet(self, text: str) -> Vetted:
        """`text` (of this file, or derived from it) with its secrets cut out."""
        return Vetted(redact(text).text, _KEY)

    def vet_around(
        self, text: str, start: int, offset: int, end: int
    ) -> tuple[Vetted, Vetted] | None:
        """`text[start:offset]` and `text[offset:end]` (a completion window either side of the
        cursor at `offset`) with the secrets cut out that `text` as a whole holds there.

        Costs one pass of the content rules over the window's lines, not the file. The lines
        are vetted together, with a few more on each side and back to a private-key block
        still open at the window's start, so a secret split by the window's edge or by the
        cursor is seen whole. None when the cursor is inside a secret: nothing goes out there.
        """
        lo = _line_start(text, start, EDGE_LINES)
        block = _open_key_block(text, lo)
        if block >= 0:
            lo = _line_start(text, block, 0)
        hi = _line_end(text, end, EDGE_LINES)
        raw = text[lo:hi].split("\n")
        red = redact(text[lo:hi]).text.split("\n")
        if len(red) != len(raw):
            return None  # a rule that drops line breaks: no mapping back, nothing sent
        rows = [text.count("\n", lo, p) for p in (start, offset, end)]
        cols = [p - (text.rfind("\n", 0, p) + 1) for p in (start, offset, end)]
        m0, mc, m1 = (_map(raw[r], red[r], c) for r, c in zip(rows, cols, strict=True))
        if mc is None:
            return None
        r0, rc, r1 = rows
        # A window edge inside a line, where a secret crosses it: that line's part is left out.
        if r0 == rc:
            before = red[rc][min(mc, m0 if m0 is not None else mc) : mc]
        else:
            first = red[r0][m0:] if m0 is not None else ""
            before = "\n".join([first, *red[r0 + 1 : rc], red[rc][:mc]])
        if r1 == rc:
            after = red[rc][mc : max(mc, m1 if m1 is not None else mc)]
        else:
            last = red[r1][:m1] if m1 is not None else ""
            after = "\n".join([red[rc][mc:], *red[rc + 1 : r1], last])
        return Vetted(before, _KEY), Vetted(after, _KEY)


def fill(template: string.Template, values: Mapping[str, Vetted]) -> Vetted:
    """A prompt template of ours (`prompts/`) filled with vetted values (llm/prompts.py)."""
    return Vetted(template.substitute(values), _KEY)


def grant(rules: PathRules, path: str | os.PathLike[str], *, inside: bool = True) -> Permit:
    """A permit for `path`, or AssistError saying which rule refuses it (for the workspace)."""
    return Permit(rules.check(path, inside=inside), _KEY)


def vet_indexed(rules: PathRules, rel: str, text: str) -> Vetted:
    """Text the index holds under `rel` (every name of which was checked when it was indexed)."""
    why = rules.reason(rel)
    if why:
        raise AssistError(
            f"{rel}: {why}; its content is never sent to a model",
            "run `assist index` to drop it from the index",
        )
    return Vetted(redact(text).text, _KEY)


def vet_output(text: str) -> Vetted:
    """Text that no one file holds (a command's output, a tool's report): content rules only."""
    return Vetted(redact(text).text, _KEY)


def _line_start(text: str, at: int, more: int) -> int:
    """Start of the line holding `at`, `more` lines further back where there are any."""
    start = text.rfind("\n", 0, at) + 1
    for _ in range(more):
        if start == 0:
            break
        start = text.rfind("\n", 0, start - 1) + 1
    return start


def _line_end(text: str, at: int, more: int) -> int:
    """End of the line holding `at` (before its newline), `more` lines further on."""
    end = at
    for _ in range(more + 1):
        nl = text.find("\n", end)
        if nl < 0:
            return len(text)
        end = nl + 1
    return end - 1


def _open_key_block(text: str, at: int) -> int:
    """Where a private-key block begins that is still open at `at` (its END comes later), or -1:
    the window starts inside it, so the vetting must see its BEGIN line too."""
    begin = text.rfind("-----BEGIN ", 0, at)
    while begin >= 0:
        header_end = text.find("\n", begin, at)
        header = text[begin : at if header_end < 0 else header_end]
        if "PRIVATE KEY" in header:
            return begin if text.find("-----END ", begin, at) < 0 else -1
        begin = text.rfind("-----BEGIN ", 0, begin)
    return -1


def _map(raw: str, red: str, col: int) -> int | None:
    """Where column `col` of a line lands in its vetted form, or None when a secret spans it.

    A line the rules left alone maps one to one. Otherwise the two sides are vetted apart: if
    that gives the line's vetted form again, no secret crosses `col` and it lands after the
    vetted left side; if not, a secret runs across it.
    """
    if raw == red or col == 0:
        return col
    if col >= len(raw):
        return len(red)
    left = redact(raw[:col]).text
    return len(left) if left + redact(raw[col:]).text == red else None
