"""In-process retrieval scoring for fast iteration (the official figures come from
../shared/bench/retrieval/run.py). Prints one JSON object per corpus and mode, then overall,
then the run's conditions (commit, machine, load). Every query of each corpus, in process;
the quality figures are in-sample for the ranking weights, which were chosen on these queries
(bench/retrieval_weights.py reports them on a held-out half).

    python bench/retrieval_quick.py --corpora /tmp/assist-bench [--modes keyword,hybrid] [--index]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from conditions import conditions, finish

from assistant.index.indexer import IndexReport
from assistant.workspace import Workspace

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "retrieval" / "queries"


def unqualified(name: str) -> str:
    name = re.sub(r"\(.*$", "", name.strip())
    parts = [p for p in re.split(r"[.:#/\\]+", name) if p]
    return parts[-1] if parts else name


def is_hit(hit: dict, q: dict) -> bool:
    if hit["path"] == q["path"] and hit["start_line"] <= q["line"] <= hit["end_line"]:
        return True
    return hit["path"] == q["path"] and unqualified(hit["name"]) == q["name"].split(".")[-1]


def is_definition(hit: dict, q: dict) -> bool:
    """The tight hit: the result is the target's own definition (same file, same short name),
    not a chunk that merely contains its line."""
    return hit["path"] == q["path"] and unqualified(hit["name"]) == q["name"].split(".")[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="/tmp/assist-bench")
    ap.add_argument("--modes", default="keyword,vector,hybrid")
    ap.add_argument("--only", default="")
    ap.add_argument("--index", action="store_true", help="(re)index before searching")
    ap.add_argument("--no-vectors", action="store_true")
    args = ap.parse_args()
    cond = conditions(modes=args.modes, index=args.index, defaults="every search default")
    names = [n for n in args.only.split(",") if n] or sorted(
        p.stem for p in QUERIES.glob("*.jsonl")
    )
    overall: dict[str, list[float]] = {}
    for corpus in names:
        ws = Workspace.open(Path(args.corpora) / corpus)
        if args.index:
            for item in ws.index(vectors=not args.no_vectors):
                if isinstance(item, IndexReport):
                    print(json.dumps({"corpus": corpus, "index_s": round(item.seconds, 2)}))
        queries = [json.loads(line) for line in (QUERIES / f"{corpus}.jsonl").open()]
        for mode in args.modes.split(","):
            rr, tight, r1, r5, r10, ms = [], [], 0, 0, 0, []
            for q in queries:
                t = time.perf_counter()
                hits = [h.as_json() for h in ws.search(q["query"], k=10, mode=mode)]
                ms.append((time.perf_counter() - t) * 1000)
                rank = next((i + 1 for i, h in enumerate(hits) if is_hit(h, q)), None)
                rr.append(1 / rank if rank else 0.0)
                exact = next((i + 1 for i, h in enumerate(hits) if is_definition(h, q)), None)
                tight.append(1 / exact if exact else 0.0)
                r1 += rank == 1 if rank else 0
                r5 += rank is not None and rank <= 5
                r10 += rank is not None and rank <= 10
            n = len(queries)
            mrr = sum(rr) / n
            overall.setdefault(mode, []).append(mrr)
            overall.setdefault(f"{mode}-tight", []).append(sum(tight) / n)
            print(
                json.dumps(
                    {
                        "corpus": corpus,
                        "mode": mode,
                        "mrr10": round(mrr, 3),
                        "tight_mrr10": round(sum(tight) / n, 3),
                        "r1": round(r1 / n, 3),
                        "r5": round(r5 / n, 3),
                        "r10": round(r10 / n, 3),
                        "p50_ms": round(statistics.median(ms), 1),
                    }
                )
            )
    for mode, values in overall.items():
        print(json.dumps({"overall": mode, "mrr10": round(sum(values) / len(values), 3)}))
    print(json.dumps({"conditions": finish(cond)}))


if __name__ == "__main__":
    main()
