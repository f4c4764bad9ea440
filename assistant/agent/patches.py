"""Edits as the agent proposes them: one search/replace block, or a unified diff.

Both are applied to text in memory and checked before anything touches a file, so the user
approves the exact result (shown as a diff) and a bad edit loses nothing. Hunks are placed by
their content, not their line numbers: models get the numbers wrong far more often than the lines.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from assistant.errors import AssistError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
DEV_NULL = "/dev/null"


class PatchError(AssistError):
    """An edit that does not apply; the message tells the model what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "read the file again and resend the edit")


@dataclass
class Hunk:
    old_start: int
    """1-based line the hunk claims to start at; only a hint for where to look first."""
    lines: list[tuple[str, str]] = field(default_factory=list)
    """(tag, text) with tag one of ' ', '-', '+', text without its line ending."""
    no_newline_at_end: bool = False


@dataclass
class FilePatch:
    old_path: str
    new_path: str
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.old_path if self.new_path == DEV_NULL else self.new_path


def replace_once(text: str, search: str, replace: str) -> str:
    """`text` with the one occurrence of `search` replaced; zero or several is an error."""
    if not search:
        raise PatchError("the search text is empty; quote the exact lines to replace")
    count = text.count(search)
    if count == 0 and "\r\n" in text and "\r\n" not in search:
        search, replace = search.replace("\n", "\r\n"), replace.replace("\n", "\r\n")
        count = text.count(search)
    if count == 0:
        raise PatchError("the search text is not in the file (it must match exactly)")
    if count > 1:
        raise PatchError(f"the search text occurs {count} times; include more lines around it")
    return text.replace(search, replace, 1)


def parse_unified(diff: str) -> list[FilePatch]:
    """The files and hunks of a unified diff (git's or diff -u's); line counts are not trusted."""
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    hunk: Hunk | None = None
    lines = diff.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            current = FilePatch(_diff_path(line[4:]), _diff_path(lines[i + 1][4:]))
            patches.append(current)
            hunk = None
            i += 2
            continue
        if line.startswith("@@"):
            if current is None:
                raise PatchError("a hunk comes before any '--- a/path' / '+++ b/path' header")
            m = _HUNK.match(line)
            hunk = Hunk(int(m.group(1)) if m else 0)
            current.hunks.append(hunk)
        elif hunk is not None and line[:1] in (" ", "-", "+"):
            hunk.lines.append((line[0], line[1:]))
        elif hunk is not None and line == "":
            hunk.lines.append((" ", ""))  # an empty context line whose space was trimmed
        elif hunk is not None and line.startswith("\\") and hunk.lines:
            # "\ No newline at end of file" after a '-' line speaks of the old file only.
            hunk.no_newline_at_end = hunk.lines[-1][0] in " +"
        i += 1
    if not patches:
        raise PatchError("no '--- a/path' and '+++ b/path' header lines found in the diff")
    for patch in patches:
        if not patch.hunks:
            raise PatchError(f"{patch.path}: no '@@' hunks in the diff")
    return patches


def apply_hunks(text: str, hunks: list[Hunk]) -> str:
    """Apply hunks in order, each at the matching place nearest the line it claims."""
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if sum(x.endswith("\r\n") for x in lines) * 2 > len(lines) else "\n"
    floor = 0
    for n, hunk in enumerate(hunks, 1):
        old = [t for tag, t in hunk.lines if tag in " -"]
        at = _find(lines, old, max(floor, hunk.old_start - 1), floor)
        if at is None:
            raise PatchError(f"hunk {n} does not match the file: its ' ' and '-' lines must be "
                             "the file's current lines, in order")  # fmt: skip
        if not old:
            at = min(max(hunk.old_start, floor), len(lines))
        out: list[str] = []
        k = at
        for tag, t in hunk.lines:
            if tag == " ":
                out.append(lines[k])
                k += 1
            elif tag == "-":
                k += 1
            else:
                out.append(t + eol)
        for i in range(len(out) - 1):  # a kept last line without newline, now followed
            if not out[i].endswith("\n"):
                out[i] += eol
        if hunk.no_newline_at_end and out and k == len(lines):
            out[-1] = out[-1].rstrip("\r\n")
        lines[at:k] = out
        floor = at + len(out)
    return "".join(lines)


def _find(lines: list[str], old: list[str], hint: int, floor: int) -> int | None:
    if not old:
        return hint
    plain = [x.rstrip("\r\n") for x in lines]
    for at in sorted(range(floor, len(lines) - len(old) + 1), key=lambda a: abs(a - hint)):
        if plain[at : at + len(old)] == old:
            return at
    return None


def _diff_path(raw: str) -> str:
    path = raw.split("\t")[0].strip()
    if path == DEV_NULL:
        return path
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def unified_diff(old: str | None, new: str | None, path: str) -> str:
    """What the user approves: a git-style diff from `old` to `new` (None = no file)."""
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    lines = list(
        difflib.unified_diff(
            a,
            b,
            DEV_NULL if old is None else f"a/{path}",
            DEV_NULL if new is None else f"b/{path}",
            n=3,
        )
    )
    out = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)
