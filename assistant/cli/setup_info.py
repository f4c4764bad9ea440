"""`assist model` and `config`: which model and settings are in effect, and why."""

from __future__ import annotations

import argparse
import json
from typing import Any

from assistant.cli.common import add_model_flag, settings_for


def cmd_model(args: argparse.Namespace) -> int:
    from assistant.llm.card import build_card, format_card

    card = build_card(settings_for(args), measure=not args.no_bench)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        print(format_card(card))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    settings = settings_for(args)
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
