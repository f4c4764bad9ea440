"""Doc comments per language: where one goes, how model text is cleaned, how it is written.

Everything here is pure text and syntax-tree work, so it is tested without a model. The rules a
rendered comment keeps: the indentation of the line it documents (tabs stay tabs), the file's
own line ending, and no text that could close the comment early (`\"\"\"`, `*/`, a trailing
backslash); the caller re-parses the result anyway and refuses a file that no longer parses.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, replace
from typing import Literal

from tree_sitter import Node

from assistant.symbols import Symbol

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


_JSDOC = Convention("block", "/**", " *", " */")
CONVENTIONS: dict[str, Convention] = {
    "python": Convention("docstring"),
    "javascript": _JSDOC,
    "typescript": Convention("block", "/**", " *", " */", param="@param {name} - {text}"),
    "tsx": Convention("block", "/**", " *", " */", param="@param {name} - {text}"),
    "java": Convention("block", "/**", " *", " */", returns="@return {text}"),
    "php": _JSDOC,
    "c": Convention("block", "/**", " *", " */", returns="@return {text}"),
    "cpp": Convention("block", "/**", " *", " */", returns="@return {text}"),
    "go": Convention("line", "//", param="", returns="", name_first=True),
    "rust": Convention("line", "///", param="* `{name}` - {text}", returns=""),
    "c_sharp": Convention(
        "line",
        "///",
        param='<param name="{name}">{text}</param>',
        returns="<returns>{text}</returns>",
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
    if update and symbol.doc:
        first = None
        for i in range(body.named_child_count):
            child = body.named_child(i)
            if child is not None and child.type != "comment":
                first = child
                break
        if first is not None and first.type == "expression_statement":
            end_row = first.end_point.row
            rest = lines[end_row][first.end_point.column :].strip()
            if rest and not rest.startswith("#"):
                return "its docstring shares a line with code"
            row, remove = first.start_point.row, (first.start_point.row, end_row + 1)
    return Site(symbol, "python", row, remove, indent, params, returns)


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


# -- cleaning the model's text ---

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")
# "The `Sum` function takes ..." → "Sum takes ...", for conventions that start with the name.
_THE_FUNCTION = re.compile(
    r"^(?:The|This)\s+(?:`?[\w.:]+`?\s+)?(?:function|method|class|struct|type|interface)\s+"
)
_FENCED = re.compile(r"^```[^\n]*\n.*?(?:^```[^\n]*$|\Z)", re.M | re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u200b-\u200f\ufeff]")
_MARKERS = re.compile(r"^\s*(?:/\*\*+|\*/|/\*|///?|//!|\*(?!\*)|#(?![#\[!])(?=\s|$))\s?")
_PARAM_PATTERNS = (
    re.compile(r"^[:@]param\s+(?:\{[^}]*\}\s+)?(?P<name>[*\w$]+)\s*:?\s*-?\s*(?P<t>.*)$"),
    re.compile(r"^:param\s+\S+\s+(?P<name>[*\w$]+)\s*:\s*(?P<t>.*)$"),
    re.compile(r"^\*?\s*`(?P<name>[*\w$]+)`\s*[-:]\s*(?P<t>.*)$"),
    re.compile(r"^<param name=\"(?P<name>[\w$]+)\">(?P<t>.*?)(?:</param>)?$"),
    re.compile(r"^(?P<name>[*\w$]+)\s+:(?:\s+[\w\[\], .|]*)?$"),  # NumPy: `a : int`, text below
    re.compile(r"^(?P<name>[*\w$]+)\s*(?:\([^)]*\))?\s*(?::|-|—)\s*(?P<t>.*)$"),
)
_RETURN_PATTERNS = (
    re.compile(
        r"^(?:[:@]returns?:?|returns?:|<returns>)\s*(?:\{[^}]*\}\s*)?(?P<t>.*?)(?:</returns>)?$",
        re.I,
    ),
)
_HEADERS = re.compile(
    r"^(?:#\s*)?(args|arguments|parameters|params|returns?|yields?|raises|throws|examples?|"
    r"notes?|see also|attributes)\s*:?\s*$",
    re.I,
)


def parse_output(text: str, site: Site) -> DocParts:
    """The summary, parameter and return descriptions in a model's answer, in any common style.

    Junk is expected (tiny or confused models); what comes out holds no comment markers, no
    control characters and only parameters the signature really has.
    """
    known = {p.name.lstrip("*$"): p.name for p in site.params}
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).expandtabs(4)
    outside = _FENCED.sub("", text)
    # Chat models like to repeat the code in a fence: keep the prose when there is some.
    text = outside if outside.strip() else re.sub(r"^```[\w+-]*\s*$", "", text, flags=re.M)
    for quote in ('"""', "'''"):
        text = text.replace(quote, "\n")
    lines: list[str] = []
    signature_start = site.symbol.signature.split("(")[0].strip()
    for raw in text.split("\n"):
        line = _MARKERS.sub("", raw, count=1).rstrip()
        if line.strip() in ("*/", "/**", "*"):
            continue
        if (
            signature_start
            and line.strip().startswith(signature_start)
            and len(signature_start) > 3
        ):
            continue  # the model repeated the definition
        lines.append(line)
    summary: list[str] = []
    params: dict[str, str] = {}
    returns = ""
    section = "summary"
    for line in lines:
        stripped = line.strip().lstrip("-*• ").strip() if section != "summary" else line.strip()
        if not stripped:
            if section == "summary" and summary:
                summary.append("")
            continue
        if set(stripped) <= set("-=~"):
            continue  # a NumPy underline
        header = _HEADERS.match(stripped)
        if header:
            word = header.group(1).lower()
            section = (
                "params"
                if word.startswith(("arg", "param"))
                else ("returns" if word.startswith(("return", "yield")) else "other")
            )
            continue
        matched = _match_param(stripped, known)
        if matched is not None:
            name, desc = matched
            if not params.get(name):
                params[name] = desc  # "" until an indented line below gives the text
            section = "params"
            continue
        ret = next((m for p in _RETURN_PATTERNS if (m := p.match(stripped))), None)
        if ret is not None:
            returns = returns or ret.group("t").strip()
            section = "returns"
            continue
        if section == "summary":
            summary.append(stripped)
        elif section == "returns" and not returns:
            returns = stripped
        elif section == "params" and params and line.startswith((" ", "\t")):
            last = next(reversed(params))
            if len(params[last]) < 200:
                params[last] = (params[last] + " " + stripped).strip()
    # The first paragraph, at most three sentences: small models ramble after that.
    first = " ".join("\n".join(summary).strip().split("\n\n")[0].split())
    sentences = _SENTENCE_END.split(first)
    kept = _tidy(" ".join(sentences[:MAX_SENTENCES]))[:400].rstrip()
    ordered = tuple((p.name, _tidy(params[p.name])) for p in site.params if params.get(p.name))
    return DocParts(kept, ordered, _tidy(returns) if site.returns else "")


