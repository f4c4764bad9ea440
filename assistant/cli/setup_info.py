"""`assist model` and `config`: which model and settings are in effect, and why."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.cli.common import add_model_flag, settings_for


def cmd_model(args: argparse.Namespace) -> int:
    from assistant.llm.card import build_card, format_card

    def step(line: str) -> None:
        print(f"assist: {line}", file=sys.stderr, flush=True)

    card = build_card(settings_for(args), measure=not args.no_bench, on_progress=step)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        print(format_card(card))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from assistant.config import config_files
    from assistant.errors import AssistError
    from assistant.llm.source import choose_model
    from assistant.workspace import find_root

    settings = settings_for(args)
    data = {k: v for k, v in asdict(settings).items() if k not in ("sources", "origins")}
    origins = dict(settings.origins)
    try:  # the model actually in use, not only what was configured
        choice = choose_model(settings)
        in_use = f"{choice.location} ({choice.origin})"
    except AssistError as exc:
        in_use = f"none: {exc.message}"
    repo = getattr(args, "repo", None)
    root = Path(repo).resolve() if repo else find_root(Path.cwd())
    files = [
        {"path": str(path), "what": what, "read": str(path) in " ".join(settings.sources)}
        for path, what in config_files(root)
    ]
    variables = [s for s in settings.sources if s.startswith("ASSIST_")]
    if args.json:
        print(json.dumps({"settings": data, "origins": origins, "model_in_use": in_use,
                          "files": files, "variables": variables}, indent=2))  # fmt: skip
        return 0
    print("# read, lowest precedence first (later ones win):")
    for f in files:
        print(f"#   {f['path']}  ({f['what']}{'' if f['read'] else '; not present'})")
    for name in variables:
        print(f"#   {name}  (environment)")
    print(f"# model in use: {in_use}")
    for section, values in data.items():
        for key, value in values.items():
            where = origins.get(f"{section}.{key}", "default")
            print(f"{section}.{key} = {value!r}  # {where}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("model", help="show the model card: metadata, FIM mode, measured speed")
    add_model_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-bench", action="store_true", help="skip the speed measurement")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("config", help="show the effective settings and where each came from")
    add_model_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_config)
