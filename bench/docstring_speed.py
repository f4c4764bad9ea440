"""Docstring figures: docstrings per minute with a model, and the pre-commit hook's cost.

Prints one JSON object. The docstring rate runs `assist docstring --write` through the core on a
temporary git repository of undocumented Python and JavaScript functions, with the embedded
default model unless --model names another. The hook time is the wall time of `git commit` on a
one-file change with nothing to document, with the hook installed and without it.

    python bench/docstring_speed.py [--functions 12] [--commits 5] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import conditions, finish

from assistant import git_hook
from assistant.docstrings import run as docstrings
from assistant.workspace import Workspace

NAMES = ["area", "perimeter", "scale", "clamp", "mean", "median", "slugify", "parse_port"]
BODIES = [
    "return width * height",
    "return 2 * (width + height)",
    "return [v * width for v in height]",
    "return max(width, min(height, 0))",
    "return sum(width) / max(1, len(width)) + height",
    "return sorted(width)[len(width) // 2] + height",
    'return "-".join(str(width).lower().split()) + str(height)',
    "return int(str(width).rsplit(':', 1)[-1]) + height",
]


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    cmd = ["git", "-C", str(root), "-c", "user.email=b@b", "-c", "user.name=b", *args]
    subprocess.run(cmd, check=True, capture_output=True, env=env)


def make_repo(root: Path, functions: int) -> None:
    git(root, "init", "-q")
    py = []
    js = []
    for i in range(functions):
        name, body = NAMES[i % len(NAMES)], BODIES[i % len(BODIES)]
        if i % 3 == 2:
            js.append(f"function {name}{i}(width, height) {{\n  return width + height;\n}}\n")
        else:
            py.append(f"def {name}_{i}(width, height):\n    {body}\n")
    (root / "shapes.py").write_text("\n\n".join(py))
    (root / "shapes.js").write_text("\n".join(js))
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")


def docstring_rate(root: Path, model: str | None) -> dict[str, object]:
    ws = Workspace.open(root, overrides={"model": {"path": model}})
    start = time.perf_counter()
    _ = ws.model
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    reports = list(docstrings.run(ws, [], generate_docs=True, write=True))
    seconds = time.perf_counter() - start
    outcomes = [o for r in reports for o in r.outcomes]
    done = sum(1 for o in outcomes if o.status == "documented")
    return {
        "model": ws.model.name,
        "fim": ws.model.fim_label,
        "model_load_s": round(load_s, 2),
        "symbols": len(outcomes),
        "documented": done,
        "failed": sum(1 for o in outcomes if o.status == "failed"),
        "seconds": round(seconds, 2),
        "docstrings_per_minute": round(60 * done / seconds, 1) if seconds else 0.0,
        "example": next((o.doc for o in outcomes if o.doc), ""),
    }


def hook_time(root: Path, commits: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSIST_", "GIT_"))}
    target = root / "shapes.py"

    def one_commit(i: int) -> float:
        target.write_text(target.read_text() + f"\n# change {i}\n")
        git(root, "add", "shapes.py", env=env)
        start = time.perf_counter()
        git(root, "commit", "-q", "-m", f"change {i}", env=env)
        return time.perf_counter() - start

    without = [one_commit(i) for i in range(commits)]
    git_hook.install(root)
    with_hook = [one_commit(commits + i) for i in range(commits)]
    return {
        "commits": commits,
        "commit_without_hook_s": round(statistics.median(without), 3),
        "commit_with_hook_s": round(statistics.median(with_hook), 3),
        "hook_s": round(statistics.median(with_hook) - statistics.median(without), 3),
        "hook_max_s": round(max(with_hook) - statistics.median(without), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--functions", type=int, default=12)
    parser.add_argument("--commits", type=int, default=5)
    parser.add_argument("--model", default=None, help="GGUF file (default: the embedded model)")
    args = parser.parse_args()
    cond = conditions(functions=args.functions, commits=args.commits,
                      model=args.model or "embedded default", defaults="every default")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root, args.functions)
        rate = docstring_rate(root, args.model)
        git(root, "commit", "-q", "-am", "docs")
        hook = hook_time(root, args.commits)
    result = {"conditions": finish(cond), "cpus": os.cpu_count(),
              "python": sys.version.split()[0], **rate, **hook}  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
