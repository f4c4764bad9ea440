"""Definitions in a source file: tree-sitter tags queries in, `Symbol` records out.

The queries (`assistant/queries/<lang>.scm`) say only *what* is a definition: each pattern
captures the whole definition as `@definition.<kind>` and its name as `@name`, and may capture
`@scope` for an owner the definition is not written inside (a Go method's receiver type). When
several patterns capture the same name in the same node, the first pattern in the file wins.

Everything else is computed here from the syntax tree, the same way for every language: parents
from how definition nodes nest, a function directly inside a class-like definition becoming a
method, `A::b` names split into scope and name, decorators/attributes/doc comments widening
`start_line`, the signature as the text up to the body.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace

from tree_sitter import Node, Parser, QueryCursor, Tree

from assistant.index import languages
from assistant.index.languages import LanguageSpec
from assistant.index.signatures import (
    PREFIX_TYPES,
    comment_doc,
    docstring,
    signature,
    text_of,
)

KINDS = frozenset(
    {
        "function",
        "method",
        "class",
        "interface",
        "struct",
        "enum",
        "trait",
        "impl",
        "module",
        "type",
        "constant",
        "macro",
        "namespace",
    }
)
# A function written directly inside one of these is a method.
_METHOD_OWNERS = frozenset({"class", "interface", "struct", "enum", "trait", "impl"})
# Definitions that can be a parent; a typedef wrapping a struct, or a constant holding a
# lambda, does not make what is inside it a member.
_CONTAINERS = _METHOD_OWNERS | {"function", "method", "module", "namespace"}

PARSE_BUDGET_S = 1.0
"""Seconds a parse may take, per MB of source (and once more for any file)."""

log = logging.getLogger(__name__)

_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")


@dataclass(frozen=True)
class Symbol:
    name: str
    qualified_name: str
    """Enclosing definitions' names and this one, joined with ".": "Outer.Inner.method"."""
    kind: str
    """One of KINDS."""
    signature: str
    """The definition's header: its text up to the body, whitespace collapsed, ≤300 chars."""
    doc: str
    """Docstring or the doc comment above, markers stripped; "" if none."""
    start_line: int
    """1-based, including decorators, attributes and the doc comment above."""
    end_line: int
    """1-based inclusive."""
    def_line: int
    """1-based: the line of the definition's name."""
    parent: str | None
    """qualified_name of the enclosing definition (or owner type), None at top level."""


@dataclass(slots=True)
class _Found:
    """One query match, before parents are known."""

    node: Node
    name_node: Node
    scope_node: Node | None
    kind: str
    pattern: int
    bodiless: bool = False


@dataclass(slots=True)
class _Placed:
    """A definition with its extent and names, before parents are known."""

    start_byte: int
    end_byte: int
    start_line: int
    end_line: int
    def_line: int
    name: str
    scope: list[str]
    kind: str
    signature: str
    doc: str
    bodiless: bool = False


_local = threading.local()


def _parser(language: str) -> Parser | None:
    # Parsers are reusable but not thread-safe: one per language per thread.
    parsers: dict[str, Parser] = _local.__dict__.setdefault("parsers", {})
    parser = parsers.get(language)
    if parser is None:
        grammar = languages.grammar(language)
        if grammar is None:
            return None
        parser = parsers[language] = Parser(grammar)
    return parser


def parse_tree(source: bytes, language: str) -> Tree | None:
    """The whole syntax tree of `source`, or None when the language has no grammar."""
    parser = _parser(language)
    return None if parser is None else parser.parse(source)


def extract_symbols(source: bytes, language: str, *, bounded: bool = True) -> list[Symbol]:
    """The definitions in `source`, sorted by (start_line, end_line descending).

    Never raises on bad input: syntax errors leave ERROR nodes and whatever still parses as a
    definition is returned. An unknown language, or one whose grammar or query failed to load,
    has no symbols. `bounded=False` skips the parse time budget, for callers that bound the
    time themselves (the indexer's worker processes, which are killed at a deadline).
    """
    spec = languages.spec(language)
    query = languages.tags_query(language)
    parser = _parser(language)
    # A NUL in the first 8 KB means binary (git's test); parsing it would only cost time.
    if spec is None or query is None or parser is None or b"\0" in source[:8192]:
        return []
    tree = _parse(parser, source) if bounded else parser.parse(source)
    if tree is None:
        return []
    context = _Context(source, spec.detached_docs)
    found = _dedupe(_matches(QueryCursor(query).matches(tree.root_node), context))
    placed = [_place(f, source, spec, context) for f in found]
    return _nest([p for p in placed if p.name])


