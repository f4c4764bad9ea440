"""The `assist` command line: parse, make one core call, print.

Imports stay lazy: `assist --help` must not load llama_cpp, textual or hnswlib.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant import __version__
from assistant.errors import AssistError

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.workspace import Workspace


def _settings(args: argparse.Namespace) -> Settings:
    from assistant.config import load_settings
    from assistant.workspace import find_root

    repo = getattr(args, "repo", None)
    root = Path(repo).resolve() if repo else find_root(Path.cwd())
    overrides = {"model": {"path": getattr(args, "model", None)}}
    return load_settings(root, overrides=overrides)


def _workspace(args: argparse.Namespace, path: str | None) -> Workspace:
    from assistant.workspace import Workspace

    overrides = {"model": {"path": getattr(args, "model", None)}}
    return Workspace.open(path, overrides=overrides)


class _ProgressLine:
    """One self-rewriting progress line on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.phase = ""

    def show(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        changed = phase != self.phase
        if not changed and now - self.last < (0.1 if self.tty else 5.0) and done != total:
            return
        self.last, self.phase = now, phase
        label = {"parse": "symbols + keywords", "embed": "vectors"}.get(phase, phase)
        if total:
            width = 30
            filled = int(width * done / total)
            bar = "#" * filled + "-" * (width - filled)
            text = f"{label:20} [{bar}] {done}/{total}"
        else:
            text = f"{label:20} ..."
        if self.tty:
            sys.stderr.write("\r\033[K" + text + ("\n" if done == total and total else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def cmd_index(args: argparse.Namespace) -> int:
    from assistant.indexer import IndexReport

    ws = _workspace(args, args.path)
    progress = _ProgressLine()
    report: IndexReport | None = None
    vectors = False if args.no_vectors else None
    for item in ws.index(vectors=vectors):
        if isinstance(item, IndexReport):
            report = item
        elif not args.quiet:
            progress.show(item.phase, item.done, item.total)
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
            "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
        }
        print(json.dumps(summary))
    elif not args.quiet:
        print(
            f"indexed {ws.root}: {counts['files']} files, {counts['symbols']} symbols, "
            f"{counts['chunks']} chunks, {counts['vectors']} vectors "
            f"({report.parsed} parsed, {report.unchanged} unchanged, {report.removed} removed, "
            f"{len(report.skipped)} skipped) in {report.seconds:.2f} s"
        )
        for path, reason in report.skipped[:20] if args.verbose_skips else []:
            print(f"  skipped {path}: {reason}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from assistant.watcher import Batch, Watcher

    ws = _workspace(args, args.path)
    progress = _ProgressLine()
    from assistant.indexer import Progress

    for item in ws.index(vectors=False if args.no_vectors else None):
        if not args.quiet and isinstance(item, Progress):
            progress.show(item.phase, item.done, item.total)

    def show(batch: Batch) -> None:
        if args.quiet or batch.report is None:
            return
        r = batch.report
        print(f"{time.strftime('%H:%M:%S')} {batch.reason}: {r.parsed} parsed, {r.removed} "
              f"removed, {r.embedded} embedded in {batch.seconds:.2f} s", flush=True)  # fmt: skip

    def step(item: Progress) -> None:
        if not args.quiet and item.total > 50:  # a bulk change: show it moving
            progress.show(item.phase, item.done, item.total)

    watcher = Watcher(
        ws, vectors=False if args.no_vectors else None, on_batch=show, on_progress=step
    )
    watcher.start()
    mode = "watching" if watcher.watching else "rescanning every 30 s (cannot watch)"
    print(f"{mode} {ws.root}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        watcher.stop()


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.search import SearchTimings

    ws = _workspace(args, args.repo)
    timings = SearchTimings()
    hits = ws.search(args.query, k=args.k, mode=args.mode, timings=timings)
    if args.json:
        print(json.dumps([h.as_json() for h in hits]))
        return 0
    for note in timings.notes:
        print(f"note: {note}", file=sys.stderr)
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


def cmd_model(args: argparse.Namespace) -> int:
    from assistant.model_card import build_card, format_card

    card = build_card(_settings(args), measure=not args.no_bench)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        print(format_card(card))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    settings = _settings(args)
    data = {k: v for k, v in asdict(settings).items() if k not in ("sources", "origins")}
    origins = dict(settings.origins)
    if args.json:
        print(json.dumps({"settings": data, "origins": origins}, indent=2))
        return 0
    for section, values in data.items():
        for key, value in values.items():
            where = origins.get(f"{section}.{key}", "default")
            print(f"{section}.{key} = {value!r}  # {where}")
    return 0


def _add_model_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PATH", help="GGUF file to use (overrides config)")
    p.add_argument("--repo", metavar="PATH", help="repository (default: the one around cwd)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assist",
        description="A local-first coding assistant: index, search, complete, chat.",
    )
    parser.add_argument("--version", action="version", version=f"assist {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("model", help="show the model card: metadata, FIM mode, measured speed")
    _add_model_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-bench", action="store_true", help="skip the speed measurement")
    p.set_defaults(func=cmd_model)

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

    p = sub.add_parser("config", help="show the effective settings and where each came from")
    _add_model_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="assist: %(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return func(args)
    except AssistError as exc:
        print(f"assist: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("assist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
