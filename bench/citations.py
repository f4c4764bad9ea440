"""Checked citations on questions whose answer location is known.

Questions come from the shared retrieval benchmark: each query is the first sentence of a removed
doc comment, so the definition it describes is known (path, name, line). Each becomes a chat
question; the answer's citations are checked (`assistant/chat/citations.py`) and scored:

- answers with at least one valid citation (it points into a source that was sent);
- answers the checker calls grounded (valid citations, no invented names);
- valid citations that point inside the right definition;
- questions whose right definition was among the sources sent (the ceiling for the above).

    python bench/citations.py --corpora /tmp/assist-bench [--per-corpus 2] [--model PATH]
        [--max-tokens 200] [--json]

Each corpus is copied and given a keyword index (no vectors: seconds per corpus, and the same
retrieval for all), so nothing is written into the shared corpora. Without --model the embedded
default is used.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.chat.session import ChatSession
from assistant.workspace import Workspace

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "retrieval" / "queries"


def definition_end(ws: Workspace, path: str, line: int) -> int:
    """The last line of the definition that starts at `line` (the query's target)."""
    spans = [s.end_line for s in ws.symbols_in(path) if s.start_line <= line <= s.def_line + 1]
    return max(spans) if spans else line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--only", default="commander,gin,jinja2,regex-syntax,requests")
    ap.add_argument("--per-corpus", type=int, default=2)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assist-citations-"))
    rows: list[dict[str, Any]] = []
    overrides: dict[str, Any] = {"chat": {"max_tokens": args.max_tokens, "history_turns": 0}}
    if args.model:
        overrides["model"] = {"path": str(args.model)}
    for corpus in args.only.split(","):
        repo = work / corpus
        shutil.copytree(
            args.corpora / corpus, repo, symlinks=True, ignore=shutil.ignore_patterns(".assist")
        )
        ws = Workspace.open(repo, overrides=overrides)
        for _ in ws.index(vectors=False):  # keyword retrieval: seconds, the same for every corpus
            pass
        queries = [json.loads(x) for x in (QUERIES / f"{corpus}.jsonl").read_text().splitlines()]
        step = max(1, len(queries) // args.per_corpus)
        for q in queries[::step][: args.per_corpus]:
            question = f"Which code does this: {q['query']} Where is it defined?"
            end = definition_end(ws, q["path"], q["line"])
            started = time.perf_counter()
            turn = ChatSession(ws).ask(question)
            seconds = time.perf_counter() - started
            by_n = {s.n: s for s in turn.sources}

            target = (q["path"], q["line"], end)

            def inside(path: str, start: int, stop: int, t: tuple[str, int, int] = target) -> bool:
                return path == t[0] and start <= t[2] and stop >= t[1]

            valid = [c for c in turn.citations if c.source is not None]
            right = []
            for c in valid:
                s = by_n[c.source] if c.source is not None else None
                if c.written.startswith("[") and s is not None:
                    hit = inside(s.path, s.start_line, s.end_line)
                else:
                    hit = inside(c.path, c.line, c.line)
                if hit:
                    right.append(c)
            sent = any(inside(s.path, s.start_line, s.end_line) for s in turn.sources)
            g = turn.grounding
            rows.append({
                "id": q["id"], "target": f"{q['path']}:{q['line']}-{end}",
                "seconds": round(seconds, 1),
                "valid_citations": len(valid), "right_citations": len(right),
                "invalid": g.invalid if g else [], "unknown": g.unknown if g else [],
                "grounded": bool(g and g.grounded), "target_sent": sent,
                "verdict": g.describe() if g else "", "answer": turn.answer[:300],
            })  # fmt: skip
            if not args.json:
                r = rows[-1]
                print(f"{r['id']:18} {r['seconds']:6.1f}s valid {r['valid_citations']} "
                      f"right {r['right_citations']} sent {sent!s:5} {r['verdict']}")  # fmt: skip
        ws.close()
    n = len(rows)
    cited = sum(1 for r in rows if r["valid_citations"])
    valid_total = sum(r["valid_citations"] for r in rows)
    summary = {
        "model": str(args.model or "embedded default"), "questions": n,
        "answers_with_valid_citation": cited,
        "answers_grounded": sum(1 for r in rows if r["grounded"]),
        "valid_citations": valid_total,
        "valid_citations_in_right_definition": sum(r["right_citations"] for r in rows),
        "target_among_sources": sum(1 for r in rows if r["target_sent"]),
        "seconds_per_answer": round(sum(r["seconds"] for r in rows) / max(1, n), 1),
    }  # fmt: skip
    if args.json:
        print(json.dumps({**summary, "rows": rows}))
    else:
        for key, value in summary.items():
            print(f"{key:38} {value}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
