"""What a grounded answer rests on: the sources sent, numbered, and the citations found in it.

Sources go to the model as numbered blocks and the prompt asks for `[n]` citations. An answer's
`[n]` and `path:line` citations are parsed (outside code) and tied to the block they point into;
`check` then judges the answer: no valid citation, a number or line that was never sent, or a
file or symbol named in prose that is in none of the sources each make it "not grounded", which
every front-end shows.

Prose is full of things shaped like citations, so both forms are narrowed, first by what was
sent: a `path:line` counts when its path is a sent file (also written bare, absolute or with
backslashes) or looks like a file (a directory and an extension, or a known file extension), so
`127.0.0.1:8080`, `1.26.4:2` and `example.com:443` are not citations; a `[n]` counts unless it is
data: an index (`x[1]`), a call argument, an operand, a list after a word such as "list", "is" or
"returns", a `[0]`, or a list of several numbers that are not all sent sources (tests/data/
citations.jsonl holds the labelled answers these rules are judged on).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from assistant.index.languages import language_for_path
from assistant.llm import prompts
from assistant.repo.vetted import Vetted

_CITATION = re.compile(
    r"(?<![\w./\\:-])((?:[A-Za-z]:)?[/\\]?(?:[\w.-]+[/\\])*[\w.-]*\w):(\d+)(?:[-–](\d+))?",
)
"""`path/to/file.ext:12`, `file.ext:12-20`, `C:\\dir\\file.ext:3`: any `word:digits` not inside a
URL or a longer path; `_file_path` then decides whether the word is a file."""
_TEXT_EXTENSIONS = frozenset(
    {"md", "rst", "txt", "json", "yaml", "yml", "toml", "ini", "cfg", "conf", "xml", "html",
     "css", "scss", "sql", "csv", "proto", "graphql", "mk", "cmake", "gradle", "vue", "svelte",
     "dart", "kt", "swift", "scala", "lua", "jl", "ex", "exs", "erl", "hs", "clj", "zig", "bat",
     "ps1", "zsh", "ipynb", "lock"}
)  # fmt: skip
"""Extensions of files that are not indexed code but that answers still cite."""


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
_NUMBERED = re.compile(
    r"(?<![\w\])\['\"])((?:\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])+)"
    r"(?!\(|\.\w|\s*(?:[+*%<>=]|!=))"
)
"""A run of `[2]`, `[1, 3]` or `[1][2]`; not an index (`x[1]`, `a[1][2]`), a markdown link
(`[1](url)`), a method's receiver (`[1, 2].sort()`) nor an operand (`[1] + [2]`)."""
_LITERAL_BEFORE = re.compile(
    r"(?:\b(?:lists?|arrays?|tuples?|vectors?|returns?|returned|yields?|gives|becomes|equals?"
    r"|is|are|was|were|be|prints?|outputs?|like|index|values?|default|literal)|e\.g\.|i\.e\."
    r"|[=+*%<>]|\w\()\s*$",
    re.I,
)
"""What comes right before a list literal in prose: `x = [1, 2]`, `f([1])`, "the list [1, 2]"."""
_EXTENSIONS = "py|js|ts|tsx|jsx|go|rs|java|c|h|cc|cpp|hpp|rb|php|cs|kt|swift|scala|lua|sh"
_PATHLIKE = re.compile(rf"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:{_EXTENSIONS}))\b")
_SNAKE = re.compile(r"(?<![\w./-])[A-Za-z]\w*_\w+(?![\w/])")
_CODE_NAME = re.compile(r"^[A-Za-z_][\w.]*(?:\(\))?$")


def prose(answer: str) -> str:
    """The answer without fenced code blocks: code the model writes may use any names."""
    return _FENCED.sub("", answer)


