"""What a benchmark prints beside its figures, so that a figure can be quoted with its
conditions: the commit it was measured at, the machine and its load, the command and the
settings, and timings summarised honestly (a p95 only over at least `MIN_P95` samples; below
that, the maximum is what there is).

    from conditions import conditions, finish, summary
    cond = conditions(settings={"model.host": True}, defaults="every default")
    ...
    print(json.dumps({"conditions": finish(cond), "latency_ms": summary(values), ...}))
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIN_P95 = 40
"""Fewer samples than this get no p95: with 12 pauses the "p95" is the largest of them."""


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def commit() -> str:
    """`git rev-parse --short HEAD`, with `+dirty` when the measured code (assistant/, lsp/,
    bench/) differs from it."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", "assistant", "lsp",
                   "bench")  # fmt: skip
    return f"{head}+dirty" if changed else head


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages: above the core count, something else was running."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def conditions(**settings: Any) -> dict[str, Any]:
    """The conditions at the start of a run; pass what the run chose (samples, model, whether
    the settings are the defaults) as keywords. `finish` adds the load at the end."""
    return {
        "commit": commit(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
        },
        "load_at_start": load(),
        "started": time.time(),
        **settings,
    }


def finish(cond: dict[str, Any]) -> dict[str, Any]:
    """The conditions with the load at the end and the run's wall time."""
    out = {k: v for k, v in cond.items() if k != "started"}
    out["load_at_end"] = load()
    out["wall_s"] = round(time.time() - float(cond.get("started", time.time())), 1)
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the samples at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: list[float], digits: int = 1) -> dict[str, Any]:
    """n, p50, p95 (None under `MIN_P95` samples) and max."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), digits),
        "p95": round(percentile(values, 95), digits) if len(values) >= MIN_P95 else None,
        "max": round(max(values), digits),
    }
