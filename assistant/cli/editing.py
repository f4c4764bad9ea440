"""`assist complete`, `lsp`, `docstring` and `hook`: the model working in your files."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from assistant.cli.common import ProgressLine, add_model_flag, workspace_for


def cmd_complete(args: argparse.Namespace) -> int:
    from assistant.completion.engine import complete_file
    from assistant.untrusted import visible  # model output may hold terminal escapes

    no_context = {"completion": {"context_tokens": 0}} if args.no_context else None
    ws = workspace_for(args, args.repo or str(Path(args.file).resolve().parent), no_context)

    def show(piece: str) -> None:
        sys.stdout.write(visible(piece))
        sys.stdout.flush()

    demo = ws.demo_note()
    if demo:
        print(f"assist: note: {demo}", file=sys.stderr)
    result = complete_file(ws, args.file, args.line, args.col, on_text=None if args.json else show)
    if args.json:
        print(json.dumps({**result.as_json(), "demo_model": demo is not None}))
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
    return serve(repo=args.repo, tcp=args.tcp)


def cmd_docstring(args: argparse.Namespace) -> int:
    import threading

    from assistant.docstrings import run as docstrings
    from assistant.docstrings.generate import FileReport

    paths = [str(Path(p).resolve()) for p in args.paths]
    ws = workspace_for(args, args.repo or (paths[0] if paths else None))
    mode = "check" if args.check else "write" if args.write else "diff"
    cancel = threading.Event()
    progress = ProgressLine()
    quiet = args.json or not sys.stderr.isatty()
    # On a pipe (CI logs, `| tee`) a self-rewriting line shows nothing: one line per file.
    per_file = not args.json and not sys.stderr.isatty() and mode != "check"
    started = time.monotonic()
    reports: list[FileReport] = []

    def step(s: docstrings.Step) -> None:
        if not quiet:
            label = f"{s.path} [{s.file_done + 1}/{s.file_total}] {s.done}/{s.total}"
            progress.text(s.path, label, s.done, s.total)

    interrupted = False
    try:
        for report in docstrings.run(
            ws, paths, generate_docs=mode != "check", write=mode == "write", update=args.update,
            changed_only=args.changed, style=args.style, cancel=cancel, on_step=step,
        ):  # fmt: skip
            reports.append(report)
            if report.targets and mode != "check" and not quiet:
                n = len(report.targets)
                progress.text(report.path, f"{report.path} done", n, n)
            if per_file and report.targets:
                tally = {k: sum(1 for o in report.outcomes if o.status == k)
                         for k in ("documented", "skipped", "failed")}  # fmt: skip
                files_done = sum(1 for r in reports if r.targets)
                elapsed = time.monotonic() - started
                print(f"[{files_done}] {report.path}: {tally['documented']} documented, "
                      f"{tally['skipped']} skipped, {tally['failed']} failed ({elapsed:.0f} s)",
                      file=sys.stderr, flush=True)  # fmt: skip
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
    return git_hook.run(start, args.files or None)


def register(sub: Any) -> None:
    p = sub.add_parser("complete", help="complete code at a position of a file (FIM)")
    p.add_argument("file")
    p.add_argument("--line", type=int, required=True, help="line, 1-based")
    p.add_argument("--col", type=int, required=True, help="column in characters, 0-based")
    add_model_flag(p)
    p.add_argument("--json", action="store_true", help="the completion with timings and context")
    p.add_argument("--no-context", action="store_true", help="no repository context")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("lsp", help="run the language server (stdio) for VS Code, Neovim, ...")
    p.add_argument("--repo", metavar="PATH", help="repository (default: the editor's root)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    p.add_argument("--log", metavar="FILE", help="also log to this file")
    p.set_defaults(func=cmd_lsp)

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
    add_model_flag(p)
    p.set_defaults(func=cmd_docstring)

    p = sub.add_parser("hook", help="the git pre-commit hook that documents staged symbols")
    p.add_argument("action", choices=["install", "uninstall", "run"])
    p.add_argument("files", nargs="*", help="run: only these staged files (pre-commit passes them)")
    p.add_argument(
        "--force", action="store_true", help="replace or remove a hook assist did not write"
    )
    p.add_argument("--repo", metavar="PATH", help="repository (default: the one around cwd)")
    p.set_defaults(func=cmd_hook)
