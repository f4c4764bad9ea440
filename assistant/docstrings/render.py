"""A model's text for one doc, cleaned and written in the language's convention.

The rules a rendered comment keeps: the indentation of the line it documents (tabs stay tabs),
the file's own line ending, and no text that could close the comment early (`\"\"\"`, `*/`, a
trailing backslash); the caller re-parses the result anyway and refuses a file that no longer
parses.
"""

from __future__ import annotations

import re
import textwrap

from assistant.docstrings.conventions import (
    CONVENTIONS,
    MAX_SENTENCES,
    MAX_SUMMARY_LINES,
    WIDTH,
    DocParts,
    Site,
    Style,
)

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
    chosen = " ".join(sentences[:MAX_SENTENCES]).strip()
    open_ended = len(sentences) <= MAX_SENTENCES and not chosen.rstrip("`'\")").endswith(
        (".", "!", "?", ":")
    )
    if len(chosen) > 400:  # a loop or a ramble: cut at a word, and it did not end
        chosen, open_ended = chosen[:400].rsplit(" ", 1)[0], True
    kept = tidy(chosen)
    ordered = tuple((p.name, tidy(params[p.name])) for p in site.params if params.get(p.name))
    return DocParts(kept, ordered, tidy(returns) if site.returns else "", open_ended)


def _match_param(line: str, known: dict[str, str]) -> tuple[str, str] | None:
    for pattern in _PARAM_PATTERNS:
        m = pattern.match(line)
        if m is not None:
            name = m.group("name").lstrip("*$")
            if name in known:
                return known[name], (m.groupdict().get("t") or "").strip(" -:")
    return None


def tidy(text: str) -> str:
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


def param_lead(site: Site, style: Style, name: str, *, has_section: bool) -> str:
    """The text that comes before parameter `name`'s description in `style`, starting a new
    section when there is none yet: the prefix a model completes with the description."""
    pad = site.indent
    if style == "numpy":
        head = "" if has_section else f"\n\n{pad}Parameters\n{pad}----------"
        return f"{head}\n{pad}{name}\n{pad}    "
    if style == "rest":
        return ("\n" if has_section else "\n\n") + f"{pad}:param {name}: "
    head = "" if has_section else f"\n\n{pad}Args:"
    return f"{head}\n{pad}    {name}: "


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
