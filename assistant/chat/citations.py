"""What a grounded answer rests on: the sources sent, numbered, and the citations found in it.

Sources go to the model as numbered blocks; an answer's `path:line` citations are parsed and tied
to the block that holds the line, so a front-end can tell a grounded claim from an invented one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.index.languages import language_for_path
from assistant.llm import prompts

_CITATION = re.compile(
    r"(?<![\w./-])`?((?:[\w.-]+/)*[\w-][\w.-]*\.\w+):(\d+)(?:[-–](\d+))?`?",
)
"""`path/to/file.ext:12` or `file.ext:12-20`, optionally in backticks."""


@dataclass(frozen=True)
class Source:
    """A chunk of code that went into the prompt, exactly as it was sent."""

    n: int
    """1-based number shown to the model as `[n]`."""
    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    chunk_id: int
    reason: str
    """`named` (the question names this symbol) or `search` (hybrid search ranked it)."""
    tokens: int
    text: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start_line}"


@dataclass(frozen=True)
class Citation:
    """A `path:line` in an answer; `source` is the sent chunk that holds that line, if any."""

    path: str
    line: int
    end_line: int
    source: int | None
    """`Source.n` of the chunk the citation points into; None when it cites unsent code."""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


def parse_citations(answer: str) -> list[tuple[str, int, int]]:
    """(path, line, end line) for every `path:line` in `answer`, first occurrence order."""
    out: list[tuple[str, int, int]] = []
    for m in _CITATION.finditer(answer):
        path = m.group(1).removeprefix("./")
        line = int(m.group(2))
        end = int(m.group(3)) if m.group(3) else line
        item = (path, line, max(line, end))
        if line > 0 and item not in out:
            out.append(item)
    return out


def map_citations(answer: str, sources: list[Source]) -> list[Citation]:
    """Citations in `answer`, each tied to the sent chunk that contains its line."""
    out: list[Citation] = []
    for path, line, end in parse_citations(answer):
        holder = next(
            (s.n for s in sources if s.path == path and s.start_line <= line <= s.end_line),
            None,
        )
        out.append(Citation(path, line, end, holder))
    return out


def source_block(s: Source) -> str:
    """One chunk as the model sees it: number, location, and the code in a fence."""
    return prompts.render(
        "chat_source",
        n=str(s.n),
        path=s.path,
        start=str(s.start_line),
        end=str(s.end_line),
        kind=s.kind,
        symbol=s.name,
        language=language_for_path(s.path) or "",
        code=s.text,
    )
