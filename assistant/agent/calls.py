"""The agent's tool vocabulary: definitions, the GBNF grammar built from them, and the parser.

One call is one JSON object, `{"tool": NAME, "args": {...}}`, with every argument present and in
the listed order. The grammar spells out exactly that (no free whitespace, bounded strings), so a
model sampled under it, however small, always produces something that parses. Servers that ignore
grammars can still send junk, so every call is parsed and validated here all the same; an invalid
one becomes an error message for the model, never an exception for the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

ArgType = Literal["string", "text", "integer"]


@dataclass(frozen=True)
class Arg:
    name: str
    type: ArgType
    """`string`: one short line (a path, a query); `text`: file content, may span lines."""
    doc: str


@dataclass(frozen=True)
class ToolSpec:
    name: str
    doc: str
    args: tuple[Arg, ...]
    writes: bool = False
    """Changes files or runs things: needs approval and gets a checkpoint."""


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "search",
        "Search the code index (names and meaning); returns matching definitions.",
        (Arg("query", "string", "words or identifiers to look for"),),
    ),
    ToolSpec(
        "grep",
        "Find lines matching a regular expression (Python syntax) in files under a directory.",
        (
            Arg("pattern", "string", "regular expression"),
            Arg("path", "string", "directory or file to search; '.' for the whole repository"),
        ),
    ),
    ToolSpec(
        "list_files",
        "List the files under a directory.",
        (Arg("path", "string", "directory; '.' for the repository root"),),
    ),
    ToolSpec(
        "read_file",
        "Read a file with line numbers; start and end are 1-based, 0 means from the start / to "
        "the end.",
        (
            Arg("path", "string", "file to read"),
            Arg("start", "integer", "first line, or 0"),
            Arg("end", "integer", "last line, or 0"),
        ),
    ),
    ToolSpec(
        "find_symbol",
        "Show where a function, class or variable is defined and where it is used.",
        (Arg("name", "string", "the symbol's name"),),
    ),
    ToolSpec(
        "edit_file",
        "Replace one exact, unique piece of text in a file with new text.",
        (
            Arg("path", "string", "file to edit"),
            Arg("search", "text", "the exact text now in the file, enough lines to be unique"),
            Arg("replace", "text", "the text to put in its place"),
        ),
        writes=True,
    ),
    ToolSpec(
        "apply_patch",
        "Apply a unified diff (--- a/path, +++ b/path, @@ hunks) to one or more files.",
        (Arg("diff", "text", "the unified diff"),),
        writes=True,
    ),
    ToolSpec(
        "create_file",
        "Create a new file with the given content (fails if it exists).",
        (Arg("path", "string", "file to create"), Arg("content", "text", "its full content")),
        writes=True,
    ),
    ToolSpec(
        "run_command",
        "Run a shell command in the repository root; returns its exit code and output.",
        (Arg("command", "string", "the exact command line"),),
        writes=True,
    ),
    ToolSpec(
        "final",
        "Finish: give the user your answer or a summary of what you changed.",
        (Arg("answer", "text", "the answer"),),
    ),
)

BY_NAME = {t.name: t for t in TOOLS}

# Longest value of a `string` argument, in characters; `text` ones get the caller's limit.
STRING_LIMIT = 300


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, str | int]

    def text(self, name: str) -> str:
        return str(self.args[name])

    def number(self, name: str) -> int:
        value = self.args[name]
        return value if isinstance(value, int) else 0


class InvalidCall(ValueError):
    """The model's output is not a valid call; the message is written for the model."""


def describe_tools(tools: tuple[ToolSpec, ...] = TOOLS) -> str:
    """The tool list for the system prompt, with one example call each."""
    lines = []
    for spec in tools:
        example = json.dumps(
            {
                "tool": spec.name,
                "args": {a.name: (0 if a.type == "integer" else "...") for a in spec.args},
            }
        )
        args = "; ".join(f"{a.name}: {a.doc}" for a in spec.args)
        lines.append(f"- {spec.name}: {spec.doc} Arguments: {args}.\n  {example}")
    return "\n".join(lines)


