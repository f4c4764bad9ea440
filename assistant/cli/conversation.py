"""`assist chat`, `agent` and `tui`: asking, delegating, and the terminal UI."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from assistant.cli.common import StatusLine, add_model_flag, workspace_for
from assistant.errors import AssistError

if TYPE_CHECKING:
    from assistant.agent.toolbox import ApprovalRequest
    from assistant.llm.protocol import GenerationStats


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.chat.session import ChatSession

    ws = workspace_for(args, args.repo)
    if not ws.has_index():
        raise AssistError(f"{ws.root}: no index yet", "run `assist index` first")
    if args.resume:
        session = ChatSession.resume(ws, None if args.resume == "latest" else args.resume)
    else:
        session = ChatSession(ws)

    from assistant.untrusted import visible  # model and repo text may hold terminal escapes

    status = StatusLine()

    def show(piece: str) -> None:
        status.clear()
        sys.stdout.write(visible(piece))
        sys.stdout.flush()

    def progress(stats: GenerationStats) -> None:
        if stats.phase == "prompt":
            status.show(stats.describe())

    demo = ws.demo_note()
    if demo:
        print(f"assist: note: {demo}", file=sys.stderr)
    status.show("finding the code to send …")
    turn = session.ask(args.question, on_text=None if args.json else show, progress=progress)
    status.clear()
    if args.json:
        print(json.dumps({"session": session.id, **turn.as_json(), "demo_model": bool(demo)}))
        return 0
    print("\n")
    if turn.stopped_by == "length":
        print(f"(cut at the token limit: chat.max_tokens = {ws.settings.chat.max_tokens})")
    if turn.grounding is not None:
        mark = "" if turn.grounding.grounded else "WARNING: "
        print(f"{mark}{visible(turn.grounding.describe())}")
    print("Sources:" if turn.sources else "Sources: none (no indexed code matched)")
    cited = {c.source for c in turn.citations}
    for s in turn.sources:
        mark = "  cited" if s.n in cited else ""
        where = visible(f"{s.path}:{s.start_line}-{s.end_line}  {s.kind}  {s.name}")
        print(f"  [{s.n}] {where}{mark}")
    for c in turn.citations:
        if c.source is None:
            print(f"  cited but not sent: {visible(c.written or c.location)}")
    print(f"(conversation {session.id}; continue it with --resume)", file=sys.stderr)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from assistant.agent.checkpoints import Checkpoints
    from assistant.agent.loop import Agent, CallInvalid, CallMade, Finished, ToolResult
    from assistant.untrusted import visible  # repo and model text may hold terminal escapes

    ws = workspace_for(args, args.repo)
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
        elif isinstance(event, Finished):
            if event.reason == "answer":
                print(visible(event.text))
            else:
                print(f"assist: agent {event.reason}: {visible(event.text)}", file=sys.stderr)
            print(visible(event.summary("assist agent --undo")), file=sys.stderr)
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


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help="ask one question about the code; sources listed at the end")
    p.add_argument("question")
    add_model_flag(p)
    p.add_argument("--json", action="store_true", help="answer, sources and citations as JSON")
    p.add_argument("--resume", nargs="?", const="latest", metavar="ID",
                   help="continue the latest conversation (or the one with this id)")  # fmt: skip
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("agent", help="let the model read, edit and run, with your approval")
    p.add_argument("task", nargs="?", help="what to do, in words")
    add_model_flag(p)
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
