"""The parts of a definition besides its name: the header (signature) and the doc.

Computed from the syntax tree the same way for every language; `symbols.py` calls these for
each definition a tags query found.
"""

from __future__ import annotations

import inspect
import re
import textwrap

from tree_sitter import Node

MAX_SIGNATURE = 300
# Signatures of these are their whole text: a type alias or a constant has no header and body.
_WHOLE_TEXT_KINDS = frozenset({"type", "constant"})
_STRING_QUOTES = re.compile(r"""^([rRuUbBfFtT]*)("{3}|'{3}|"|')""")

# Children that sit in front of a definition without being its header.
PREFIX_TYPES = frozenset(
    {
        "decorator",
        "attribute_item",
        "attribute_list",
        "attribute",
        "annotation",
        "marker_annotation",
        "template_parameter_list",
        "comment",
        "line_comment",
        "block_comment",
    }
)
# Named nodes that are a definition's body even where the grammar gives no `body` field.
_BODY_TYPES = frozenset(
    {"field_declaration_list", "accessor_list", "preproc_arg", "enum_variant_list"}
)
# Tokens that open a body when they are direct children of the definition (or of its `type`):
# Go's `interface {`, Rust's `macro_rules! m {`, Ruby's empty `def f; end`.
_BODY_TOKENS = frozenset({"{", "end"})
_BODY_SEARCH_DEPTH = 3


def signature(node: Node, outer: Node, name_node: Node, kind: str, source: bytes) -> str:
    start = _header_start(outer)
    end = node.end_byte
    after = name_node.end_byte
    if kind not in _WHOLE_TEXT_KINDS:
        end = _body_start(node, after) or end
    # A comment between the header and the body (`def f():  # why`) is not part of the header.
    for child in node.children:
        if "comment" in child.type and after <= child.start_byte < end:
            end = child.start_byte
            break
    text = " ".join(text_of(source, start, end).split())
    if not text.endswith("=>"):
        text = text.rstrip(";:{=").rstrip()
    return text[:MAX_SIGNATURE]


def _header_start(node: Node) -> int:
    """Where the header begins once decorators, attributes and annotations are skipped."""
    for child in node.children:
        if child.type in PREFIX_TYPES:
            continue
        if child.type == "modifiers":  # Java keeps annotations among the modifiers
            rest = [c for c in child.children if c.type not in PREFIX_TYPES]
            if not rest:
                continue
            return rest[0].start_byte
        return child.start_byte
    return node.start_byte


def _body_start(node: Node, after: int) -> int | None:
    """Start of the definition's body: the earliest `body` field, body-like node or `{`."""
    body = node.child_by_field_name("body")
    if body is not None and body.start_byte >= after:
        return body.start_byte  # the common case, and nothing else can come before it
    best: int | None = None
    direct = [node]
    typed = node.child_by_field_name("type")
    if typed is not None:
        direct.append(typed)
    for owner in direct:
        for child in owner.children:
            if child.type in _BODY_TOKENS and not child.is_named and child.start_byte >= after:
                best = child.start_byte if best is None else min(best, child.start_byte)
    level = [node]
    for _ in range(_BODY_SEARCH_DEPTH):
        deeper: list[Node] = []
        for current in level:
            body = current.child_by_field_name("body")
            candidates = [c for c in current.named_children if c.type in _BODY_TYPES]
            if body is not None:
                candidates.append(body)
            for candidate in candidates:
                if candidate.start_byte >= after and (best is None or candidate.start_byte < best):
                    best = candidate.start_byte
            deeper.extend(c for c in current.named_children if best is None or c.start_byte < best)
        level = deeper
    return best


def docstring(node: Node, source: bytes) -> str:
    body = node.child_by_field_name("body")
    if body is None:
        return ""
    # named_child(i), not named_children: a class body may hold thousands of statements.
    # An empty body (an error-recovered `def f():` at the end of a file) has no first child,
    # and py-tree-sitter raises IndexError there instead of returning None.
    if body.named_child_count == 0:
        return ""
    first = body.named_child(0)
    for i in range(1, body.named_child_count):
        if first is None or first.type != "comment":
            break
        first = body.named_child(i)
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return ""
    # What Python's own `__doc__` would be: a str literal, maybe implicitly concatenated and
    # parenthesized; an f-string or a bytes literal is no docstring.
    expr = first.named_children[0]
    while expr.type == "parenthesized_expression" and expr.named_child_count == 1:
        expr = expr.named_children[0]
    parts = expr.named_children if expr.type == "concatenated_string" else [expr]
    pieces: list[str] = []
    for part in parts:
        if part.type != "string":
            return ""
        text = text_of(source, part.start_byte, part.end_byte)
        quote = _STRING_QUOTES.match(text)
        if quote is None or set(quote.group(1).lower()) & {"f", "b", "t"}:
            return ""
        text = text[quote.end() :]
        if text.endswith(quote.group(2)):
            text = text[: -len(quote.group(2))]
        pieces.append(text)
    return inspect.cleandoc("".join(pieces))


def comment_doc(comments: list[str]) -> str:
    lines: list[str] = []
    for comment in comments:
        text = comment.strip()
        if text.startswith("/*"):
            text = text[2:].removesuffix("*/").lstrip("*!")
            for line in text.splitlines():
                stripped = line.strip()
                lines.append(stripped[1:] if stripped.startswith("*") else line)
        elif text.startswith("=begin"):  # Ruby block comment
            lines.extend(text.removeprefix("=begin").removesuffix("=end").splitlines())
        else:
            for line in text.splitlines():
                line = line.strip()
                for marker in ("///", "//!", "//", "#"):
                    if line.startswith(marker):
                        line = line[len(marker) :]
                        break
                lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip()


def text_of(source: bytes, start: int, end: int) -> str:
    return source[start:end].decode("utf-8", errors="replace")
