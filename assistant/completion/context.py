"""Repository context for a completion: definitions from other files that the code at the
cursor uses (names near the cursor first, then the file's imports), within a budget, in a
stable order so that the prompt's beginning stays the same between keystrokes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.index.search import is_test_code
from assistant.llm.fim import ContextFile
from assistant.repo.vetted import Vetted

if TYPE_CHECKING:
    from assistant.index.store import ChunkRow
    from assistant.workspace import Workspace

CHARS_PER_TOKEN = 3.5
NEARBY_LINES = 12
"""Lines around the cursor whose identifiers are looked up when no enclosing symbol is known."""
CONTEXT_CHUNK_CHARS = 700
"""A definition shown as context is cut to this: its signature and first lines matter most."""
MAX_NAMES = 24
"""Names looked up in the index per request: the closest to the cursor and the imports."""
PER_NAME = 2
"""Definitions shown per name: a name defined in many places is a guess past the first few."""
_ELIDED = Vetted.label("\n...\n")
"""Between two definitions of one file in the prompt."""
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINED = re.compile(r"(?:def|class|function|func|fn|struct|interface|type)\s+(\w+)")
_KEYWORDS_TEXT = """
    and as assert async await break case catch class const continue def default defer del do
    elif else enum except export extends false fn for from func function go if impl implements
    import in interface is let loop match mod new nil none not null or package pass pub raise
    return self static struct super switch this throw true try type use var void while with
    yield int str float bool string list dict len print public private protected final
"""
_KEYWORDS = frozenset(_KEYWORDS_TEXT.split())
_IMPORTS = (
    re.compile(r"^\s*from\s+[\w.]+\s+import\s+\(?([\w\s,]+)\)?", re.M),  # Python
    re.compile(r"^\s*import\s+(?:type\s+)?\{([^}]*)\}\s+from", re.M),  # JS / TS named
    re.compile(r"^\s*import\s+(\w+)\s*(?:,|\s+from)", re.M),  # JS / TS default
    re.compile(r"^\s*use\s+[\w:]+::\{?([\w\s,:]+)\}?\s*;", re.M),  # Rust
    re.compile(r"^\s*import\s+(?:static\s+)?[\w.]+\.(\w+)\s*;", re.M),  # Java / Kotlin
)


@dataclass(frozen=True)
class ContextChunk:
    """A definition from another file that went into the prompt, and why it was chosen."""

    path: str
    name: str
    start_line: int
    end_line: int
    reason: str


@dataclass(frozen=True)
class Candidate:
    """A definition worth showing at the cursor, with its text as it goes into the prompt."""

    chunk: ContextChunk
    text: Vetted

    @property
    def key(self) -> tuple[str, int]:
        return self.chunk.path, self.chunk.start_line


def candidates(
    ws: Workspace, budget_tokens: int, rel: str, text: str, offset: int
) -> list[Candidate]:
    """Definitions from other files that the code at the cursor uses, most wanted first,
    within the budget."""
    budget = int(budget_tokens * CHARS_PER_TOKEN)
    if budget <= 0 or not ws.has_index():
        return []
    line = text.count("\n", 0, offset) + 1
    nearby = _names_at(ws, rel, text, offset, line)
    imported = imported_names(text)
    # Closest to the cursor first, then what the file imports.
    wanted = [*nearby, *sorted(imported - set(nearby))][:MAX_NAMES]
    rows: list[ChunkRow] = []
    if wanted:
        in_tests = is_test_code(rel, "")
        rows = [
            r
            for r in ws.chunks_named(wanted, limit=80)
            if r.path != rel and (in_tests or not is_test_code(r.path, r.qualified_name))
        ]
    order = {n.lower(): i for i, n in enumerate(wanted)}
    rows.sort(key=lambda r: (order.get(r.name.lower(), len(order)), r.path, r.start_line))
    picked: list[Candidate] = []
    used = 0
    seen: set[tuple[str, int]] = set()
    per_name: dict[str, int] = {}
    for row in rows:
        if (row.path, row.symbol_start) in seen:
            continue
        if per_name.get(row.name, 0) >= PER_NAME:
            continue  # `get` defined in twenty classes: which one is meant is a guess
        per_name[row.name] = per_name.get(row.name, 0) + 1
        body = ws.vet_chunk(row)[:CONTEXT_CHUNK_CHARS].rstrip()
        if used + len(body) > budget:
            continue
        seen.add((row.path, row.symbol_start))
        reason = "imported" if row.name in imported else "used near the cursor"
        chunk = ContextChunk(row.path, row.qualified_name, row.start_line, row.end_line, reason)
        picked.append(Candidate(chunk, body))
        used += len(body)
    return picked


def as_prompt_context(chosen: Sequence[Candidate]) -> list[ContextFile]:
    """Chunks as the model sees them, in the order given; neighbours from one file share a
    header."""
    files: list[ContextFile] = []
    for c in chosen:
        if files and files[-1].path == c.chunk.path:
            files[-1] = ContextFile(c.chunk.path, files[-1].text + _ELIDED + c.text)
        else:
            files.append(ContextFile(c.chunk.path, c.text))
    return files


def _names_at(ws: Workspace, rel: str, text: str, offset: int, line: int) -> list[str]:
    """Identifiers of the enclosing definition (or the lines around the cursor), closest
    to the cursor first; names this file defines itself are left out."""
    lines = text.split("\n")
    lo, hi = max(0, line - 1 - NEARBY_LINES), min(len(lines), line + 3)
    enclosing = [
        s
        for s in ws.symbols_in(rel)
        if s.start_line <= line <= s.end_line and s.end_line - s.start_line < 200
    ]
    if enclosing:
        inner = min(enclosing, key=lambda s: s.end_line - s.start_line)
        lo, hi = min(lo, inner.start_line - 1), max(hi, min(len(lines), inner.end_line))
    here = offset - sum(len(x) + 1 for x in lines[:lo])
    region = "\n".join(lines[lo:hi])
    local = set(_DEFINED.findall(text))
    distance: dict[str, int] = {}
    for m in _IDENT.finditer(region):
        w = m.group(0)
        if len(w) < 3 or w.startswith("__") or w.lower() in _KEYWORDS or w in local:
            continue
        d = here - m.start() if m.start() <= here else 4 * (m.start() - here)
        distance[w] = min(distance.get(w, d), d)
    return sorted(distance, key=distance.__getitem__)


def imported_names(text: str) -> set[str]:
    """Names a file imports from elsewhere (Python, JS/TS, Rust, Java)."""
    found: set[str] = set()
    for pattern in _IMPORTS:
        for m in pattern.finditer(text[:20000]):
            for part in re.split(r"[,\s]+", m.group(1)):
                name = part.split("::")[-1].strip()
                if name and name not in ("as", "self", "*") and _IDENT.fullmatch(name):
                    found.add(name)
    return found
