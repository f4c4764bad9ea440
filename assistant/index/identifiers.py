"""Code-aware words: the same pipeline turns indexed code and search queries into terms.

Identifiers are split on camelCase, snake_case and digits and kept whole as well
(`parseHTTPResponse` -> `parsehttpresponse parse http response`), lower-cased and stemmed with
Snowball English, so "retrying uploads" meets `retry_upload`. Synonyms are added only to
queries: indexing them would inflate every document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Only words that carry no meaning in code; "after", "all", "new" and the like name things.
_STOP_TEXT = """
a an the of to in on at by for from with into onto is are was were be been being it its this
that these those and or as if so than too very can could should would may might must will shall
i we you he she they them their our your my me us his her also just which who whom what where
there here do does did such has have had
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

# Code abbreviations and their long forms; every member of a group expands to the others.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("rm", "remove", "delete", "del", "unlink", "erase"),
    ("init", "initialize", "initialise", "setup", "bootstrap"),
    ("cfg", "config", "configuration", "conf", "settings", "options", "opts"),
    ("auth", "authenticate", "authentication", "login", "credential"),
    ("err", "error", "exception", "fail", "failure"),
    ("msg", "message"),
    ("req", "request"),
    ("resp", "response", "res", "reply"),
    ("ctx", "context"),
    ("arg", "argument", "param", "parameter"),
    ("args", "arguments", "params", "parameters"),
    ("str", "string", "text"),
    ("num", "number", "count"),
    ("idx", "index"),
    ("len", "length", "size"),
    ("buf", "buffer"),
    ("env", "environment"),
    ("dir", "directory", "folder"),
    ("tmp", "temp", "temporary"),
    ("db", "database"),
    ("fn", "func", "function", "callback"),
    ("impl", "implement", "implementation"),
    ("repo", "repository"),
    ("src", "source"),
    ("dst", "dest", "destination", "target"),
    ("val", "value"),
    ("var", "variable"),
    ("attr", "attribute"),
    ("obj", "object"),
    ("prop", "property"),
    ("elem", "element", "item"),
    ("iter", "iterate", "iterator"),
    ("gen", "generate", "generator"),
    ("exec", "execute", "run", "invoke"),
    ("cmd", "command"),
    ("proc", "process"),
    ("sync", "synchronize"),
    ("async", "asynchronous"),
    ("conn", "connection", "connect"),
    ("addr", "address"),
    ("pkg", "package"),
    ("lib", "library"),
    ("doc", "document", "documentation", "docstring"),
    ("spec", "specification"),
    ("char", "character"),
    ("regex", "regexp", "pattern"),
    ("alloc", "allocate", "allocation"),
    ("mem", "memory"),
    ("max", "maximum"),
    ("min", "minimum"),
    ("avg", "average", "mean"),
    ("calc", "calculate", "compute"),
    ("cnt", "count", "counter"),
    ("prev", "previous"),
    ("cur", "current"),
    ("pos", "position", "offset"),
    ("hdr", "header", "headers"),
    ("url", "uri", "link"),
    ("http", "https", "web"),
    ("json", "serialize", "marshal"),
    ("parse", "parser", "unmarshal", "decode"),
    ("encode", "serialize", "marshal"),
    ("get", "fetch", "retrieve", "read", "load"),
    ("set", "assign", "store", "write", "save"),
    ("retry", "retries", "reattempt"),
    ("upload", "send", "push"),
    ("download", "fetch", "pull"),
    ("check", "validate", "verify", "test"),
    ("new", "create", "make", "build", "construct"),
    ("close", "shutdown", "stop", "terminate"),
    ("start", "begin", "open", "launch"),
)

_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


@lru_cache(maxsize=100_000)
def split_identifier(word: str) -> tuple[str, ...]:
    """`parseHTTPResponse2` -> ("parse", "http", "response", "2"), lower-cased."""
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(p.lower() for p in _PARTS.findall(piece))
    return tuple(parts)


def _terms(word: str) -> tuple[str, ...]:
    parts = split_identifier(word)
    whole = word.lower().strip("_")
    out = [whole.replace("_", "")] if len(parts) > 1 and whole else []
    for part in parts:
        if part not in STOP_WORDS and (len(part) > 1 or part.isdigit()):
            out.append(stem(part))
    return tuple(out)


def words(text: str) -> Iterator[str]:
    return (m.group(0) for m in _WORD.finditer(text))


_SEEN: dict[str, tuple[str, ...]] = {}
"""`_terms` by word. Code repeats its identifiers, and this is the indexer's hottest loop
(millions of words on a large repository): a plain dict read costs less than an lru_cache call.
Bounded at 500,000 words."""


def index_terms(text: str) -> list[str]:
    """Terms for the keyword index: whole identifiers, their parts, stemmed."""
    out: list[str] = []
    extend, seen = out.extend, _SEEN.get
    for word in _WORD.findall(text):
        terms = seen(word)
        if terms is None:
            terms = _terms(word)
            if len(_SEEN) < 500_000:
                _SEEN[word] = terms
        extend(terms)
    return out


def _synonym_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in SYNONYM_GROUPS:
        stems = {stem(w) for w in group}
        for s in stems:
            table.setdefault(s, set()).update(stems)
    return {k: frozenset(v - {k}) for k, v in table.items()}


_SYNONYMS: dict[str, frozenset[str]] | None = None


def synonyms(term: str) -> frozenset[str]:
    global _SYNONYMS
    if _SYNONYMS is None:
        _SYNONYMS = _synonym_table()
    return _SYNONYMS.get(term, frozenset())


def query_terms(query: str) -> tuple[list[str], list[str]]:
    """(terms, synonym terms) for a search query; both stemmed, deduplicated, in order."""
    terms = list(dict.fromkeys(index_terms(query)))
    extra: list[str] = []
    for term in terms:
        extra.extend(s for s in sorted(synonyms(term)) if s not in terms)
    return terms, list(dict.fromkeys(extra))


def identifier_candidates(query: str) -> set[str]:
    """Lower-cased words of the query that look like code names (`upload_file`, `getUser`,
    `Session.get`), or the query itself when it is one word.

    Plain English words ("name", "value") also name methods, but boosting them would let
    every method called `name` outrank what a sentence describes.
    """
    found = list(words(query))
    if len(found) == 1:
        return {found[0].lower()}
    out = set()
    for word in found:
        looks_like_code = (
            "_" in word
            or any(c.isdigit() for c in word)
            or (any(c.isupper() for c in word[1:]) and any(c.islower() for c in word))
        )
        if looks_like_code:
            out.add(word.lower())
    return out
