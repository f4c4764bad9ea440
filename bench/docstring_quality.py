"""Are generated docs worth committing? Regenerate the docs the shared retrieval benchmark
removed, and compare them with the originals.

The benchmark's corpora are real packages with their doc comments stripped, and each query is
the first sentence of a removed doc, with the definition's path, name and line. For a sample
of those definitions (per corpus, fixed seed), this asks the model for the doc through
`generate.document_text` (what `assist docstring` runs, quality checks included) and reports:

- how many passed the checks (`documented`), were refused (`refused`, with the reasons) or
  failed;
- MiniLM cosine similarity between the written summary and the removed first sentence, against
  a baseline made from the name and signature alone (`get_adapter(url)` -> "Get adapter url.");
- seconds per doc and docs per minute.

    bash ../shared/bench/retrieval/make_corpora.sh /tmp/assist-bench
    python bench/docstring_quality.py --corpora /tmp/assist-bench [--per-corpus 12] [--model GGUF]

What a real model writes is a figure here, never an assertion in the tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_quick import QUERIES

from assistant.config import ModelSettings
from assistant.docstrings import generate
from assistant.index.embeddings import load_embedder
from assistant.index.identifiers import split_identifier
from assistant.index.languages import language_for_path
from assistant.llm.local import LocalModel
from assistant.llm.source import embedded_model_path
from assistant.workspace import Workspace


def baseline(name: str, signature: str) -> str:
    """A doc a tool could write without a model: the name's words, then the parameters'."""
    words = list(split_identifier(name.split(".")[-1]))
    inside = signature.partition("(")[2].rpartition(")")[0]
    params = [
        p.strip().split(":")[0].split("=")[0].strip(" *&")
        for p in inside.split(",")
        if p.strip() and p.strip() not in ("self", "cls", "&self", "&mut self")
    ]
    words += [w for p in params[:3] for w in split_identifier(p.split()[-1] if p else "")]
    text = " ".join(words).strip()
    return (text[:1].upper() + text[1:] + ".") if text else name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="/tmp/assist-bench")
    ap.add_argument("--per-corpus", type=int, default=12)
    ap.add_argument("--only", default="")
    ap.add_argument("--model", default="", help="GGUF (default: the embedded SmolLM2)")
    ap.add_argument("--max-tokens", type=int, default=160)
    args = ap.parse_args()
    path = Path(args.model) if args.model else embedded_model_path()
    model = LocalModel.load(path, ModelSettings(temperature=0.0, n_ctx=4096))
    embedder = load_embedder()
    names = [n for n in args.only.split(",") if n] or sorted(
        p.stem for p in QUERIES.glob("*.jsonl")
    )
    overall: dict[str, list[float]] = {"generated": [], "baseline": []}
    totals: Counter[str] = Counter()
    seconds: list[float] = []
    for corpus in names:
        queries = [json.loads(line) for line in (QUERIES / f"{corpus}.jsonl").open()]
        queries = [q for q in queries if q["kind"] in ("function", "method")]
        random.Random(18).shuffle(queries)
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        pairs: list[tuple[str, str, str]] = []
        for q in queries[: args.per_corpus]:
            rel = q["path"]
            language = language_for_path(rel)
            if language is None:
                continue
            text = (Path(args.corpora) / corpus / rel).read_text(encoding="utf-8")
            started = time.perf_counter()
            permit = Workspace.open(Path(args.corpora) / corpus).permit(rel)
            report = generate.document_text(
                model,
                rel,
                text,
                language,
                changed={q["line"]},
                max_tokens=args.max_tokens,
                permit=permit,
            )
            seconds.append(time.perf_counter() - started)
            mine = [o for o in report.outcomes if o.line == q["line"]]
            if not mine:
                outcomes["not found"] += 1
                continue
            o = mine[0]
            status = "refused" if o.reason.startswith("generated doc refused") else o.status
            outcomes[status] += 1
            if status == "refused":
                reasons[o.reason.removeprefix("generated doc refused: ")] += 1
            symbol = next((s for s in report.targets if s.def_line == q["line"]), None)
            signature = symbol.signature if symbol is not None else q["name"]
            if o.status == "documented":
                pairs.append((q["query"], o.doc, baseline(q["name"], signature)))
        row: dict[str, object] = {"corpus": corpus, **outcomes, "refused_because": reasons}
        if pairs:
            truth = embedder.embed([p[0] for p in pairs])
            made = embedder.embed([p[1] for p in pairs])
            base = embedder.embed([p[2] for p in pairs])
            gen_cos = np.sum(truth * made, axis=1).tolist()
            base_cos = np.sum(truth * base, axis=1).tolist()
            overall["generated"] += gen_cos
            overall["baseline"] += base_cos
            row["cosine_generated"] = round(statistics.mean(gen_cos), 3)
            row["cosine_baseline"] = round(statistics.mean(base_cos), 3)
            row["examples"] = [
                {"removed": t, "generated": g, "baseline": b} for t, g, b in pairs[:3]
            ]
        totals.update(outcomes)
        print(json.dumps(row), flush=True)
    n = sum(totals.values())
    summary: dict[str, object] = {"overall": True, "model": path.name, **totals}
    summary["pass_rate"] = round(totals["documented"] / n, 3) if n else 0.0
    if overall["generated"]:
        summary["cosine_generated"] = round(statistics.mean(overall["generated"]), 3)
        summary["cosine_baseline"] = round(statistics.mean(overall["baseline"]), 3)
    if seconds:
        summary["seconds_per_doc_p50"] = round(statistics.median(seconds), 2)
        summary["docs_per_minute"] = round(60 * len(seconds) / sum(seconds), 2)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
