"""The `assist` command line: parse, make one core call, print.

Each module here holds a few commands and registers their parsers. Imports stay lazy:
`assist --help` must not load llama_cpp, textual or hnswlib.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import __version__
from assistant.cli import conversation, editing, index_search, setup_info
from assistant.errors import AssistError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assist",
        description="A local-first coding assistant: index, search, complete, chat.",
    )
    parser.add_argument("--version", action="version", version=f"assist {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for commands in (index_search, editing, conversation, setup_info):
        commands.register(sub)
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
            func = conversation.cmd_tui
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
