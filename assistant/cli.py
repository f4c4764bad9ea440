"""The `assist` command line: parse, make one core call, print.

Imports stay lazy: `assist --help` must not load llama_cpp, textual or hnswlib.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant import __version__
from assistant.errors import AssistError

if TYPE_CHECKING:
    from assistant.agent_tools import ApprovalRequest
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


def cmd_complete(args: argparse.Namespace) -> int:
    from assistant.completion import complete_file

    ws = _workspace(args, args.repo or str(Path(args.file).resolve().parent))
    if args.no_context:
        from dataclasses import replace

        ws.settings = replace(
            ws.settings, completion=replace(ws.settings.completion, context_tokens=0)
        )

    from assistant.agent_tools import visible  # model output may hold terminal escapes

    def show(piece: str) -> None:
        sys.stdout.write(visible(piece))
        sys.stdout.flush()

    result = complete_file(ws, args.file, args.line, args.col, on_text=None if args.json else show)
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        sys.stdout.write("\n")
        if result.note:
            print(f"note: {result.note}", file=sys.stderr)
    return 0


def cmd_lsp(args: argparse.Namespace) -> int:
    from lsp.server import serve

    if args.log:
        handler = logging.FileHandler(args.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    serve(repo=args.repo, tcp=args.tcp)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.chat import ChatSession

    ws = _workspace(args, args.repo)
    if not ws.has_index():
        raise AssistError(f"{ws.root}: no index yet", "run `assist index` first")
    if args.resume:
        session = ChatSession.resume(ws, None if args.resume == "latest" else args.resume)
    else:
        session = ChatSession(ws)

    from assistant.agent_tools import visible  # model and repo text may hold terminal escapes

    def show(piece: str) -> None:
        sys.stdout.write(visible(piece))
        sys.stdout.flush()

    turn = session.ask(args.question, on_text=None if args.json else show)
    if args.json:
        print(json.dumps({"session": session.id, **turn.as_json()}))
        return 0
    print("\n")
    print("Sources:" if turn.sources else "Sources: none (no indexed code matched)")
    cited = {c.source for c in turn.citations}
    for s in turn.sources:
        mark = "  cited" if s.n in cited else ""
        where = visible(f"{s.path}:{s.start_line}-{s.end_line}  {s.kind}  {s.name}")
        print(f"  [{s.n}] {where}{mark}")
    for c in turn.citations:
        if c.source is None:
            print(f"  cited but not sent: {visible(c.location)}")
    print(f"(conversation {session.id}; continue it with --resume)", file=sys.stderr)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from assistant.agent import Agent, CallInvalid, CallMade, Finished, ToolResult
    from assistant.agent_tools import visible  # repo and model text may hold terminal escapes
    from assistant.checkpoints import Checkpoints

    ws = _workspace(args, args.repo)
    if args.undo or args.redo:
        cp = Checkpoints(ws.root)
        done = cp.undo(force=args.force) if args.undo else cp.redo(force=args.force)
        for path in done.written:
            print(f"restored {visible(path)}")
        for path in done.deleted:
            print(f"removed  {visible(path)}")
        for path in done.kept:
            print(f"kept     {visible(path)} (changed since the checkpoint; left as it is)")
        print(f"now at: {visible(done.checkpoint.label)}", file=sys.stderr)
        return 0
    if not args.task:
        raise AssistError("no task given", 'assist agent "what to do", or --undo / --redo')
    agent = Agent(ws, _ask_in_terminal, auto_approve=args.yes or None, max_steps=args.max_steps)
    changed = False
    for event in agent.run(args.task):
        if isinstance(event, CallMade) and event.call.tool != "final":
            shown = ", ".join(f"{k}={str(v)[:60]!r}" for k, v in event.call.args.items())
            print(f"[{event.step}] {event.call.tool}({shown})", file=sys.stderr)
        elif isinstance(event, CallInvalid):
            print(f"[{event.step}] invalid call: {visible(event.error)}", file=sys.stderr)
        elif isinstance(event, ToolResult):
            lines = visible(event.text).splitlines()
            more = f"\n    … {len(lines) - 8} more lines" if len(lines) > 8 else ""
            print("    " + "\n    ".join(lines[:8]) + more, file=sys.stderr)
            changed = changed or event.checkpoint is not None
        elif isinstance(event, Finished):
            if event.reason == "answer":
                print(visible(event.text))
            else:
                print(f"assist: agent {event.reason}: {visible(event.text)}", file=sys.stderr)
            if changed:
                print("undo the agent's changes with: assist agent --undo", file=sys.stderr)
            return 0 if event.reason == "answer" else 1
    return 1


def _ask_in_terminal(request: ApprovalRequest) -> str:
    """y/n/a on stdin; end of input means no. What is shown is exactly what would happen."""
    rule = "-" * 70
    print(f"{rule}\n{request.shown_summary}" if request.kind == "edit" else f"{rule}\ncommand:",
          file=sys.stderr)  # fmt: skip
    print(request.shown if request.kind == "edit" else f"  {request.shown}", file=sys.stderr)
    if request.warning:
        print(f"WARNING: {request.shown_warning}", file=sys.stderr)
    choices = "[y]es / [n]o" if request.sensitive else f"[y]es / [n]o / [a]lways for {request.tool}"
    print(f"{rule}\n{'Run it' if request.kind == 'command' else 'Apply it'}? {choices}: ",
          end="", file=sys.stderr, flush=True)  # fmt: skip
    answer = sys.stdin.readline().strip().lower()
    return {"y": "yes", "yes": "yes", "a": "always", "always": "always"}.get(answer, "no")


def cmd_tui(args: argparse.Namespace) -> int:
    from assistant.tui import run_tui

    return run_tui(getattr(args, "path", None), model=getattr(args, "model", None))


def cmd_docstring(args: argparse.Namespace) -> int:
    import threading

    from assistant import docstrings

    paths = [str(Path(p).resolve()) for p in args.paths]
    ws = _workspace(args, args.repo or (paths[0] if paths else None))
    mode = "check" if args.check else "write" if args.write else "diff"
    cancel = threading.Event()
    progress = _ProgressLine()
    quiet = args.json or not sys.stderr.isatty()
    reports: list[docstrings.FileReport] = []

    def step(s: docstrings.Step) -> None:
        if not quiet:
            progress.show(f"{s.path} [{s.file_done + 1}/{s.file_total}]", s.done, s.total)

    interrupted = False
    try:
        for report in docstrings.run(
            ws, paths, generate_docs=mode != "check", write=mode == "write", update=args.update,
            changed_only=args.changed, style=args.style, cancel=cancel, on_step=step,
        ):  # fmt: skip
            reports.append(report)
            if report.targets and mode != "check" and not quiet:
                progress.show(f"{report.path} done", len(report.targets), len(report.targets))
            if mode == "diff" and report.changed and not args.json:
                sys.stdout.write(report.diff())
    except KeyboardInterrupt:
        cancel.set()  # files are written whole or not at all; stop after the current one
        interrupted = True
    done, total, percent = docstrings.coverage(reports)
    fail_under = ws.settings.docstring.fail_under if args.fail_under is None else args.fail_under
    outcomes = [o for r in reports for o in r.outcomes]
    missing = [(r.path, s) for r in reports for s in r.targets] if mode == "check" else []
    if args.json:
        print(json.dumps({
            "mode": mode,
            "coverage": {"documented": done, "total": total, "percent": round(percent, 1)},
            "documented_before": sum(r.documented for r in reports),
            "fail_under": fail_under,
            "files": [{"path": r.path, "total": r.total, "documented": r.documented,
                       "changed": r.changed, "written": r.written} for r in reports if r.total],
            "outcomes": [o.as_json() for o in outcomes],
            "missing": [{"path": p, "line": s.def_line, "kind": s.kind, "name": s.qualified_name}
                        for p, s in missing],
            "interrupted": interrupted,
        }))  # fmt: skip
    else:
        out = sys.stdout if mode == "check" else sys.stderr
        for path, s in missing:
            print(f"{path}:{s.def_line}: {s.kind} {s.qualified_name} has no doc", file=out)
        for o in outcomes:
            where = f"{o.path}:{o.line} {o.kind} {o.name}".rstrip()
            print(f"{o.status:10} {where}" + (f" ({o.reason})" if o.reason else ""), file=out)
        counts = {k: sum(1 for o in outcomes if o.status == k) for k in
                  ("documented", "skipped", "failed")}  # fmt: skip
        written = sum(1 for r in reports if r.written)
        line = f"coverage {percent:.1f}% ({done}/{total} documented)"
        if mode != "check":
            before = 100.0 * sum(r.documented for r in reports) / total if total else 100.0
            line = f"coverage {before:.1f}% before, {percent:.1f}% with these docs ({done}/{total})"
            line += "; " + ", ".join(f"{counts[k]} {k}" for k in counts)
            line += f"; {written} files written"
        print(line, file=out)
    if interrupted:
        print("assist: interrupted; files already written are complete", file=sys.stderr)
        return 130
    return 1 if mode == "check" and percent < fail_under else 0


def cmd_hook(args: argparse.Namespace) -> int:
    from assistant import git_hook

    start = Path(args.repo or Path.cwd())
    if args.action == "install":
        print(f"installed {git_hook.install(start, force=args.force)}")
        return 0
    if args.action == "uninstall":
        removed = git_hook.uninstall(start, force=args.force)
        print(f"removed {removed}" if removed else "no pre-commit hook installed")
        return 0
    result = git_hook.run(start, args.files or None)
    for line in git_hook.summary_lines(result):
        print(f"assist: {line}", file=sys.stderr)
    if not result.changed_files:
        return 0
    names = ", ".join(result.changed_files)
    # Under the pre-commit framework only the work tree is written (it re-stages itself).
    framework = os.environ.get("PRE_COMMIT") == "1"
    where = "in the work tree; `git add` them" if framework else "staged and in the work tree"
    print(f"assist: wrote docstrings into {names} ({where})", file=sys.stderr)
    if result.fail_on_change:
        review = "git diff" if framework else "git diff --cached"
        print(f"assist: review them ({review}) and commit again", file=sys.stderr)
        return 1
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

    p = sub.add_parser("complete", help="complete code at a position of a file (FIM)")
    p.add_argument("file")
    p.add_argument("--line", type=int, required=True, help="line, 1-based")
    p.add_argument("--col", type=int, required=True, help="column in characters, 0-based")
    _add_model_flag(p)
    p.add_argument("--json", action="store_true", help="the completion with timings and context")
    p.add_argument("--no-context", action="store_true", help="no repository context")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("lsp", help="run the language server (stdio) for VS Code, Neovim, ...")
    p.add_argument("--repo", metavar="PATH", help="repository (default: the editor's root)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    p.add_argument("--log", metavar="FILE", help="also log to this file")
    p.set_defaults(func=cmd_lsp)

    p = sub.add_parser("chat", help="ask one question about the code; sources listed at the end")
    p.add_argument("question")
    _add_model_flag(p)
    p.add_argument("--json", action="store_true", help="answer, sources and citations as JSON")
    p.add_argument("--resume", nargs="?", const="latest", metavar="ID",
                   help="continue the latest conversation (or the one with this id)")  # fmt: skip
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("agent", help="let the model read, edit and run, with your approval")
    p.add_argument("task", nargs="?", help="what to do, in words")
    _add_model_flag(p)
    p.add_argument(
        "--yes",
        action="store_true",
        help="approve edits and commands without asking (never hooks or tool config)",
    )
    p.add_argument("--max-steps", type=int, metavar="N", help="tool calls before it must stop")
    p.add_argument("--undo", action="store_true", help="undo the agent's last step")
    p.add_argument("--redo", action="store_true", help="redo the step undone last")
    p.add_argument(
        "--force",
        action="store_true",
        help="undo/redo even over later changes (they are kept under refs/assist/)",
    )
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("tui", help="open the terminal UI (also: `assist` with no command)")
    p.add_argument("path", nargs="?", help="repository (default: the one around cwd)")
    p.add_argument("--model", metavar="PATH", help="GGUF file to use (overrides config)")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("docstring", help="find and write missing docstrings / doc comments")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: all)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--check", action="store_true", help="report coverage; write nothing")
    how.add_argument("--diff", action="store_true", help="print a unified diff (the default)")
    how.add_argument("--write", action="store_true", help="write the docs into the files")
    p.add_argument("--changed", action="store_true", help="only symbols changed against HEAD")
    p.add_argument("--update", action="store_true", help="rewrite existing docs too")
    p.add_argument("--fail-under", type=float, metavar="N", help="--check exits 1 below N%%")
    p.add_argument("--style", choices=["auto", "google", "numpy", "rest"], default=None,
                   help="Python docstring style (default: docstring.style)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    _add_model_flag(p)
    p.set_defaults(func=cmd_docstring)

    p = sub.add_parser("hook", help="the git pre-commit hook that documents staged symbols")
    p.add_argument("action", choices=["install", "uninstall", "run"])
    p.add_argument("files", nargs="*", help="run: only these staged files (pre-commit passes them)")
    p.add_argument(
        "--force", action="store_true", help="replace or remove a hook assist did not write"
    )
    p.add_argument("--repo", metavar="PATH", help="repository (default: the one around cwd)")
    p.set_defaults(func=cmd_hook)

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
        from assistant.workspace import find_root

        # A person at a terminal inside a repository gets the TUI; scripts get the help.
        if sys.stdin.isatty() and sys.stdout.isatty() and find_root(Path.cwd()) is not None:
            func = cmd_tui
        else:
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