def _match_param(line: str, known: dict[str, str]) -> tuple[str, str] | None:
    for pattern in _PARAM_PATTERNS:
        m = pattern.match(line)
        if m is not None:
            name = m.group("name").lstrip("*$")
            if name in known:
                return known[name], (m.groupdict().get("t") or "").strip(" -:")
    return None


def _tidy(text: str) -> str:
    text = text.strip().strip("`").strip()
    text = text.rstrip("\\")
    if text and text[0].isalpha():
        text = text[0].upper() + text[1:]
    if text and text[-1].isalnum():
        text += "."
    return text


# -- rendering ---


def render(parts: DocParts, site: Site, style: Style = "google") -> list[str]:
    """The comment's lines, indented, without line endings."""
    conv = CONVENTIONS[site.language]
    width = max(40, WIDTH - len(site.indent.expandtabs(4)) - 4)
    summary = parts.summary
    if conv.name_first:
        summary = _THE_FUNCTION.sub(site.symbol.name + " ", summary, count=1)
    if conv.name_first and not summary.startswith(site.symbol.name + " "):
        lowered = summary[:1].lower() + summary[1:] if summary[1:2].islower() else summary
        summary = f"{site.symbol.name} {lowered}"
    body: list[str] = []
    for i, paragraph in enumerate(summary.split("\n\n")):
        if i:
            body.append("")
        body.extend(textwrap.wrap(paragraph, width) or [""])
    body = body[: MAX_SUMMARY_LINES * 2]
    if conv.kind == "docstring":
        body += _python_sections(parts, site, style)
        return _docstring_lines(body, site.indent)
    types = {p.name: p.type for p in site.params}
    extra = [conv.param.format(name=n, text=t, type=types.get(n, "")) for n, t in parts.params]
    extra = [e for e in extra if e and conv.param]
    if parts.returns and conv.returns:
        extra.append(conv.returns.format(text=parts.returns))
    if site.language == "rust" and extra:
        extra = ["# Arguments", "", *extra]
    if site.language == "c_sharp":
        body = ["<summary>", *(_xml(b) for b in body), "</summary>"]
        extra = [_xml_keep_tags(e) for e in extra]
    if extra:
        body += ["", *extra]
    body = [_neutralise(line, site.language) for line in body]
    pad = site.indent
    if conv.kind == "block":
        inner = [f"{pad}{conv.middle} {b}".rstrip() if b else f"{pad}{conv.middle}" for b in body]
        return [f"{pad}{conv.opener}", *inner, f"{pad}{conv.closer}"]
    return [f"{pad}{conv.opener} {b}".rstrip() if b else f"{pad}{conv.opener}" for b in body]


