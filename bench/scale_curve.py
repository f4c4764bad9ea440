"""How indexing and search scale with the repository: 1k, 10k and 50k+ files.

The files come from this machine (the interpreter's own library and site-packages, the
virtual environment's site-packages, /usr/include, global node modules): a fixed-seed sample
of each size, each size containing the smaller ones, hard-linked into a fresh git repository.
For each size, `assist index` runs in its own process and we report wall time, the peak RSS
of its largest process (wait4), the index's size on disk, and keyword search p50/p95 in
process; cost per file and per chunk show whether anything grows faster than linearly.

Vectors: embedding costs the same per chunk at any size (the model sees one batch at a time; its
speed is in docs/benchmarks.md, bench/embedding_speed.py). What could grow with size is
everything around it: finding the chunks still to embed, the vectors table, HNSW inserts and the
rebuild on load. `--vectors` measures exactly that at every size by running the real vector
phase (SQLite, HNSW, saving, reloading) with random unit vectors in place of the model's, which
would take hours on a laptop CPU at 50k files. Hybrid search p95 is then measured against that
index.

    python bench/scale_curve.py [--sizes 1000,10000,50000] [--vectors [--vectors-up-to 10000]]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from assistant.index.indexer import index_vectors
from assistant.index.search import search
from assistant.workspace import Workspace

SOURCES = [
    Path(sysconfig.get_paths()["stdlib"]),
    Path(sysconfig.get_paths()["purelib"]),
    Path("/usr/include"),
    Path("/usr/lib/node_modules"),
    Path("/usr/lib/python3/dist-packages"),
]
SKIP_DIRS = {"__pycache__", ".git", ".assist"}
SKIP_SUFFIXES = {".pyc", ".so", ".gz", ".whl", ".zip", ".a", ".o"}
QUERIES = [
    "parse a configuration file", "open a socket connection", "compress data",
    "retry on failure", "read json from a file", "format a date", "thread pool",
    "hash a password", "escape html", "split a path into parts", "http request headers",
    "load a module by name", "merge two dictionaries", "encode base64", "lock a file",
    "random number generator", "walk a directory tree", "parse command line arguments",
    "convert to unicode", "compare version strings",
]  # fmt: skip


def pool() -> list[tuple[str, Path]]:
    """(name in the test repository, source file) for every candidate file, sorted."""
    out: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for n, base in enumerate(SOURCES):
        if not base.is_dir() or base.resolve() in seen:
            continue
        seen.add(base.resolve())
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix in SKIP_SUFFIXES or path.is_symlink():
                    continue
                out.append((f"src{n}/{path.relative_to(base)}", path))
    return out


def materialise(files: list[tuple[str, Path]], dest: Path) -> None:
    dest.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    for rel, src in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def index_process(root: Path) -> dict[str, float]:
    """`assist index --no-vectors` in its own process: wall time and peak RSS (largest process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "index", str(root), "--no-vectors", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"assist index failed on {root}")
    summary = json.loads(out)
    return {"index_s": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, **summary}


class RandomVectors:
    """Stands in for the embedding model in the vector-phase scaling run only (see the module
    docstring); everything else in the phase is the real code."""

    identity = "random-unit-384"
    dim = 384

    def __init__(self) -> None:
        self.rng = np.random.default_rng(19)

    def embed(self, texts: list[str], cancel: threading.Event | None = None) -> np.ndarray:
        m = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def search_times(ws: Workspace, mode: str, embed: object = None) -> dict[str, float]:
    ms: list[float] = []
    vectors = ws.vector_index() if mode == "hybrid" else None
    for _ in range(3):
        for q in QUERIES:
            t = time.perf_counter()
            search(ws.store, q, k=10, mode=mode, vectors=vectors, embed=embed)  # type: ignore[arg-type]
            ms.append((time.perf_counter() - t) * 1000)
    return {f"{mode}_p50_ms": statistics.median(ms), f"{mode}_p95_ms": percentile(ms, 95)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--vectors", action="store_true", help="vector phase with random vectors")
    ap.add_argument("--vectors-up-to", type=int, default=0, help="only for sizes up to this")
    ap.add_argument("--keep", default="", help="build the repositories here and keep them")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    files = pool()
    random.Random(19).shuffle(files)
    print(json.dumps({"pool_files": len(files)}), flush=True)
    if len(files) < max(sizes):
        raise SystemExit(f"only {len(files)} files on this machine; lower --sizes")
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="assist-scale-"))
    try:
        for size in sizes:
            root = base / f"repo-{size}"
            if root.exists():
                shutil.rmtree(root)
            materialise(files[:size], root)
            row: dict[str, object] = {"sample": size}
            row.update(index_process(root))
            row["index_mb"] = du(root / ".assist") / 1e6
            ws = Workspace.open(root)
            row.update(search_times(ws, "keyword"))
            if args.vectors and (not args.vectors_up_to or size <= args.vectors_up_to):
                fake = RandomVectors()
                t = time.perf_counter()
                for step in index_vectors(ws.store, fake, ws.hnsw_path):  # type: ignore[arg-type]
                    if isinstance(step, int):
                        row["vectors"] = step
                row["vector_phase_s"] = time.perf_counter() - t
                ws.close()
                ws = Workspace.open(root)
                t = time.perf_counter()
                ws.vector_index()
                row["vector_load_s"] = time.perf_counter() - t
                row.update(search_times(ws, "hybrid", lambda q, f=fake: f.embed([q])[0]))
                row["index_mb_with_vectors"] = du(root / ".assist") / 1e6
            chunks = int(row.get("chunks", 0)) or 1
            row["ms_per_file"] = 1000 * float(row["index_s"]) / int(row["files"])
            row["us_per_chunk"] = 1e6 * float(row["index_s"]) / chunks
            if "vector_phase_s" in row:
                row["vector_us_per_chunk"] = 1e6 * float(row["vector_phase_s"]) / chunks
            ws.close()
            row.pop("skipped", None)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)  # fmt: skip
            if not args.keep:
                shutil.rmtree(root)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