def _parse(parser: Parser, source: bytes) -> Tree | None:
    """The syntax tree, or None when parsing overruns its time budget.

    Normal code parses at several MB a second, but some grammars crawl through garbage (the
    TypeScript ones take seconds on 200 KB of random text); an indexer must not stall on it.
    """
    view = memoryview(source)
    deadline = time.monotonic() + PARSE_BUDGET_S * (1 + len(source) / 1_000_000)
    try:
        # Only a parse that reads through a callback can be cancelled.
        bounded = parser.parse(
            lambda offset, _point: view[offset:],
            progress_callback=lambda _offset, _has_error: time.monotonic() > deadline,
        )
    except ValueError:  # how py-tree-sitter reports a parse cancelled by the callback
        parser.reset()  # or the next parse would resume this one
        log.info("gave up parsing %d bytes after %.1fs", len(source), PARSE_BUDGET_S)
        return None
    # A tree parsed from a callback has no text, and py-tree-sitter then crashes evaluating
    # #match?/#eq? predicates. Reparsing with the bytes reuses every subtree (~15% of a parse).
    return parser.parse(source, old_tree=bounded)


def _matches(
    matches: list[tuple[int, dict[str, list[Node]]]], context: _Context
) -> Iterator[_Found]:
    """The definitions among the query's matches; comments and wrappers go to `context`.

    Consume it entirely before using `context`.
    """
    for pattern, captures in matches:
        definition = None
        kind = ""
        for capture, nodes in captures.items():
            if capture.startswith("definition."):
                definition, kind = nodes[0], capture.removeprefix("definition.")
            elif capture == "leading":
                context.add_leading(nodes[0])
            elif capture == "wrapper":
                context.add_wrapper(nodes[0])
        if definition is None or kind not in KINDS:
            continue
        scope = captures.get("scope")
        bodiless = "bodiless" in captures
        # `const a, b = 1, 2` captures several names for one definition.
        for name in captures.get("name", []):
            yield _Found(definition, name, scope[0] if scope else None, kind, pattern, bodiless)


def _dedupe(found: Iterator[_Found]) -> list[_Found]:
    best: dict[tuple[int, int, int], _Found] = {}
    for f in found:
        key = (f.node.start_byte, f.node.end_byte, f.name_node.start_byte)
        if key not in best or f.pattern < best[key].pattern:
            best[key] = f
    return list(best.values())


_HEADER = re.compile(rb"@license|@file|@fileoverview|@module|@copyright|copyright|SPDX-", re.I)


class _Context:
    """What surrounds the definitions of one file: comments, attributes and wrapping nodes.

    Collected from the same query pass as the definitions, because `Node.parent` walks down
    from the root each time, which makes climbing from every definition quadratic in deeply
    nested code.
    """

    def __init__(self, source: bytes, detached_docs: tuple[str, ...] = ()) -> None:
        self.source = source
        self.detached_docs = tuple(d.encode() for d in detached_docs)
        self._leading: list[Node] = []
        self._ends: list[int] = []
        # (start, end) of a wrapped definition → the node wrapping only it.
        self._wrappers: dict[tuple[int, int], Node] = {}

    def add_leading(self, node: Node) -> None:
        self._leading.append(node)
        self._ends.clear()  # sorted again on the next lookup

    def add_wrapper(self, wrapper: Node) -> None:
        inner = []
        for child in wrapper.children:
            # A parenthesized group (Go's `const ( ... )`) is a list even when it holds one.
            if child.type == "(":
                return
            if child.is_named and child.type not in PREFIX_TYPES:
                inner.append(child)
        if len(inner) != 1:
            return
        key = (inner[0].start_byte, inner[0].end_byte)
        if key != (wrapper.start_byte, wrapper.end_byte):
            self._wrappers[key] = wrapper

    def widen(self, node: Node) -> Node:
        """The outermost node that wraps only this definition: decorators, `export`, `template`."""
        while (wrapper := self._wrappers.get((node.start_byte, node.end_byte))) is not None:
            node = wrapper
        return node

    def _detached(self, node: Node) -> bool:
        """A doc comment that its tool attaches across blank lines, unless it is the file's
        header (a licence or `@file` block)."""
        text = self.source[node.start_byte : node.end_byte]
        return text.startswith(self.detached_docs) and _HEADER.search(text) is None

    def above(self, start: int) -> list[Node]:
        """The run of comments and attributes ending right before `start`, nearest first."""
        if len(self._ends) != len(self._leading):
            self._leading.sort(key=lambda n: n.end_byte)
            self._ends = [n.end_byte for n in self._leading]
        run: list[Node] = []
        while True:
            i = bisect_right(self._ends, start) - 1
            if i < 0:
                return run
            node = self._leading[i]
            gap = self.source[node.end_byte : start]
            if gap.strip() or (gap.count(b"\n") > 1 and not (not run and self._detached(node))):
                return run
            # A comment trailing code on its line belongs to that code.
            line_start = self.source.rfind(b"\n", 0, node.start_byte) + 1
            if self.source[line_start : node.start_byte].strip():
                return run
            if self.source.startswith(b"#!", node.start_byte):  # a shebang documents nothing
                return run
            run.append(node)
            start = node.start_byte


