"""Extension → language name → tree-sitter grammar and tags query (`assistant/queries/<lang>.scm`).

Everything is loaded on first use and cached for the process. A grammar that fails to import or a
query that fails to compile costs only that language its symbols: it is logged once and the
language then behaves as if it had no definitions.

A query file may start with `; inherits: other` (as in nvim-treesitter) to include another
language's query first; tsx reuses typescript, C++ reuses C.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath

from tree_sitter import Language, Query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LanguageSpec:
    """What `symbols.py` needs to know about a grammar beyond its query."""

    name: str
    extensions: tuple[str, ...]
    module: str
    """The grammar wheel's module."""
    loader: str = "language"
    """The function in `module` that returns the grammar pointer."""
    comment_types: frozenset[str] = frozenset({"comment"})
    """Node types whose text, directly above a definition, is its doc."""
    attribute_types: frozenset[str] = frozenset()
    """Sibling node types above a definition that belong to it without being its doc."""
    wrapper_types: frozenset[str] = frozenset()
    """Parents whose text belongs to the one definition they wrap (decorators, `export`, ...)."""
    open_scope_types: frozenset[str] = frozenset()
    """Definitions whose scope runs to the end of their parent (`namespace X;` in C#)."""
    docstrings: bool = False
    """Docs are the body's first string (Python) rather than comments above."""
    detached_docs: tuple[str, ...] = ()
    """Comment openers whose comment is the definition's doc even with blank lines between,
    as the language's doc tool reads it (JSDoc, Javadoc, rustdoc, Doxygen); other comments
    must touch the definition (godoc's rule)."""


# Statements that wrap a definition in JS/TS (`export const f = () => …`): the symbol's span
# widens to them. TypeScript adds `declare …` blocks.
_JS_WRAPPERS = frozenset(
    {"export_statement", "lexical_declaration", "variable_declaration", "expression_statement"}
)
_TS_WRAPPERS = _JS_WRAPPERS | {"ambient_declaration"}

SPECS: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec(
            "python",
            (".py", ".pyi"),
            "tree_sitter_python",
            comment_types=frozenset(),
            wrapper_types=frozenset({"decorated_definition"}),
            docstrings=True,
        ),
        LanguageSpec(
            "javascript",
            (".js", ".mjs", ".cjs", ".jsx"),
            "tree_sitter_javascript",
            wrapper_types=_JS_WRAPPERS,
            detached_docs=("/**",),
        ),
        LanguageSpec(
            "typescript",
            (".ts", ".mts", ".cts"),
            "tree_sitter_typescript",
            loader="language_typescript",
            wrapper_types=_TS_WRAPPERS,
            detached_docs=("/**",),
        ),
        LanguageSpec(
            "tsx",
            (".tsx",),
            "tree_sitter_typescript",
            loader="language_tsx",
            wrapper_types=_TS_WRAPPERS,
            detached_docs=("/**",),
        ),
        LanguageSpec(
            "go",
            (".go",),
            "tree_sitter_go",
            wrapper_types=frozenset({"type_declaration", "const_declaration", "var_declaration"}),
        ),
        LanguageSpec(
            "rust",
            (".rs",),
            "tree_sitter_rust",
            comment_types=frozenset({"line_comment", "block_comment"}),
            attribute_types=frozenset({"attribute_item"}),
            detached_docs=("///", "/**"),
        ),
        LanguageSpec(
            "java",
            (".java",),
            "tree_sitter_java",
            comment_types=frozenset({"line_comment", "block_comment"}),
            detached_docs=("/**",),
        ),
        LanguageSpec("c", (".c", ".h"), "tree_sitter_c", detached_docs=("/**", "///")),
        LanguageSpec(
            "cpp",
            (".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++"),
            "tree_sitter_cpp",
            wrapper_types=frozenset({"template_declaration"}),
            detached_docs=("/**", "///"),
        ),
        LanguageSpec(
            "c_sharp",
            (".cs",),
            "tree_sitter_c_sharp",
            open_scope_types=frozenset({"file_scoped_namespace_declaration"}),
            detached_docs=("///", "/**"),
        ),
        LanguageSpec("ruby", (".rb",), "tree_sitter_ruby"),
        LanguageSpec(
            "php", (".php",), "tree_sitter_php", loader="language_php", detached_docs=("/**",)
        ),
        LanguageSpec("bash", (".sh", ".bash"), "tree_sitter_bash"),
    )
}

