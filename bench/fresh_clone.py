"""Searchable in seconds on a fresh clone: per benchmark corpus, time from starting
`assist index` to the first keyword result (another process polling `assist search`), to the
indexer saying keywords are ready, and to full hybrid (every chunk embedded), then retrieval
quality in all three modes (MRR@10, and the tight figure where the hit must be the definition
itself) on the finished index.

    bash ../shared/bench/retrieval/make_corpora.sh /tmp/assist-bench
    python bench/fresh_clone.py --corpora /tmp/assist-bench [--only requests,gin]

Each corpus is copied without its `.assist/` first, so every run starts from nothing. One JSON
object per corpus.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from retrieval_quick import QUERIES, is_definition, is_hit

from assistant.workspace import Workspace


def poll_keyword(
    root: Path, query: str, started: float, indexer: subprocess.Popen[str]
) -> float | None:
    """Seconds from `started` to the first non-empty keyword result, or None."""
    while True:
        finished = indexer.poll() is not None
        done = subprocess.run(
            [sys.executable, "-m", "assistant", "search", query, "--repo", str(root), "--json",
             "--mode", "keyword"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0 and json.loads(done.stdout or "[]"):
            return time.perf_counter() - started
        if finished:
            return None
        time.sleep(0.25)


def quality(root: Path, queries: list[dict[str, object]]) -> dict[str, float]:
    ws = Workspace.open(root)
    out: dict[str, float] = {}
    for mode in ("keyword", "vector", "hybrid"):
        rr, tight = [], []
        for q in queries:
            hits = [h.as_json() for h in ws.search(str(q["query"]), k=10, mode=mode)]  # type: ignore[arg-type]
            rank = next((i + 1 for i, h in enumerate(hits) if is_hit(h, q)), None)
            exact = next((i + 1 for i, h in enumerate(hits) if is_definition(h, q)), None)
            rr.append(1 / rank if rank else 0.0)
            tight.append(1 / exact if exact else 0.0)
        out[f"{mode}_mrr10"] = round(sum(rr) / len(rr), 3)
        out[f"{mode}_tight_mrr10"] = round(sum(tight) / len(tight), 3)
    ws.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="/tmp/assist-bench")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(
        p.stem for p in QUERIES.glob("*.jsonl")
    )
    with tempfile.TemporaryDirectory(prefix="assist-fresh-") as tmp:
        for name in names:
            root = Path(tmp) / name
            shutil.copytree(
                Path(args.corpora) / name, root, ignore=shutil.ignore_patterns(".assist")
            )
            queries = [json.loads(line) for line in (QUERIES / f"{name}.jsonl").open()]
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "assistant", "index", str(root)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            ready: list[float] = []

            def watch(stream: object, marks: list[float] = ready, t0: float = started) -> None:
                for line in stream:  # type: ignore[attr-defined]
                    if "keywords ready" in line and not marks:
                        marks.append(time.perf_counter() - t0)

            reader = threading.Thread(target=watch, args=(proc.stderr,), daemon=True)
            reader.start()
            first = poll_keyword(root, str(queries[0]["query"]), started, proc)
            summary = proc.stdout.read() if proc.stdout else ""
            proc.wait()
            full = time.perf_counter() - started
            reader.join(5)
            counts = Workspace.open(root).store.counts()
            row: dict[str, object] = {
                "corpus": name,
                "files": counts["files"],
                "chunks": counts["chunks"],
                "first_keyword_result_s": round(first, 2) if first is not None else None,
                "keywords_ready_said_s": round(ready[0], 2) if ready else None,
                "full_hybrid_s": round(full, 2),
                "summary": summary.strip(),
            }
            row.update(quality(root, queries))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