def grammar(
    tools: tuple[ToolSpec, ...] = TOOLS, *, text_limit: int = 8000, string_limit: int = STRING_LIMIT
) -> str:
    """GBNF for exactly one call to one of `tools`.

    Every string has an upper bound, so the longest possible call is known (`max_call_chars`)
    and a generation budget of that many tokens always reaches the closing brace.
    """
    rules = ["root ::= " + " | ".join(f"call-{_rule(t.name)}" for t in tools)]
    for spec in tools:
        parts = [_literal('{"tool":"' + spec.name + '","args":{')]
        for i, arg in enumerate(spec.args):
            parts.append(_literal(("," if i else "") + f'"{arg.name}":'))
            parts.append({"string": "short", "text": "long", "integer": "int"}[arg.type])
        parts.append(_literal("}}"))
        rules.append(f"call-{_rule(spec.name)} ::= " + " ".join(parts))
    # A string character: anything but a quote, a backslash or a control character, or an
    # escape; the bounds keep a model that loves one token from filling its whole budget.
    rules += [
        r'char ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
        f'short ::= "\\"" char{{0,{string_limit}}} "\\""',
        f'long ::= "\\"" char{{0,{text_limit}}} "\\""',
        'int ::= "0" | [1-9] [0-9]{0,6}',
    ]
    return "\n".join(rules) + "\n"


def max_call_tokens(
    tools: tuple[ToolSpec, ...] = TOOLS, *, text_limit: int = 8000, string_limit: int = STRING_LIMIT
) -> int:
    """An upper bound on the tokens of any call the grammar allows: a string character is at
    most six tokens (a `\\uXXXX` escape, or four byte tokens of one UTF-8 character)."""
    longest = 0
    for spec in tools:
        size = len(spec.name) + 30
        for arg in spec.args:
            size += len(arg.name) + 4
            size += {"string": string_limit * 6, "text": text_limit * 6, "integer": 7}[arg.type]
        longest = max(longest, size)
    return longest


def parse_call(text: str, tools: tuple[ToolSpec, ...] = TOOLS) -> ToolCall:
    """The call in `text` (surrounding prose and code fences are tolerated), validated."""
    start = text.find("{")
    if start < 0:
        raise InvalidCall('no JSON object found; reply with exactly one {"tool": ..., "args": ...}')
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise InvalidCall(f"the call is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, dict):
        raise InvalidCall("the call must be a JSON object")
    name = data.get("tool")
    by_name = {t.name: t for t in tools}
    if not isinstance(name, str) or name not in by_name:
        raise InvalidCall(f"unknown tool {name!r}; the tools are: {', '.join(by_name)}")
    spec = by_name[name]
    raw_args = data.get("args", {})
    if not isinstance(raw_args, dict):
        raise InvalidCall(f"{name}: 'args' must be an object")
    args: dict[str, str | int] = {}
    for arg in spec.args:
        if arg.name not in raw_args:
            if arg.type == "integer":
                args[arg.name] = 0
                continue
            raise InvalidCall(f"{name}: missing argument {arg.name!r}")
        value = raw_args[arg.name]
        if arg.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidCall(f"{name}: {arg.name!r} must be a non-negative integer")
        elif not isinstance(value, str):
            raise InvalidCall(f"{name}: {arg.name!r} must be a string")
        elif not _encodable(value):
            raise InvalidCall(f"{name}: {arg.name!r} holds an unpaired \\u surrogate escape")
        args[arg.name] = value
    extra = set(raw_args) - {a.name for a in spec.args}
    if extra:
        raise InvalidCall(f"{name}: unknown argument(s) {', '.join(sorted(extra))}")
    return ToolCall(name, args)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _rule(name: str) -> str:
    return name.replace("_", "-")


def _literal(text: str) -> str:
    return json.dumps(text)
