"""What a grounded answer rests on: the sources sent, numbered, and the citations found in it.

Sources go to the model as numbered blocks and the prompt asks for `[n]` citations. An answer's
`[n]` and `path:line` citations are parsed (outside code) and tied to the block they point into;
`check` then judges the answer: no valid citation, a number or line that was never sent, or a
file or symbol named in prose that is in none of the sources each make it "not grounded", which
every front-end shows.
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
    written: str = ""
    """The citation as the answer wrote it: `[2]` or `path:12`."""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.path else self.written


@dataclass(frozen=True)
class Grounding:
    """The verdict on one answer's citations, for every front-end to show."""

    valid: int
    """Citations that point into a source that was sent."""
    invalid: list[str]
    """Citations of sources or lines that were not sent, as written."""
    unknown: list[str]
    """Files and code names the answer's prose mentions that no source (nor the question)
    contains: likely invented."""

    @property
    def grounded(self) -> bool:
        return self.valid > 0 and not self.invalid and not self.unknown

    def describe(self) -> str:
        """One line: what is wrong, or how the answer is grounded."""
        problems = []
        if self.valid == 0:
            problems.append("no citations: not grounded")
        if self.invalid:
            problems.append(f"cites {', '.join(self.invalid[:4])}, not among the sources sent")
        if self.unknown:
            names = ", ".join(f"`{n}`" for n in self.unknown[:4])
            more = f" and {len(self.unknown) - 4} more" if len(self.unknown) > 4 else ""
            problems.append(f"names {names}{more}, found in no source")
        if problems:
            return "; ".join(problems)
        return f"grounded: {self.valid} citation{'s' if self.valid != 1 else ''} of the sources"


_FENCED = re.compile(r"^(```|~~~).*?(?:^\1[^\n]*$|\Z)", re.S | re.M)
_INLINE = re.compile(r"`[^`\n]*`")
_NUMBERED = re.compile(r"(?<![\w\])\[])\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\](?!\()")
"""`[2]` or `[1, 3]`, not an index (`x[1]`) nor a markdown link (`[1](url)`)."""
_EXTENSIONS = "py|js|ts|tsx|jsx|go|rs|java|c|h|cc|cpp|hpp|rb|php|cs|kt|swift|scala|lua|sh"
_PATHLIKE = re.compile(rf"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:{_EXTENSIONS}))\b")
_SNAKE = re.compile(r"(?<![\w./-])[A-Za-z]\w*_\w+(?![\w/])")
_CODE_NAME = re.compile(r"^[A-Za-z_][\w.]*(?:\(\))?$")


def prose(answer: str) -> str:
    """The answer without fenced code blocks: code the model writes may use any names."""
    return _FENCED.sub("", answer)


def parse_citations(answer: str) -> list[tuple[str, int, int]]:
    """(path, line, end line) for every `path:line` in `answer`, first occurrence order."""
    out: list[tuple[str, int, int]] = []
    for m in _CITATION.finditer(prose(answer)):
        path = m.group(1).removeprefix("./")
        line = int(m.group(2))
        end = int(m.group(3)) if m.group(3) else line
        item = (path, line, max(line, end))
        if line > 0 and item not in out:
            out.append(item)
    return out


def parse_numbers(answer: str) -> list[int]:
    """The `[n]` citations of the answer's prose (not in code), first occurrence order."""
    out: list[int] = []
    for m in _NUMBERED.finditer(_INLINE.sub("", prose(answer))):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            n = int(part)
            if n not in out:
                out.append(n)
    return out


def map_citations(answer: str, sources: list[Source]) -> list[Citation]:
    """Citations in `answer`, each tied to the sent chunk it points into: `[n]` first (the
    form the prompt asks for), then `path:line`."""
    by_n = {s.n: s for s in sources}
    out: list[Citation] = []
    for n in parse_numbers(answer):
        s = by_n.get(n)
        if s is None:
            out.append(Citation("", 0, 0, None, f"[{n}]"))
        else:
            out.append(Citation(s.path, s.start_line, s.end_line, n, f"[{n}]"))
    for path, line, end in parse_citations(answer):
        holder = next(
            (s.n for s in sources if s.path == path and s.start_line <= line <= s.end_line),
            None,
        )
        out.append(Citation(path, line, end, holder, f"{path}:{line}"))
    return out


def check(answer: str, sources: list[Source], question: str = "") -> Grounding:
    """Judge an answer against the sources that were sent (see the module's docstring)."""
    citations = map_citations(answer, sources)
    valid = sum(1 for c in citations if c.source is not None)
    invalid = [c.written for c in citations if c.source is None]
    known = "\n".join([question, *(f"{s.path}\n{s.name}\n{s.text}" for s in sources)])
    text = prose(answer)
    unknown: list[str] = []
    cited_paths = {c.path for c in citations}
    for m in _PATHLIKE.finditer(text):
        path = m.group(1).removeprefix("./")
        if path not in known and path not in cited_paths and path not in unknown:
            unknown.append(path)
    spans = [m.group(0).strip("`") for m in _INLINE.finditer(text)]
    spans += _SNAKE.findall(_INLINE.sub("", text))  # snake_case in plain prose is code too
    for span in spans:
        name = span.removesuffix("()")
        if not _CODE_NAME.match(name) or len(name) < 4 or _PATHLIKE.match(name):
            continue
        if not _code_like(name):
            continue  # a plain word in backticks is not a claim about the code
        last = name.rsplit(".", 1)[-1]
        if last not in known and name not in unknown:
            unknown.append(name)
    return Grounding(valid, invalid, unknown)


def _code_like(name: str) -> bool:
    """snake_case, camelCase, CONSTANT or dotted: words that only code uses."""
    return "_" in name or "." in name or any(c.isupper() for c in name[1:])


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