def _python_sections(parts: DocParts, site: Site, style: Style) -> list[str]:
    out: list[str] = []
    types = {p.name: p.type for p in site.params}
    if parts.params:
        if style == "numpy":
            out += ["", "Parameters", "----------"]
            for name, text in parts.params:
                out += [f"{name} : {types[name]}" if types.get(name) else name, f"    {text}"]
        elif style == "rest":
            out += [""] + [f":param {name}: {text}" for name, text in parts.params]
        else:
            out += ["", "Args:"] + [f"    {name}: {text}" for name, text in parts.params]
    if parts.returns:
        if style == "numpy":
            out += ["", "Returns", "-------", site.return_type or "object", f"    {parts.returns}"]
        elif style == "rest":
            out += ([] if parts.params else [""]) + [f":returns: {parts.returns}"]
        else:
            out += ["", "Returns:", f"    {parts.returns}"]
    return out


def _docstring_lines(body: list[str], indent: str) -> list[str]:
    escaped = [_escape_python(b) for b in body]
    if escaped and escaped[-1].endswith('"'):
        escaped[-1] = escaped[-1][:-1] + '\\"'
    if len(escaped) == 1 and len(indent) + len(escaped[0]) + 6 <= WIDTH:
        return [f'{indent}"""{escaped[0]}"""']
    lines = [f'{indent}"""{escaped[0]}']
    lines += [f"{indent}{b}" if b else "" for b in escaped[1:]]
    return [*lines, f'{indent}"""']


def _escape_python(line: str) -> str:
    return line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _neutralise(line: str, language: str) -> str:
    """Text that cannot end the comment it sits in."""
    if language == "java":  # javac turns `\u002a/` into `*/` before lexing, even in comments
        line = re.sub(r"\\+(?=u)", "", line)
    line = line.replace("*/", "* /").rstrip("\\")
    if language == "php":
        line = line.replace("?>", "? >")
    return line


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_keep_tags(line: str) -> str:
    m = re.match(r"^(<(param name=\"[\w$]+\"|returns)>)(.*)(</(?:param|returns)>)$", line)
    return f"{m.group(1)}{_xml(m.group(3))}{m.group(4)}" if m else _xml(line)


def insert(lines: list[str], site: Site, rendered: list[str], eol: str) -> list[str]:
    """`lines` with the rendered comment put in at the site (replacing the old doc if any)."""
    cr = "\r" if eol == "\r\n" else ""
    new = [line + cr for line in rendered]
    start, end = site.remove if site.remove is not None else (site.row, site.row)
    return [*lines[:start], *new, *lines[end:]]