def parse_citations(answer: str, paths: Iterable[str] = ()) -> list[tuple[str, int, int]]:
    """(path, line, end line) for every `path:line` in `answer` whose path is one of `paths`
    (the files sent) or looks like a file, first occurrence order; paths as written."""
    known = list(paths)
    out: list[tuple[str, int, int]] = []
    for m in _CITATION.finditer(prose(answer)):
        path = m.group(1).removeprefix("./").removeprefix(".\\")
        if not any(_same_file(path, p) for p in known) and not _file_path(path):
            continue
        line = int(m.group(2))
        end = int(m.group(3)) if m.group(3) else line
        item = (path, line, max(line, end))
        if line > 0 and item not in out:
            out.append(item)
    return out


def _same_file(written: str, path: str) -> bool:
    """Whether a path as the answer wrote it names the sent `path`: the same, absolute (or
    with a drive) and ending in it, or its last parts (`client.py` for `uploads/client.py`)."""
    written = written.replace("\\", "/")
    if written == path or path.endswith("/" + written):
        return True
    absolute = written.startswith("/") or written[1:3] == ":/"
    return absolute and written.endswith("/" + path)


def _file_path(path: str) -> bool:
    """A file path that was not sent: an extension with a letter, and a directory or an
    extension that files have (`com` of `example.com:443` is none)."""
    path = path.replace("\\", "/")
    name = path.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem.strip(".") or not ext[:1].isalpha():
        return False  # `10:30`, `1.26.4:2`, `127.0.0.1:8080`, `.env:3`
    if "/" in path:
        return True
    return ext.lower() in _TEXT_EXTENSIONS or language_for_path(name) is not None


def parse_numbers(answer: str, sent: Collection[int] | None = None) -> list[int]:
    """The `[n]` citations of the answer's prose (not in code), first occurrence order; with
    `sent`, a list of several numbers counts only when each is a sent source's."""
    text = _INLINE.sub("_", prose(answer))  # a code span is a value: `x`[1] indexes it
    out: list[int] = []
    for m in _NUMBERED.finditer(text):
        if _LITERAL_BEFORE.search(text, max(0, m.start() - 24), m.start()):
            continue
        for group in re.findall(r"\[([^\]]*)\]", m.group(1)):
            numbers = [int(part) for part in re.split(r"\s*[,;]\s*", group)]
            if 0 in numbers:
                continue  # sources count from 1: `[0]` is an index
            allowed = set(numbers if sent is None else sent)
            if len(numbers) > 1 and (len(set(numbers)) < len(numbers) or set(numbers) - allowed):
                continue  # `[1, 1]`, `[1, 2, 9]` of two sources: data
            out += [n for n in numbers if n not in out]
    return out


def map_citations(answer: str, sources: list[Source]) -> list[Citation]:
    """Citations in `answer`, each tied to the sent chunk it points into: `[n]` first (the
    form the prompt asks for), then `path:line`, under the sent file's path however written."""
    by_n = {s.n: s for s in sources}
    out: list[Citation] = []
    for n in parse_numbers(answer, by_n):
        s = by_n.get(n)
        if s is None:
            out.append(Citation("", 0, 0, None, f"[{n}]"))
        else:
            out.append(Citation(s.path, s.start_line, s.end_line, n, f"[{n}]"))
    for path, line, end in parse_citations(answer, {s.path for s in sources}):
        files = [s for s in sources if _same_file(path, s.path)]
        holder = next((s for s in files if s.start_line <= line <= s.end_line), None)
        named = {s.path for s in files}
        where = holder.path if holder else named.pop() if len(named) == 1 else path
        out.append(Citation(where, line, end, holder.n if holder else None, f"{path}:{line}"))
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


def source_block(s: Source, code: Vetted) -> Vetted:
    """One chunk as the model sees it: number, location, and the code in a fence. `code` is
    `s.text` as the workspace vetted it (Workspace.vet_chunk)."""
    return prompts.render(
        "chat_source",
        n=Vetted.label(str(s.n)),
        path=Vetted.label(s.path),
        start=Vetted.label(str(s.start_line)),
        end=Vetted.label(str(s.end_line)),
        kind=Vetted.label(s.kind),
        symbol=Vetted.label(s.name),
        language=Vetted.label(language_for_path(s.path) or ""),
        code=code,
    )