_BY_EXTENSION = {ext: spec.name for spec in SPECS.values() for ext in spec.extensions}

_INHERITS = re.compile(r"^;+\s*inherits:\s*(.+)$")
# Held around the caches: functools.cache alone may run a loader twice when threads race, and
# a failure must be logged once.
_loading = threading.Lock()


def language_for_path(path: str) -> str | None:
    """The language of `path` by its extension (`.d.ts` is typescript), or None if unsupported."""
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())


def supported_languages() -> list[str]:
    return sorted(SPECS)


def spec(language: str) -> LanguageSpec | None:
    return SPECS.get(language)


def queries_dir() -> Path:
    return Path(__file__).resolve().parent / "queries"


def grammar(language: str) -> Language | None:
    """The tree-sitter grammar, or None (logged once) if its wheel is missing or broken."""
    with _loading:
        return _grammar(language)


def tags_query(language: str) -> Query | None:
    """The compiled query, or None (logged once) if its file is missing or broken.

    Besides the `.scm` file's definitions it matches, as `@leading`, the comments and attributes
    that may sit above a definition and, as `@wrapper`, the nodes that may wrap one (see
    LanguageSpec): one pass over the tree finds everything `symbols.py` needs.
    """
    with _loading:
        return _tags_query(language)


def reload() -> None:
    """Forget loaded grammars and queries, so that edited query files take effect."""
    with _loading:
        _grammar.cache_clear()
        _tags_query.cache_clear()


@cache
def _grammar(language: str) -> Language | None:
    lang_spec = SPECS.get(language)
    if lang_spec is None:
        return None
    try:
        module = importlib.import_module(lang_spec.module)
        return Language(getattr(module, lang_spec.loader)())
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        log.warning(
            "no %s symbols: grammar %s failed to load (%s); reinstall it with pip",
            language,
            lang_spec.module,
            exc,
        )
        return None


@cache
def _tags_query(language: str) -> Query | None:
    lang = _grammar(language)
    lang_spec = SPECS.get(language)
    if lang is None or lang_spec is None:
        return None
    return _compile_query(lang, lang_spec)


def _compile_query(lang: Language, lang_spec: LanguageSpec) -> Query | None:
    language = lang_spec.name
    try:
        source = _query_source(language, ())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("no %s symbols: cannot read query %s.scm: %s", language, language, exc)
        return None
    context = [
        "[" + " ".join(f"({t})" for t in sorted(types)) + f"] @{capture}"
        for capture, types in (
            ("leading", lang_spec.comment_types | lang_spec.attribute_types),
            ("wrapper", lang_spec.wrapper_types),
        )
        if types
    ]
    try:
        return Query(lang, "\n".join([source, *context]))
    except ValueError as exc:  # tree_sitter.QueryError
        log.warning("no %s symbols: query %s.scm is broken: %s", language, language, exc)
        return None


def _query_source(language: str, seen: tuple[str, ...]) -> str:
    if language in seen:
        raise ValueError(f"queries inherit in a cycle: {' → '.join((*seen, language))}")
    text = (queries_dir() / f"{language}.scm").read_text(encoding="utf-8")
    parts = []
    for line in text.splitlines():
        match = _INHERITS.match(line.strip())
        if not match:
            break
        for parent in match.group(1).split(","):
            parts.append(_query_source(parent.strip(), (*seen, language)))
    parts.append(text)
    return "\n".join(parts)
