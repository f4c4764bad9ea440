"""`assist index`, `watch` and `search`: the index, kept fresh, and queried."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from assistant.cli.common import ProgressLine, workspace_for


def cmd_index(args: argparse.Namespace) -> int:
    from assistant.index.indexer import IndexReport
    from assistant.index.progress import duration

    ws = workspace_for(args, args.path)
    progress = ProgressLine()
    report: IndexReport | None = None
    vectors = False if args.no_vectors else None
    started = time.perf_counter()
    for item in ws.index(vectors=vectors):
        if isinstance(item, IndexReport):
            report = item
            continue
        if item.phase == "embed" and progress.phase != "embed" and not args.quiet:
            # The first phase is done: say so, since search already works from here on.
            behind = (
                f"embedding {item.total:,} chunks behind it (hybrid search uses them as they come)"
                if item.total
                else "vectors are up to date"
            )
            ready = duration(time.perf_counter() - started)
            progress.note(f"keywords ready after {ready}: `assist search` works now; {behind}")
        if not args.quiet:
            progress.show(item)
    assert report is not None
    counts = ws.store.counts()
    if args.json:
        summary = {
            "root": str(ws.root),
            **counts,
            "parsed": report.parsed,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "embedded": report.embedded,
            "seconds": round(report.seconds, 3),
            "keyword_seconds": round(report.keyword_seconds, 3),
            "vector_seconds": round(report.vector_seconds, 3),
            "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
        }
        print(json.dumps(summary))
    elif not args.quiet:
        print(
            f"indexed {ws.root}: {counts['files']} files, {counts['symbols']} symbols, "
            f"{counts['chunks']} chunks, {counts['vectors']} vectors "
            f"({report.parsed} parsed, {report.unchanged} unchanged, {report.removed} removed, "
            f"{len(report.skipped)} skipped) in {duration(report.seconds)}"
            + (
                f" (keywords ready after {duration(report.keyword_seconds)})"
                if report.vector_seconds
                else ""
            )
        )
        for path, reason in report.skipped[:20] if args.verbose_skips else []:
            print(f"  skipped {path}: {reason}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from assistant.watcher import Batch

    ws = workspace_for(args, args.path)
    progress = ProgressLine()

    def show(batch: Batch) -> None:
        if args.quiet or batch.report is None:
            return
        r = batch.report
        print(f"{time.strftime('%H:%M:%S')} {batch.reason}: {r.parsed} parsed, {r.removed} "
              f"removed, {r.embedded} embedded in {batch.seconds:.2f} s", flush=True)  # fmt: skip

    watcher = ws.keep_fresh(
        on_progress=None if args.quiet else progress.show,
        on_batch=show,
        vectors=False if args.no_vectors else None,
    )
    assert watcher is not None
    mode = "watching" if watcher.watching else "rescanning every 30 s (cannot watch)"
    print(f"{mode} {ws.root}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        watcher.stop()


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.index.search import SearchTimings

    ws = workspace_for(args, args.repo)
    timings = SearchTimings()
    hits = ws.search(args.query, k=args.k, mode=args.mode, timings=timings)
    for note in timings.notes:  # stderr, so --json's stdout stays one JSON array
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps([h.as_json() for h in hits]))
        return 0
    if not hits:
        print("no results")
        return 0
    for hit in hits:
        print(f"{hit.path}:{hit.start_line}  {hit.kind}  {hit.name}    score {hit.score:.4f}")
        if hit.signature:
            print(f"    {hit.signature}")
        for line in hit.snippet.split("\n")[:3]:
            print(f"    | {line}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("index", help="build or refresh the index of a repository")
    p.add_argument("path", nargs="?", help="repository (default: the one around cwd)")
    p.add_argument("--no-vectors", action="store_true", help="keywords only; skip embedding")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    p.add_argument("--verbose-skips", action="store_true", help="list skipped files")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("watch", help="keep the index fresh as files change")
    p.add_argument("path", nargs="?", help="repository (default: the one around cwd)")
    p.add_argument("--no-vectors", action="store_true", help="keywords only; skip embedding")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing per batch")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("search", help="hybrid code search over the index")
    p.add_argument("query")
    p.add_argument("--repo", metavar="PATH", help="repository (default: the one around cwd)")
    p.add_argument("-k", type=int, default=None, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="JSON array of results")
    p.add_argument("--mode", choices=["hybrid", "keyword", "vector"], default=None)
    p.set_defaults(func=cmd_search)
