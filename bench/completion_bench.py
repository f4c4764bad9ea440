"""Completion latency, and whether repository context helps, with the default model.

Prints one JSON object, with the run's conditions (commit, machine, load). The model runs in
this process (the `model.host = false` path; the default host adds about 1.4 ms a request,
bench/model_host_overhead.py). Timings get a p95 only from 40 samples up (`--latency 40`; the
cross-file cases then differ from a run with another `--latency`, since both draw from one seed).

1. Latency: completions at sampled positions of a corpus, split into our overhead (everything
   but the model), retrieval, first token and whole completion; then cache hits (the same
   request, and the user typing ahead into a completion).
2. Repository context: lines that call a function defined in another file of the same
   repository (found through the index), completed from the start of the callee's name, with
   and without repository context, same model, same run. Exact match: the first line of the
   completion equals the rest of the line. Identifier match: it starts with the callee's name.

    python bench/completion_bench.py --corpora /tmp/assist-bench [--latency 20] [--cases 15]

Corpora: `bash ../shared/bench/retrieval/make_corpora.sh /tmp/assist-bench`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from conditions import conditions, finish
from conditions import summary as honest_summary

from assistant.completion.engine import CompletionEngine
from assistant.config import ModelSettings
from assistant.index.indexer import IndexReport
from assistant.index.languages import language_for_path
from assistant.llm.local import LocalModel
from assistant.llm.source import embedded_model_path
from assistant.workspace import Workspace


def summary(values: list[float]) -> dict[str, object]:
    return honest_summary(values, 2)


def open_corpus(src: Path, dest: Path) -> Workspace:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".assist", ".git"))
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    ws = Workspace.open(dest)
    for item in ws.index(vectors=False):
        if isinstance(item, IndexReport):
            break
    return ws


def code_files(ws: Workspace) -> list[str]:
    rows = ws.store.db.execute("SELECT path FROM files ORDER BY path").fetchall()
    return [r[0] for r in rows if language_for_path(r[0]) and "test" not in r[0].lower()]


def latency(
    engine: CompletionEngine, ws: Workspace, n: int, rng: random.Random
) -> dict[str, object]:
    files = code_files(ws)
    overhead, retrieval, first, total, model_ms = [], [], [], [], []
    hits, ahead = [], []
    uncached: list[str] = []
    for _ in range(n):
        rel = rng.choice(files)
        text = (ws.root / rel).read_text(encoding="utf-8")
        lines = text.split("\n")
        candidates = [i for i, ln in enumerate(lines) if len(ln.strip()) > 12]
        if not candidates:
            continue
        line = rng.choice(candidates)
        col = len(lines[line]) - len(lines[line].lstrip()) + len(lines[line].strip()) // 2
        path = str(ws.root / rel)
        result = engine.complete(path, text, line, col)
        t = result.timings
        overhead.append(t.overhead_ms)
        retrieval.append(t.retrieval_ms)
        first.append(t.first_token_ms)
        total.append(t.total_ms)
        model_ms.append(t.prompt_ms + t.generation_ms)
        hit = engine.complete(path, text, line, col)
        if not hit.cached:  # nothing was cached: an empty answer, or a cursor inside a secret
            uncached.append(repr(result.text[:20]))
            continue
        hits.append(hit.timings.total_ms)
        if len(result.text) > 1:
            typed = text[: sum(len(s) + 1 for s in lines[:line]) + col] + result.text[0]
            rest = text[len(typed) - 1 :]
            more = engine.complete(path, typed + rest, line, col + 1)
            if more.cached:
                ahead.append(more.timings.total_ms)
    return {
        "overhead_ms": summary(overhead),
        "retrieval_ms": summary(retrieval),
        "first_token_ms": summary(first),
        "total_ms": summary(total),
        "model_ms": summary(model_ms),
        "cache_hit_ms": summary(hits),
        "typed_ahead_hit_ms": summary(ahead) if ahead else None,
        "repeat_not_cached": uncached,
    }


CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{3,})\s*\(")


def cross_file_cases(
    ws: Workspace, limit: int, rng: random.Random
) -> list[tuple[str, str, int, int, str, str]]:
    """(rel path, text, line, col, rest of line, callee) for calls of other files' functions."""
    db = ws.store.db
    defined: dict[str, set[str]] = {}
    for name, path in db.execute(
        "SELECT s.name, f.path FROM symbols s JOIN files f ON f.id = s.file_id"
        " WHERE s.kind IN ('function', 'method')"
    ):
        defined.setdefault(name, set()).add(path)
    cases = []
    files = code_files(ws)
    rng.shuffle(files)
    for rel in files:
        text = (ws.root / rel).read_text(encoding="utf-8")
        lines = text.split("\n")
        for i, ln in enumerate(lines):
            m = CALL.search(ln)
            if not m or ln.lstrip().startswith(("def ", "func ", "fn ", "function ", "#", "//")):
                continue
            name = m.group(1)
            homes = defined.get(name, set())
            if not homes or rel in homes or len(homes) > 2:
                continue
            rest = ln[m.start(1) :].rstrip()
            cases.append((rel, text, i, m.start(1), rest, name))
            break  # one case per file: spread over the repository
        if len(cases) >= limit:
            break
    return cases


def context_effect(engine: CompletionEngine, ws: Workspace, cases: list) -> dict[str, object]:
    out: dict[str, object] = {}
    base = engine.settings
    for label, tokens in (("without_context", 0), ("with_context", base.context_tokens)):
        engine.settings = replace(base, context_tokens=tokens, multiline="never")
        engine.cache.entries.clear()
        exact = ident = 0
        for rel, text, line, col, rest, name in cases:
            result = engine.complete(str(ws.root / rel), text, line, col)
            got = result.text.split("\n", 1)[0].strip()
            exact += got == rest.strip()
            ident += got.startswith(name)
        n = max(1, len(cases))
        out[label] = {"exact_match": round(exact / n, 3), "identifier_match": round(ident / n, 3)}
    engine.settings = base
    out["cases"] = len(cases)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", type=Path, default=Path("/tmp/assist-bench"))
    ap.add_argument("--latency", type=int, default=20, help="completions timed")
    ap.add_argument("--cases", type=int, default=8, help="cross-file cases per corpus")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cond = conditions(latency_samples=args.latency, cases=args.cases, seed=args.seed,
                      model_settings="temperature 0, other defaults; in-process")  # fmt: skip
    model = LocalModel.load(embedded_model_path(), ModelSettings(temperature=0.0))
    report: dict[str, object] = {"model": model.name, "fim": model.fim_label}
    with tempfile.TemporaryDirectory() as tmp:
        corpora = sorted(
            p for p in args.corpora.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        effects: dict[str, object] = {}
        for src in corpora:
            started = time.perf_counter()
            ws = open_corpus(src, Path(tmp) / src.name)
            engine = CompletionEngine(ws, model)
            if src.name == "requests":
                report["latency"] = latency(engine, ws, args.latency, rng)
            effects[src.name] = context_effect(engine, ws, cross_file_cases(ws, args.cases, rng))
            effects[src.name]["seconds"] = round(time.perf_counter() - started, 1)  # type: ignore[index]
            ws.close()
        report["repository_context"] = effects
    print(json.dumps({"conditions": finish(cond), **report}, indent=2))


if __name__ == "__main__":
    main()
