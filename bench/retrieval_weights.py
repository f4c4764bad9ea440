"""Tune the two ranking weights on one part of the shared queries, report on the other.

The BM25 weight of the chunk body (`store.BODY_WEIGHT`, name and path keep theirs) and the
vector share of hybrid fusion (`search.VECTOR_SHARE`) were once chosen by a grid on all 686
queries of ../shared/bench/retrieval and reported on the same 686: an in-sample figure. Here
each corpus's queries are split in two halves with a fixed seed; the grid is scored on every
query once, the weights are chosen on one half (mean MRR@10 over the five corpora, as the
benchmark's "overall") and reported on the other, and then the halves swap (two folds). Printed
beside them: the shipped defaults on the same halves, and the best any grid point gets on the
held-out half (what choosing on it would have claimed).

    python bench/retrieval_weights.py --corpora /tmp/assist-bench [--index] [--seed 27]
        [--body 1,0.5,0.3,0.2,0.15,0.1,0.05] [--share 0.6,0.5,0.4,0.35,0.3,0.25,0.2]

The corpora must be indexed with every vector (`--index` does it: a few minutes). One JSON line
per grid point, then a summary with the run's conditions. In process, query vectors cached (the
weights do not change them), so a grid point costs the keyword search and the fusion only.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from conditions import conditions, finish
from retrieval_quick import QUERIES, is_hit

import assistant.index.search as search_module
import assistant.index.store as store_module
from assistant.index.indexer import IndexReport
from assistant.workspace import Workspace


def split(queries: list[dict[str, Any]], corpus: str, seed: int) -> tuple[list[int], list[int]]:
    """Indexes of the two halves of a corpus's queries, shuffled with a fixed seed."""
    order = list(range(len(queries)))
    random.Random(f"{seed}:{corpus}").shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def mean_mrr(rr: dict[str, list[float]], parts: dict[str, list[int]]) -> float:
    """MRR@10 averaged over the corpora (each weighs the same), on the given query indexes."""
    per = [sum(rr[c][i] for i in idx) / len(idx) for c, idx in parts.items() if idx]
    return sum(per) / len(per)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="/tmp/assist-bench")
    ap.add_argument("--only", default="")
    ap.add_argument("--index", action="store_true", help="(re)index with vectors first")
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--body", default="1,0.5,0.3,0.2,0.15,0.1,0.05")
    ap.add_argument("--share", default="0.6,0.5,0.4,0.35,0.3,0.25,0.2")
    args = ap.parse_args()
    bodies = [float(x) for x in args.body.split(",")]
    shares = [float(x) for x in args.share.split(",")]
    default = (store_module.BODY_WEIGHT, search_module.VECTOR_SHARE)
    if default[0] not in bodies:
        bodies.append(default[0])
    if default[1] not in shares:
        shares.append(default[1])
    names = [n for n in args.only.split(",") if n] or sorted(
        p.stem for p in QUERIES.glob("*.jsonl")
    )
    cond = conditions(
        corpora=names,
        seed=args.seed,
        grid={"body_weight": bodies, "vector_share": shares},
        defaults={"body_weight": default[0], "vector_share": default[1]},
        mode="hybrid, k=10, every other search setting at its default",
    )
    spaces: dict[str, Workspace] = {}
    queries: dict[str, list[dict[str, Any]]] = {}
    coverage: dict[str, str] = {}
    for corpus in names:
        ws = Workspace.open(Path(args.corpora) / corpus)
        if args.index:
            for item in ws.index(vectors=True):
                if isinstance(item, IndexReport):
                    print(json.dumps({"corpus": corpus, "index_s": round(item.seconds, 1)}))
        counts = ws.store.counts()
        coverage[corpus] = f"{counts['vectors']}/{counts['chunks']}"
        embedder = ws.embedder
        real, cache = embedder.embed, {}

        def cached(texts: Any, cancel: Any = None, real: Any = real, cache: Any = cache) -> Any:
            key = tuple(texts)
            if key not in cache:
                cache[key] = real(texts)
            return cache[key]

        embedder.embed = cached  # type: ignore[method-assign]
        spaces[corpus] = ws
        queries[corpus] = [json.loads(line) for line in (QUERIES / f"{corpus}.jsonl").open()]
    cond["vectors_per_chunks"] = coverage

    # Reciprocal rank of every query at every grid point.
    grid: dict[tuple[float, float], dict[str, list[float]]] = {}
    try:
        for body in bodies:
            store_module.BODY_WEIGHT = body
            for share in shares:
                search_module.VECTOR_SHARE = share
                rr: dict[str, list[float]] = {}
                for corpus, ws in spaces.items():
                    rr[corpus] = []
                    for q in queries[corpus]:
                        hits = [h.as_json() for h in ws.search(q["query"], k=10, mode="hybrid")]
                        rank = next((i + 1 for i, h in enumerate(hits) if is_hit(h, q)), None)
                        rr[corpus].append(1 / rank if rank else 0.0)
                grid[(body, share)] = rr
                every = {c: list(range(len(queries[c]))) for c in spaces}
                print(json.dumps({"body_weight": body, "vector_share": share,
                                  "mrr10_all_queries": round(mean_mrr(rr, every), 4)}),
                      flush=True)  # fmt: skip
    finally:
        store_module.BODY_WEIGHT, search_module.VECTOR_SHARE = default

    halves = {c: split(queries[c], c, args.seed) for c in spaces}
    folds = []
    for fold, (tune_i, test_i) in enumerate(((0, 1), (1, 0))):
        tune = {c: h[tune_i] for c, h in halves.items()}
        test = {c: h[test_i] for c, h in halves.items()}
        chosen = max(grid, key=lambda point: (mean_mrr(grid[point], tune), point == default))
        oracle = max(grid, key=lambda point: mean_mrr(grid[point], test))
        folds.append({
            "fold": fold,
            "tune_queries": sum(len(v) for v in tune.values()),
            "held_out_queries": sum(len(v) for v in test.values()),
            "chosen": {"body_weight": chosen[0], "vector_share": chosen[1]},
            "chosen_mrr10_tune": round(mean_mrr(grid[chosen], tune), 4),
            "chosen_mrr10_held_out": round(mean_mrr(grid[chosen], test), 4),
            "defaults_mrr10_tune": round(mean_mrr(grid[default], tune), 4),
            "defaults_mrr10_held_out": round(mean_mrr(grid[default], test), 4),
            "best_on_held_out": {"body_weight": oracle[0], "vector_share": oracle[1],
                                 "mrr10": round(mean_mrr(grid[oracle], test), 4)},
            "held_out_per_corpus": {
                c: round(sum(grid[chosen][c][i] for i in idx) / len(idx), 4)
                for c, idx in test.items() if idx
            },
        })  # fmt: skip
    every = {c: list(range(len(queries[c]))) for c in spaces}
    summary = {
        "conditions": finish(cond),
        "folds": folds,
        "held_out_mrr10_mean_of_folds": round(
            sum(f["chosen_mrr10_held_out"] for f in folds) / len(folds), 4
        ),
        "defaults_mrr10_all_queries_in_sample": round(mean_mrr(grid[default], every), 4),
    }
    print(json.dumps(summary), flush=True)
    for ws in spaces.values():
        ws.close()


if __name__ == "__main__":
    main()
