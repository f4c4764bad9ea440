"""Symbols -> chunks: the units that are ranked, embedded and returned by search.

One chunk per definition; a container (class, impl, namespace...) keeps only the lines its
children do not cover, so nothing is indexed twice; a long body is split into overlapping windows,
each repeating the definition's header; lines outside every definition become `code` chunks.
Together the chunks cover every non-blank line of the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from assistant.index.symbols import Symbol

_OVERLAP = 8
_COMMENT_MARKS = ("//", "/*", "*", "#", "--", ";;")


@dataclass(frozen=True)
class Chunk:
    path: str
    name: str
    qualified_name: str
    kind: str
    start_line: int
    """1-based, inclusive: the first line of this chunk's span."""
    end_line: int
    signature: str
    doc: str
    text: str
    """The chunk's source text (windows after the first start with the definition's header)."""
    symbol_start: int
    """First line of the whole definition (equal to start_line for gap chunks)."""

    @property
    def key(self) -> str:
        raw = f"{self.path}\0{self.qualified_name}\0{self.start_line}\0{self.end_line}"
        return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def _covered_by_children(sym: Symbol, children: list[Symbol]) -> set[int]:
    lines: set[int] = set()
    for child in children:
        lines.update(range(child.start_line, child.end_line + 1))
    return lines


def _runs(lines: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in lines:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _windows(start: int, end: int, size: int) -> list[tuple[int, int]]:
    if end - start + 1 <= size:
        return [(start, end)]
    out = []
    step = max(1, size - _OVERLAP)
    s = start
    while True:
        e = min(end, s + size - 1)
        out.append((s, e))
        if e >= end:
            return out
        s += step


def make_chunks(path: str, text: str, symbols: list[Symbol], max_lines: int = 60) -> list[Chunk]:
    lines = text.split("\n")
    n = len(lines)

    def body(a: int, b: int) -> str:
        return "\n".join(lines[a - 1 : b])

    def blank(a: int, b: int) -> bool:
        return not body(a, b).strip()

    def trim(a: int, b: int) -> tuple[int, int]:
        """Drop blank lines at both ends, so a span points at real code."""
        while a < b and blank(a, a):
            a += 1
        while b > a and blank(b, b):
            b -= 1
        return a, b

    def comment(ln: int) -> bool:
        return lines[ln - 1].strip().startswith(_COMMENT_MARKS)

    def lead_in(sym: Symbol) -> int:
        """Start of the comment block above `sym`, across at most two blank lines.

        Doc comments separated from their definition by a blank line are common (and some
        parsers never attach them); without this they would end up in the container's chunk.
        """
        ln, blanks = sym.start_line - 1, 0
        while ln >= 1 and blank(ln, ln) and blanks < 2:
            ln, blanks = ln - 1, blanks + 1
        top = sym.start_line
        while ln >= 1 and comment(ln) and ln not in taken:
            top, ln = ln, ln - 1
        return top

    # Lines inside leaf definitions belong to them; comments inside containers are up for grabs.
    parents = {sym.parent for sym in symbols if sym.parent}
    taken: set[int] = set()
    for sym in symbols:
        if sym.qualified_name not in parents:
            taken.update(range(sym.start_line, sym.end_line + 1))
    starts: dict[int, int] = {}
    for idx, sym in enumerate(symbols):
        top = lead_in(sym)
        if top < sym.start_line:
            starts[idx] = top
            taken.update(range(top, sym.start_line))
    symbols = [
        replace(sym, start_line=starts[i]) if i in starts else sym for i, sym in enumerate(symbols)
    ]

    children: dict[str, list[Symbol]] = {}
    for sym in symbols:
        if sym.parent:
            children.setdefault(sym.parent, []).append(sym)
    chunks: list[Chunk] = []
    covered: set[int] = set()
    for sym in symbols:
        start, end = max(1, sym.start_line), min(n, sym.end_line)
        if end < start:
            continue
        covered.update(range(start, end + 1))
        nested = children.get(sym.qualified_name, [])
        kids = [c for c in nested if start <= c.start_line and c.end_line <= end]
        if kids:
            inner = _covered_by_children(sym, kids)
            own = [ln for ln in range(start, end + 1) if ln not in inner]
            spans = [trim(*r) for r in _runs(own) if not blank(*r)]
        else:
            spans = [(start, end)]
        header = sym.signature
        for span_start, span_end in spans:
            for i, (a, b) in enumerate(_windows(span_start, span_end, max_lines)):
                piece = body(a, b)
                if (i > 0 or a > sym.def_line) and header and header not in piece:
                    piece = f"{header}\n{piece}"
                chunks.append(
                    Chunk(
                        path,
                        sym.name,
                        sym.qualified_name,
                        sym.kind,
                        a,
                        b,
                        sym.signature,
                        sym.doc,
                        piece,
                        start,
                    )
                )
    gap = [ln for ln in range(1, n + 1) if ln not in covered]
    stem = PurePosixPath(path).name
    for run_start, run_end in _runs(gap):
        for a, b in _windows(run_start, run_end, max_lines):
            if blank(a, b):
                continue
            a, b = trim(a, b)
            chunks.append(Chunk(path, stem, stem, "code", a, b, "", "", body(a, b), a))
    chunks.sort(key=lambda c: (c.start_line, c.end_line))
    return chunks