def _place(found: _Found, source: bytes, spec: LanguageSpec, context: _Context) -> _Placed:
    node = found.node
    outer = context.widen(node)
    start_byte, start_row = outer.start_byte, outer.start_point.row
    end_byte, end_point = outer.end_byte, outer.end_point
    if node.type in spec.open_scope_types and outer.parent is not None:
        end_byte, end_point = outer.parent.end_byte, outer.parent.end_point
    doc = ""
    if spec.docstrings:
        doc = docstring(node, source)
    else:
        above = context.above(start_byte)
        if above:
            start_byte, start_row = above[-1].start_byte, above[-1].start_point.row
            comments = [n for n in reversed(above) if n.type in spec.comment_types]
            doc = comment_doc([text_of(source, n.start_byte, n.end_byte) for n in comments])
    # A node ending at column 0 ends with the newline of the line before.
    end_line = end_point.row + (1 if end_point.column > 0 or end_byte == start_byte else 0)
    scope, name = _split_name(text_of(source, found.name_node.start_byte, found.name_node.end_byte))
    if found.scope_node is not None:
        scope = [text_of(source, found.scope_node.start_byte, found.scope_node.end_byte)]
    kind = found.kind
    if scope and kind == "function":
        kind = "method"
    return _Placed(
        start_byte=start_byte,
        end_byte=end_byte,
        start_line=start_row + 1,
        end_line=max(end_line, start_row + 1),
        def_line=found.name_node.start_point.row + 1,
        name=name,
        scope=scope,
        kind=kind,
        signature=signature(node, outer, found.name_node, found.kind, source),
        doc=doc,
        bodiless=found.bodiless,
    )


def _split_name(text: str) -> tuple[list[str], str]:
    """`ns::A<T>::get` → (["ns", "A"], "get"); quotes around module names are dropped."""
    text = text.strip().strip("\"'`")
    if "::" not in text:
        return [], text
    scope, _, name = text.rpartition("::")
    while _TEMPLATE_ARGS.search(scope):
        scope = _TEMPLATE_ARGS.sub("", scope)
    return [p.strip() for p in scope.split("::") if p.strip()], name.strip()


def _nest(placed: list[_Placed]) -> list[Symbol]:
    placed.sort(key=lambda p: (p.start_byte, -p.end_byte, p.def_line, p.name))
    symbols: list[Symbol] = []
    bodiless: set[int] = set()
    stack: list[tuple[_Placed, Symbol]] = []
    for p in placed:
        while stack and not (
            stack[-1][0].start_byte <= p.start_byte and p.end_byte <= stack[-1][0].end_byte
        ):
            stack.pop()
        enclosing = stack[-1][1] if stack else None
        owner = ".".join(p.scope) if p.scope else None
        if enclosing and owner:
            parent: str | None = f"{enclosing.qualified_name}.{owner}"
        else:
            parent = owner or (enclosing.qualified_name if enclosing else None)
        kind = p.kind
        if kind == "function" and enclosing is not None and enclosing.kind in _METHOD_OWNERS:
            kind = "method"
        symbol = Symbol(
            name=p.name,
            qualified_name=f"{parent}.{p.name}" if parent else p.name,
            kind=kind,
            signature=p.signature,
            doc=p.doc,
            start_line=p.start_line,
            end_line=p.end_line,
            def_line=p.def_line,
            parent=parent,
        )
        symbols.append(symbol)
        if p.bodiless:
            bodiless.add(id(symbol))
        if kind in _CONTAINERS:
            stack.append((p, symbol))
    # A prototype (captured `@bodiless`) of a function this file also defines says nothing the
    # definition does not; a header's prototypes stay, as its API.
    # Its doc comment, though, is often the only one: the definition takes it.
    declared_doc = {s.qualified_name: s.doc for s in symbols if id(s) in bodiless and s.doc}
    defined = {s.qualified_name for s in symbols if id(s) not in bodiless}
    symbols = [
        replace(s, doc=declared_doc[s.qualified_name])
        if id(s) not in bodiless and not s.doc and s.qualified_name in declared_doc
        else s
        for s in symbols
        if id(s) not in bodiless or s.qualified_name not in defined
    ]
    symbols.sort(key=lambda s: (s.start_line, -s.end_line))
    return symbols
