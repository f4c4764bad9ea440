"""Doc comments per language: how each spells one, and where one goes in a syntax tree.

Pure text and syntax-tree work, tested without a model; `render.py` turns a model's text into
the comment.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from typing import Literal

from tree_sitter import Node

from assistant.index.symbols import Symbol

Style = Literal["google", "numpy", "rest"]
STYLES: tuple[Style, ...] = ("google", "numpy", "rest")
WIDTH = 88
MAX_SUMMARY_LINES = 6
MAX_SENTENCES = 3


@dataclass(frozen=True)
class Convention:
    """How one language spells a doc comment."""

    kind: Literal["docstring", "block", "line"]
    opener: str = ""
    """First line of a block comment (`/**`), or the marker of every line (`///`)."""
    middle: str = ""
    """Prefix of a block comment's inner lines (` *`)."""
    closer: str = ""
    param: str = "@param {name} {text}"
    returns: str = "@returns {text}"
    name_first: bool = False
    """Go: the comment starts with the symbol's name."""
    doc_markers: tuple[str, ...] = ()
    """Openers a comment needs to be a doc for the language's tool (javadoc ignores `/* */`,
    rustdoc `//`); empty: any comment above the definition is its doc (godoc, RDoc)."""


_DOXYGEN = ("/**", "/*!", "///", "//!")
_JSDOC = Convention("block", "/**", " *", " */", doc_markers=("/**",))
CONVENTIONS: dict[str, Convention] = {
    "python": Convention("docstring"),
    "javascript": _JSDOC,
    "typescript": Convention(
        "block", "/**", " *", " */", param="@param {name} - {text}", doc_markers=("/**",)
    ),
    "tsx": Convention(
        "block", "/**", " *", " */", param="@param {name} - {text}", doc_markers=("/**",)
    ),
    "java": Convention("block", "/**", " *", " */", returns="@return {text}", doc_markers=("/**",)),
    "php": _JSDOC,
    "c": Convention("block", "/**", " *", " */", returns="@return {text}", doc_markers=_DOXYGEN),
    "cpp": Convention("block", "/**", " *", " */", returns="@return {text}", doc_markers=_DOXYGEN),
    "go": Convention("line", "//", param="", returns="", name_first=True),
    "rust": Convention(
        "line", "///", param="* `{name}` - {text}", returns="", doc_markers=("///", "/**")
    ),
    "c_sharp": Convention(
        "line",
        "///",
        param='<param name="{name}">{text}</param>',
        returns="<returns>{text}</returns>",
        doc_markers=("///", "/**"),
    ),
    "ruby": Convention("line", "#", param="@param {name} {text}", returns="@return {text}"),
    "bash": Convention("line", "#", param="", returns=""),
}

DOCUMENTABLE = frozenset({"function", "method", "class", "interface", "struct", "enum", "trait"})
_FUNCTIONS = frozenset({"function", "method"})


@dataclass(frozen=True)
class Param:
    name: str
    type: str = ""


@dataclass(frozen=True)
class Site:
    """Where one symbol's doc goes in one text (rows are 0-based lines of `text.split("\\n")`)."""

    symbol: Symbol
    language: str
    row: int
    """New lines go before this row."""
    remove: tuple[int, int] | None
    """Rows [start, end) of an existing doc that the new one replaces (`--update`)."""
    indent: str
    params: tuple[Param, ...]
    returns: bool
    return_type: str = ""


@dataclass(frozen=True)
class DocParts:
    """What the model said, reduced to what every convention can express."""

    summary: str
    params: tuple[tuple[str, str], ...] = ()
    returns: str = ""
    open_ended: bool = False
    """The summary's last sentence has no end mark (a `.` was added to it): cut off, when
    the model was stopped by its token limit."""


# -- finding the site ---


