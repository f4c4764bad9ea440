"""Does recalled text earn its place? The model and recall (completion/recall.py) on the same
pauses, each judged by whether its suggestion starts with the line's real next token.

Pauses are drawn as bench/typing_lsp.py draws them (a typable line anywhere in the file, a token
boundary in it at random), the line's rest removed as if the person had typed up to there. The
model answers with all the time it wants and the whole window (`assist complete`'s path: its
best, with a warm prompt or not); recall answers from the same text. A source right less often
than the model on the same pauses would be noise, not an answer.

    python bench/completion_sources.py --corpora /tmp/assist-bench [--pauses 40] [--model PATH]
        [--files jinja2:src/jinja2/compiler.py,...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from typing_lsp import DEFAULT_FILES, TOKEN, first_token, typable

from assistant.completion.engine import CompletionEngine
from assistant.completion.recall import recall
from assistant.index.indexer import IndexReport
from assistant.workspace import Workspace


def workspace(corpora: Path, corpus: str, model: Path | None, work: Path) -> Workspace:
    repo = work / corpus
    if not repo.exists():
        shutil.copytree(corpora / corpus, repo, ignore=shutil.ignore_patterns(".assist"))
        if not (repo / ".git").exists():
            subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    env.update(XDG_CONFIG_HOME=str(work / "xdg"), ASSIST_MODEL_HOST="false")
    if model:
        env["ASSIST_MODEL"] = str(model)
    ws = Workspace.open(repo, env=env)
    for item in ws.index(vectors=False):
        if isinstance(item, IndexReport):
            break
    return ws


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="assist-sources-"))
    rows: list[dict[str, Any]] = []
    engine: CompletionEngine | None = None
    try:
        for spec in args.files.split(","):
            corpus, rel = spec.split(":", 1)
            ws = workspace(args.corpora, corpus, args.model, work)
            engine = CompletionEngine(ws, engine.model if engine else None)
            lines = (ws.root / rel).read_text().split("\n")
            rng = random.Random(f"{args.seed}:{corpus}:{rel}")
            candidates = [r for r, line in enumerate(lines) if typable(line)]
            for row in rng.sample(candidates, min(args.pauses, len(candidates))):
                full = lines[row]
                indent = full[: len(full) - len(full.lstrip())]
                tokens = TOKEN.findall(full[len(indent) :])
                cut = len(indent) + len("".join(tokens[: rng.randrange(1, len(tokens))]))
                rest = full[cut:]
                doc = [*lines[:row], full[:cut], *lines[row + 1 :]]
                text = "\n".join(doc)
                offset = len("\n".join(lines[:row])) + (1 if row else 0) + cut
                done = engine.complete(str(ws.root / rel), text, row, cut)
                t0 = time.perf_counter()
                found = recall(text, offset, [c.text for c in engine.ring.snapshot()])
                recall_ms = (time.perf_counter() - t0) * 1000
                want = first_token(rest)
                rows.append({
                    "file": spec, "line": row + 1, "expected": rest[:40],
                    "model": done.text[:40], "model_match": bool(done.text)
                    and first_token(done.text) == want,
                    "recall": found.text[:40] if found else "",
                    "recall_source": found.source if found else "",
                    "recall_match": bool(found) and first_token(found.text) == want,
                    "recall_ms": round(recall_ms, 2),
                })  # fmt: skip
            print(f"# {spec} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(rows)
    both = sum(1 for r in rows if r["model_match"] and r["recall_match"])
    ms = sorted(r["recall_ms"] for r in rows)
    return {
        "model": str(args.model or "default"), "files": args.files, "pauses": n,
        "model_answered": sum(1 for r in rows if r["model"]),
        "model_match": sum(1 for r in rows if r["model_match"]),
        "recall_answered": sum(1 for r in rows if r["recall"]),
        "recall_match": sum(1 for r in rows if r["recall_match"]),
        "both_match": both,
        "recall_when_model_wrong": sum(1 for r in rows if r["recall_match"]
                                       and not r["model_match"]),
        "recall_ms_p50": ms[n // 2] if n else 0.0,
        "recall_ms_p95": ms[min(n - 1, int(0.95 * n))] if n else 0.0,
        "detail": rows,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--files", default=DEFAULT_FILES)
    ap.add_argument("--pauses", type=int, default=40, help="per file")
    ap.add_argument("--seed", default="sources")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "detail"}))


if __name__ == "__main__":
    main()
