"""`assist model` and `config`: which model and settings are in effect, and why."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.cli.common import add_model_flag, settings_for
from assistant.untrusted import visible


def cmd_model(args: argparse.Namespace) -> int:
    from assistant.llm.card import build_card, format_card

    if args.action == "list":
        return _list_models(args)
    if args.action == "pull":
        return _pull(args)
    if args.action in ("hosts", "stop"):
        return _hosts(args)

    def step(line: str) -> None:
        print(f"assist: {line}", file=sys.stderr, flush=True)

    card = build_card(settings_for(args), measure=not args.no_bench, on_progress=step)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        print(format_card(card))
    return 0


def _pull(args: argparse.Namespace) -> int:
    from assistant.errors import AssistError
    from assistant.llm.pull import pull

    if not args.repo:
        raise AssistError("which repository?", "assist model pull OWNER/NAME-GGUF [--quant Q4_K_M]")
    path = pull(args.repo, file=args.file, quant=args.quant, revision=args.revision)
    print(path)
    print(f"assist: use it with --model {path.stem} (or model.path)", file=sys.stderr)
    return 0


def _hosts(args: argparse.Namespace) -> int:
    """`assist model hosts` / `stop`: this user's model hosts, and stopping them."""
    from assistant.llm.hosting import running_hosts, stop_hosts

    hosts = stop_hosts() if args.action == "stop" else running_hosts()
    if args.json:
        print(json.dumps(hosts, indent=2))
        return 0
    if not hosts:
        print("no model host is running" if args.action == "hosts" else "no model host to stop")
        return 0
    for h in hosts:
        print(_host_line(h, args.action == "stop"))
    return 0


def _host_line(h: dict[str, Any], stopping: bool) -> str:
    """One host in one line, whatever it answered."""
    if h["state"] == "serving":
        what = "serving"
        if stopping:
            what = "stopped" if h["outcome"] == "stopped" else f"{h['outcome']} (no answer)"
        return (f"pid {h['pid']}  {what} {h['name']}  {h['resident_bytes'] / 2**20:.0f} MB "
                f"resident  {h['requests']} requests  idle {h['idle_for_s']:.0f} of "
                f"{h['idle_s']:.0f} s  ({h['socket']})")  # fmt: skip
    who = f"pid {h['pid']}" if h.get("pid") else "no host"
    outcome = f"{h['outcome']}: " if stopping else ""
    return f"{who}  {outcome}{h['problem']}  ({h['socket']})"


def _list_models(args: argparse.Namespace) -> int:
    """`assist model list`: the GGUF files in the usual places, described from their headers."""
    from assistant.errors import AssistError
    from assistant.llm.catalog import find_models
    from assistant.llm.fim import detect_fim
    from assistant.llm.gguf import read_gguf
    from assistant.llm.source import choose_model

    settings = settings_for(args)
    try:
        in_use = Path(choose_model(settings).location).resolve()
    except (AssistError, OSError, RuntimeError):  # RuntimeError: a link loop
        in_use = None
    rows: list[dict[str, Any]] = []
    for found in find_models(settings.model.search_paths):
        try:
            used = found.path.resolve() == in_use
        except (OSError, RuntimeError):
            used = False
        row: dict[str, Any] = {"name": found.name, "path": str(found.path),
                               "source": found.source, "in_use": used}  # fmt: skip
        try:
            info = read_gguf(found.path)
            fim = detect_fim(info)
            row.update(size_bytes=info.file_size, quantization=info.quantization,
                       parameters=info.parameter_count, context_length=info.context_length,
                       architecture=info.architecture, fim=fim.family if fim else None)  # fmt: skip
        except AssistError as exc:
            row["error"] = exc.message
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no GGUF models found in the Hugging Face, LM Studio, Ollama, llama.cpp or "
              "GPT4All folders; add folders with model.search_paths")  # fmt: skip
        return 0
    for r in rows:
        mark = "*" if r["in_use"] else " "
        if "error" in r:
            print(visible(f"{mark} {r['name']}  ({r['source']})  unreadable: {r['error']}"))
            continue
        params = r["parameters"] / 1e9
        size = f"{params:.1f}B" if params >= 1 else f"{r['parameters'] / 1e6:.0f}M"
        print(f"{mark} {r['name']}  {r['quantization']}  {size} params  "
              f"{r['size_bytes'] / 2**30:.2f} GiB  ctx {r['context_length'] or '?'}  "
              f"FIM {r['fim'] or 'none'}  ({r['source']})")  # fmt: skip
    print("(* in use; pass a name to --model or model.path)")
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
    p = sub.add_parser(
        "model", help="the model card (metadata, FIM, GPU plan, speed), or `list` the models here"
    )
    p.add_argument(
        "action", nargs="?", choices=["list", "pull", "hosts", "stop"],
        help="list: GGUF files found here; pull REPO: download one from Hugging Face; hosts: "
        "the model hosts front-ends share; stop: stop them",
    )  # fmt: skip
    p.add_argument("repo", nargs="?", help="for pull: the repository, OWNER/NAME")
    p.add_argument("--file", help="for pull: this file of the repository")
    p.add_argument("--quant", default="Q4_K_M", help="for pull: quantization (default Q4_K_M)")
    p.add_argument("--revision", default="main", help="for pull: branch, tag or commit")
    add_model_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-bench", action="store_true", help="skip the speed measurement")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("config", help="show the effective settings and where each came from")
    add_model_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_config)