def find_site(
    root: Node, lines: list[str], symbol: Symbol, language: str, *, update: bool
) -> Site | str:
    """The site for `symbol`, or why it cannot be documented here."""
    node = _definition_node(root, symbol)
    if node is None:
        return "its definition was not found in the syntax tree"
    func = node.child_by_field_name("value") or node  # `const f = () => ...`
    params = _params(func, language) if symbol.kind in _FUNCTIONS else ()
    returns = symbol.kind in _FUNCTIONS and _returns(func, symbol, lines)
    if language == "python":
        site = _python_site(node, lines, symbol, params, returns, update)
        typed = func.child_by_field_name("return_type")
        if isinstance(site, Site) and typed is not None:
            site = replace(site, return_type=_text(typed).strip())
        return site
    row = symbol.start_line - 1
    remove = None
    if symbol.doc:
        first, end = _comment_rows(lines, row, symbol.def_line - 1, language)
        if end > first:
            row, remove = first, (first, end)
    line = lines[row]
    indent = line[: len(line) - len(line.lstrip())]
    return Site(symbol, language, row, remove, indent, params, returns)


def _definition_node(root: Node, symbol: Symbol) -> Node | None:
    """The node whose name is `symbol.name` on its def line, found walking down that line."""
    row = symbol.def_line - 1
    stack = [root]
    while stack:
        node = stack.pop()
        name = _name_of(node)
        if name is not None and name.start_point.row == row:
            text = (name.text or b"").decode("utf-8", "replace").strip("\"'`")
            if text == symbol.name or text.rsplit("::", 1)[-1] == symbol.name:
                return node
        stack.extend(
            c for c in reversed(node.named_children) if c.start_point.row <= row <= c.end_point.row
        )
    return None


def _name_of(node: Node) -> Node | None:
    name = node.child_by_field_name("name")
    if name is not None:
        return name
    if node.type == "function_definition":  # C and C++: the name sits in the declarator chain
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type != "function_declarator":
            declarator = declarator.child_by_field_name("declarator")
        if declarator is not None:
            return declarator.child_by_field_name("declarator")
    return None


def _params(func: Node, language: str) -> tuple[Param, ...]:
    holder = func.child_by_field_name("parameters")
    if holder is None:
        declarator = func.child_by_field_name("declarator")
        while declarator is not None and holder is None:
            holder = declarator.child_by_field_name("parameters")
            declarator = declarator.child_by_field_name("declarator")
    if holder is None:
        return ()
    found: list[Param] = []
    for child in holder.named_children:
        if "comment" in child.type or child.type in ("self_parameter", "keyword_separator"):
            continue
        type_node = child.child_by_field_name("type")
        type_text = _text(type_node).lstrip(":").strip() if type_node is not None else ""
        names = child.children_by_field_name("name")
        for name_node in names or [child]:
            name = _param_name(name_node, 4)
            if name and name not in ("self", "cls", "this", "_"):
                if child.type == "list_splat_pattern":
                    name = "*" + name
                elif child.type == "dictionary_splat_pattern":
                    name = "**" + name
                found.append(Param(name, type_text))
    return tuple(found)


def _param_name(node: Node, depth: int) -> str:
    if node.type in ("identifier", "variable_name", "simple_identifier"):
        return _text(node)
    if depth == 0:
        return ""
    for field in ("name", "pattern", "declarator", "left"):
        inner = node.child_by_field_name(field)
        if inner is not None:
            return _param_name(inner, depth - 1)
    for inner in node.named_children:
        if inner.type in ("identifier", "variable_name"):
            return _text(inner)
    return ""


_RETURN = re.compile(r"^\s*(return\s+[^\s;]|yield\b)", re.M)


def _returns(func: Node, symbol: Symbol, lines: list[str]) -> bool:
    if symbol.name in ("__init__", "constructor", "new") or symbol.name == symbol.parent:
        return False
    for field in ("return_type", "result"):
        typed = func.child_by_field_name(field)
        if typed is not None:
            return _text(typed).lstrip("-> :").strip() not in ("None", "void", "()")
    typed = func.child_by_field_name("type")  # Java and C put the return type first
    if typed is not None and func.type in ("method_declaration", "function_definition"):
        return _text(typed).strip() != "void"
    body = "\n".join(lines[symbol.def_line : symbol.end_line])
    return bool(_RETURN.search(body))


