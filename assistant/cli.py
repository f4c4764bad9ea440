"""The `assist` command line: parse, make one core call, print.

Imports stay lazy: `assist --help` must not load llama_cpp, textual or hnswlib.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import __version__
from assistant.errors import AssistError


def _find_root(start: Path) -> Path | None:
    """The repository around `start`: the nearest directory holding `.git` or `.assist`."""
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists() or (candidate / ".assist").is_dir():
            return candidate
    return None


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from assistant.config import load_settings

    repo = getattr(args, "repo", None)
    root = Path(repo).resolve() if repo else _find_root(Path.cwd())
    overrides = {"model": {"path": getattr(args, "model", None)}}
    return load_settings(root, overrides=overrides)


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
    data = asdict(settings)
    origins = dict(settings.origins)
    if args.json:
        print(json.dumps({"settings": {"model": data["model"]}, "origins": origins}, indent=2))
        return 0
    for key, value in data["model"].items():
        where = origins.get(f"model.{key}", "default")
        print(f"model.{key} = {value!r}  # {where}")
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
