"""False positives of the content rules in `repo/secrets.py`, measured on real code, and their cost.

    python bench/secret_rules.py [--corpora /tmp/assist-bench ...] [--window 8192]

Each directory under a `--corpora` root is a repository. The shared corpora are ordinary
open-source projects with no real secrets, so whatever `redact` changes there is a false positive
or a test's made-up credential, to judge by eye. Two passes over every indexable file (the files
`assist index` reads):

- *literals*: each string literal, docstring and comment on its own (Python through `ast`, other
  languages through a string-and-comment regex), as a model would see it quoted in a prompt;
- *lines*: each whole file, as the index and the agent's tools see it, so the name a value is
  assigned to counts too; every changed line is listed.

Then the cost: `redact` on the source file nearest 2,000 lines, whole and in `--window`-byte
slices (the completion prefix/suffix, redacted on every keystroke), and the slowest such slice of
any source file (best of three, as the machine is shared). Prints one JSON object; each hit has
`where` (corpus/path:line), `rules` (what fired) and `text`.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.index.languages import language_for_path
from assistant.repo.files import scan
from assistant.repo.privacy import PathRules
from assistant.repo.secrets import redact

# Other languages: strings and comments, one regex; `'` is a string only where it is one.
_C_LIKE = r"//[^\n]*(?:\n[ \t]*//[^\n]*)*|/\*.*?\*/|\"(?:[^\"\\\n]|\\.)*\"|`[^`]*`"
_LITERALS = {
    "go": re.compile(_C_LIKE, re.S),
    "rust": re.compile(r'r(#*)".*?"\1|' + _C_LIKE, re.S),
    "javascript": re.compile(_C_LIKE + r"|'(?:[^'\\\n]|\\.)*'", re.S),
    "typescript": re.compile(_C_LIKE + r"|'(?:[^'\\\n]|\\.)*'", re.S),
}
_SNIP = 240


@dataclass
class Hit:
    where: str
    kind: str
    """string, docstring, comment, or line (a line of a whole file)."""
    rules: list[str]
    text: str


def python_literals(text: str) -> Iterator[tuple[int, str, str]]:
    """(line, kind, source) of each string literal and docstring, as written (quotes, prefixes,
    implicit concatenation and f-string parts included)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    raw = text.encode()
    starts = [0]
    for line in raw.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    docs: set[int] = set()
    inner: set[int] = set()
    literals: list[ast.Constant | ast.JoinedStr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
        if isinstance(node, ast.JoinedStr):
            inner |= {id(v) for v in node.values}
            literals.append(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            literals.append(node)
    for lit in literals:
        if id(lit) in inner or lit.end_lineno is None or lit.end_col_offset is None:
            continue
        a = starts[lit.lineno - 1] + lit.col_offset
        b = starts[lit.end_lineno - 1] + lit.end_col_offset
        kind = "docstring" if id(lit) in docs else "string"
        yield lit.lineno, kind, raw[a:b].decode("utf-8", "replace")


def other_literals(text: str, language: str) -> Iterator[tuple[int, str, str]]:
    pattern = _LITERALS.get(language)
    for m in pattern.finditer(text) if pattern else ():
        kind = "comment" if m.group(0)[:2] in ("//", "/*") else "string"
        yield text.count("\n", 0, m.start()) + 1, kind, m.group(0)


def line_hits(where: str, text: str) -> list[Hit]:
    """Each line `redact` changes in the whole file, with the rules that fire on it and the three
    lines before it (where an assignment continued onto it starts)."""
    out = redact(text)
    if not out.count:
        return []
    hits, lines = [], text.split("\n")
    for i, (old, new) in enumerate(zip(lines, out.text.split("\n"), strict=True)):
        if old != new:
            rules = redact("\n".join(lines[max(0, i - 3) : i + 1])).rules or out.rules
            hits.append(Hit(f"{where}:{i + 1}", "line", list(rules), old[:_SNIP]))
    return hits


def cost(sources: list[tuple[str, str]], size: int) -> dict[str, object]:
    """Milliseconds a call on the file nearest 2,000 lines, whole and per `size`-byte window, and
    the slowest window of any file."""
    where, text = min(sources, key=lambda s: abs(s[1].count("\n") - 2000))
    windows = [text[i : i + size] for i in range(0, max(1, len(text) - size + 1), size // 4)]
    t = time.perf_counter()
    for _ in range(10):
        for window in windows:
            redact(window)
    per_window = (time.perf_counter() - t) / len(windows) / 10
    t = time.perf_counter()
    for _ in range(10):
        redact(text)
    whole = (time.perf_counter() - t) / 10
    slowest, slowest_at = 0.0, ""
    for name, source in sources:
        for i in range(0, max(1, len(source) - size + 1), size // 2):
            took = 1.0
            for _ in range(3):
                t = time.perf_counter()
                redact(source[i : i + size])
                took = min(took, time.perf_counter() - t)
            if took > slowest:
                slowest, slowest_at = took, f"{name}@{i}"
    return {
        "file": where,
        "lines": text.count("\n") + 1,
        "bytes": len(text.encode()),
        "whole_file_ms": round(whole * 1e3, 3),
        "window_bytes": size,
        "windows": len(windows),
        "per_window_ms": round(per_window * 1e3, 3),
        "slowest_window_ms": round(slowest * 1e3, 3),
        "slowest_window": slowest_at,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", nargs="+", default=["/tmp/assist-bench"])
    ap.add_argument("--window", type=int, default=8192)
    args = ap.parse_args()
    kinds: Counter[str] = Counter()
    literal_hits: list[Hit] = []
    whole_hits: list[Hit] = []
    n_files = n_lines = 0
    sources: list[tuple[str, str]] = []
    corpora = sorted(p for root in args.corpora for p in Path(root).iterdir() if p.is_dir())
    for corpus in corpora:
        files, _ = scan(corpus, PathRules(corpus), 1_000_000, language_of=language_for_path)
        for f in files:
            try:
                text = (corpus / f.path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            where = f"{corpus.name}/{f.path}"
            n_files += 1
            n_lines += text.count("\n") + 1
            if f.language:
                sources.append((where, text))
            if f.language == "python":
                found = python_literals(text)
            else:
                found = other_literals(text, f.language or "")
            for line, kind, source in found:
                kinds[kind] += 1
                out = redact(source)
                if out.text != source:
                    literal_hits.append(
                        Hit(f"{where}:{line}", kind, list(out.rules), source[:_SNIP])
                    )
            whole_hits += line_hits(where, text)

    def summary(scanned: int, hits: list[Hit]) -> dict[str, object]:
        by_rule = Counter(rule for hit in hits for rule in set(hit.rules))
        return {
            "scanned": scanned,
            "changed": len(hits),
            "by_rule": dict(by_rule),
            "hits": [asdict(hit) for hit in hits],
        }

    report = {
        "corpora": [c.name for c in corpora],
        "files": n_files,
        "literals": {"by_kind": dict(kinds)} | summary(sum(kinds.values()), literal_hits),
        "lines": summary(n_lines, whole_hits),
        "timing": cost(sources, args.window),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
