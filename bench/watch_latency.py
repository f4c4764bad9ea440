"""Watcher figures: save-to-search latency, a 10,000-file branch switch, idle CPU.

Prints one JSON object. Everything runs in one process with a real watchdog observer on a git
repository in a temporary directory, as the TUI or the language server would.

    python bench/watch_latency.py [--saves 100] [--files 200] [--switch-files 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from conditions import conditions, finish

from assistant.watcher import Watcher
from assistant.workspace import Workspace


def git(root: Path, *args: str) -> None:
    cmd = ["git", "-C", str(root), "-c", "user.email=b@b", "-c", "user.name=b", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def cpu_seconds() -> float:
    """This process and its finished children (the parser workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def wait(check, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(0.005)
    raise TimeoutError


def save_latency(tmp: Path, n_files: int, saves: int) -> dict[str, float]:
    root = tmp / "saves"
    root.mkdir()
    git(root, "init", "-q")
    for i in range(n_files):
        (root / f"m{i:03d}.py").write_text(f"def base_{i}(x):\n    return x + {i}\n")
    ws = Workspace.open(root)
    for _ in ws.index():
        pass
    rng = random.Random(3)
    keyword_ms: list[float] = []
    vector_ms: list[float] = []
    with Watcher(ws, debounce=0.05):
        for i in range(saves):
            path = root / f"m{rng.randrange(n_files):03d}.py"
            name = f"probe_function_{i}"
            start = time.perf_counter()
            with path.open("a") as f:
                f.write(f"\n\ndef {name}(value):\n    return value * {i}\n")

            def found(mode: str, name: str = name) -> bool:
                return any(h.name == name for h in ws.search(name, mode=mode, k=10))  # type: ignore[arg-type]

            wait(lambda: found("keyword"))
            keyword_ms.append((time.perf_counter() - start) * 1000)
            wait(lambda: found("vector"))
            vector_ms.append((time.perf_counter() - start) * 1000)
    return {
        "saves": saves,
        "keyword_p50_ms": round(statistics.median(keyword_ms), 1),
        "keyword_p95_ms": round(percentile(keyword_ms, 95), 1),
        "vector_p50_ms": round(statistics.median(vector_ms), 1),
        "vector_p95_ms": round(percentile(vector_ms, 95), 1),
    }


def branch_switch(tmp: Path, n_files: int) -> dict[str, float]:
    root = tmp / "switch"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for i in range(n_files):
        d = root / f"d{i // 200:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.py").write_text(f"def main_{i}():\n    return {i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main")
    git(root, "checkout", "-q", "-b", "other")
    for i in range(n_files):
        (root / f"d{i // 200:03d}" / f"f{i:05d}.py").write_text(f"def other_{i}():\n    return 0\n")
    git(root, "commit", "-qam", "other")
    git(root, "checkout", "-q", "main")
    ws = Workspace.open(root)
    for _ in ws.index(vectors=False):
        pass
    with Watcher(ws, vectors=False, debounce=0.2) as watcher:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        git(root, "checkout", "-q", "other")
        checkout_s = time.perf_counter() - t0

        def settled() -> bool:
            row = ws.store.db.execute(
                "SELECT count(*) FROM symbols WHERE name LIKE 'other_%'"
            ).fetchone()
            return bool(row[0] == n_files)

        wait(settled, timeout=600)
        total_s = time.perf_counter() - t0
        wait(lambda: watcher.batches > 0, timeout=30)  # the batch's own bookkeeping
        cpu = cpu_seconds() - cpu0
        batches = watcher.batches
    # Idle: the same watcher setup, nothing changing, for ten seconds.
    with Watcher(ws, vectors=False):
        cpu0 = cpu_seconds()
        time.sleep(10)
        idle = (cpu_seconds() - cpu0) / 10
    return {
        "switch_files": n_files,
        "checkout_s": round(checkout_s, 2),
        "switch_to_settled_s": round(total_s, 2),
        "switch_cpu_s": round(cpu, 2),
        "switch_batches": batches,
        "idle_cpu_percent": round(idle * 100, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=100)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--switch-files", type=int, default=10_000)
    args = ap.parse_args()
    cond = conditions(saves=args.saves, files=args.files, switch_files=args.switch_files,
                      defaults="watcher and index defaults; one branch switch")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = save_latency(Path(tmp), args.files, args.saves)
        out.update(branch_switch(Path(tmp), args.switch_files))
    print(json.dumps({"conditions": finish(cond), **out}))


if __name__ == "__main__":
    main()