def _python_site(
    node: Node,
    lines: list[str],
    symbol: Symbol,
    params: tuple[Param, ...],
    returns: bool,
    update: bool,
) -> Site | str:
    body = node.child_by_field_name("body")
    if body is None or body.start_point.row == symbol.def_line - 1 or body.named_child_count == 0:
        return "its body is on the same line as the header"
    if body.start_point.row <= (node.child_by_field_name("name") or node).start_point.row:
        return "its body is on the same line as the header"
    row = body.start_point.row
    indent = lines[row][: body.start_point.column]
    if indent.strip():
        return "its body does not start on a line of its own"
    remove = None
    first = None
    for i in range(body.named_child_count):
        child = body.named_child(i)
        if child is not None and child.type != "comment":
            first = child
            break
    # An empty docstring (`""""""`) is what `__doc__` calls no doc, yet it is one: the new
    # doc takes its place rather than going in above it.
    replaces = (update and symbol.doc) or (first is not None and _empty_string(first))
    if replaces and first is not None and first.type == "expression_statement":
        end_row = first.end_point.row
        rest = lines[end_row][first.end_point.column :].strip()
        if rest and not rest.startswith("#"):
            return "its docstring shares a line with code"
        row, remove = first.start_point.row, (first.start_point.row, end_row + 1)
    return Site(symbol, "python", row, remove, indent, params, returns)


def has_doc(symbol: Symbol, lines: list[str], language: str) -> bool:
    """Whether `symbol` has a doc as the language's own tool sees it: Python's `__doc__`, and
    for comment languages a comment above that opens with a doc marker where the tool wants one
    (a plain `/* */` over a Java method is no Javadoc)."""
    if not symbol.doc:
        return False
    markers = CONVENTIONS[language].doc_markers if language in CONVENTIONS else ()
    if not markers:
        return True
    first, end = _comment_rows(lines, symbol.start_line - 1, symbol.def_line - 1, language)
    return any(lines[r].lstrip().startswith(markers) for r in range(first, end))


def _empty_string(statement: Node) -> bool:
    """A statement that is only a string literal whose value is blank."""
    if statement.type != "expression_statement" or statement.named_child_count != 1:
        return False
    child = statement.named_child(0)
    if child is None or child.type != "string":
        return False
    try:
        value = ast.literal_eval(_text(child))
    except (ValueError, SyntaxError):
        return False  # an f-string: not a docstring at all
    return isinstance(value, str) and not value.strip()


def _comment_rows(lines: list[str], start: int, def_row: int, language: str) -> tuple[int, int]:
    """The first run of comment lines in rows [start, def_row): the doc `--update` replaces."""
    marker = "#" if CONVENTIONS[language].opener == "#" else "//"
    first = end = -1
    in_block = False
    for row in range(start, def_row):
        text = lines[row].strip()
        is_comment = in_block or text.startswith((marker, "/*"))
        if marker == "#" and text.startswith("#["):
            is_comment = False
        if text.startswith("/*") and "*/" not in text:
            in_block = True
        if in_block and "*/" in text:
            in_block = False
        if is_comment and first < 0:
            first = row
        if is_comment:
            end = row + 1
        elif first >= 0:
            break
    return (first, end) if first >= 0 else (start, start)


def _text(node: Node | None) -> str:
    return "" if node is None else (node.text or b"").decode("utf-8", "replace")


# -- prompts: the opening and closing of the comment around the hole ---


def frame(site: Site) -> tuple[str, str]:
    """Text before and after the hole a FIM model fills: the comment's opening and its close."""
    conv = CONVENTIONS[site.language]
    i = site.indent
    if conv.kind == "docstring":
        return f'{i}"""', f'\n{i}"""\n'
    if conv.kind == "block":
        return f"{i}{conv.opener}\n{i}{conv.middle} ", f"\n{i}{conv.closer}\n"
    if conv.name_first:
        return f"{i}{conv.opener} {site.symbol.name} ", "\n"
    return f"{i}{conv.opener} ", "\n"
