"""How indexing and search scale with the repository: 1k, 10k and 50k+ files.

The files come from this machine (the interpreter's own library and site-packages, the
virtual environment's site-packages, /usr/include, global node modules): a fixed-seed sample
of each size, each size containing the smaller ones, hard-linked into a fresh git repository.
For each size, `assist index` runs in its own process and we report wall time, the peak RSS
of its largest process (wait4), the index's size on disk, and keyword search p50/p95 in
process; cost per file and per chunk show whether anything grows faster than linearly.

Queries: `--queries` distinct sentences (default 60) drawn with a fixed seed from the shared
retrieval benchmark's 686 (../shared/bench/retrieval/queries: the first sentence of a removed
doc comment), each searched once after one untimed warm-up search; p95 only from 40 samples up.

Vectors: embedding costs the same per chunk at any size (the model sees one batch at a time; its
speed is in docs/benchmarks.md, bench/embedding_speed.py). What could grow with size is
everything around it: finding the chunks still to embed, the vectors table, HNSW inserts and the
rebuild on load. `--vectors` measures exactly that at every size by running the real vector
phase (SQLite, HNSW, saving, reloading) with random unit vectors in place of the model's, which
would take hours on a laptop CPU at 50k files. Hybrid search is then timed against that index
with the query embedded by the real default embedder (MiniLM-L6, 384 dimensions like the random
vectors) inside the timed call, as `assist search` does: its latency is real, its ranking is not.

    python bench/scale_curve.py [--sizes 1000,10000,50000] [--vectors [--vectors-up-to 10000]]
                                [--queries 60]

One JSON line per size, then one with the run's conditions (commit, machine, load).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from conditions import conditions, finish, summary

from assistant.index.indexer import index_vectors
from assistant.index.search import SearchTimings, search
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
SHARED_QUERIES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "retrieval" / "queries"


def sample_queries(n: int, folder: Path = SHARED_QUERIES, seed: int = 19) -> list[str]:
    """`n` distinct query sentences from the shared retrieval benchmark, fixed seed."""
    texts = sorted({json.loads(line)["query"] for path in sorted(folder.glob("*.jsonl"))
                    for line in path.open(encoding="utf-8") if line.strip()})  # fmt: skip
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} distinct queries under {folder}; lower --queries")
    return random.Random(seed).sample(texts, n)


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


def search_times(
    ws: Workspace, mode: str, queries: list[str], embed: object = None
) -> dict[str, object]:
    """Each query once, in process, after one untimed warm-up search; in hybrid mode the
    query's embedding is inside the timed call (and reported apart as `embed_ms`)."""
    vectors = ws.vector_index() if mode == "hybrid" else None
    search(ws.store, "warm up the caches", k=10, mode=mode, vectors=vectors, embed=embed)  # type: ignore[arg-type]
    ms: list[float] = []
    embed_ms: list[float] = []
    for q in queries:
        timings = SearchTimings()
        t = time.perf_counter()
        search(ws.store, q, k=10, mode=mode, vectors=vectors, embed=embed, timings=timings)  # type: ignore[arg-type]
        ms.append((time.perf_counter() - t) * 1000)
        if mode == "hybrid":
            embed_ms.append(timings.embed_ms)
    out: dict[str, object] = {f"{mode}_ms": summary(ms)}
    if embed_ms:
        out["hybrid_query_embed_ms"] = summary(embed_ms)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--vectors", action="store_true", help="vector phase with random vectors")
    ap.add_argument("--vectors-up-to", type=int, default=0, help="only for sizes up to this")
    ap.add_argument("--keep", default="", help="build the repositories here and keep them")
    ap.add_argument("--queries", type=int, default=60, help="distinct queries, each once")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    queries = sample_queries(args.queries)
    cond = conditions(
        defaults="`assist index --no-vectors` with every default; vectors random (not the model)",
        queries=len(queries),
        query_source="shared retrieval benchmark, distinct, seed 19, each once, warm process",
        hybrid_query_embedding="real: the default embedder, inside the timed call",
        sizes=sizes,
    )
    embedder = None
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
            ws = Workspace.open(root)
            row["index_mb"] = du(ws.index_dir) / 1e6
            row.update(search_times(ws, "keyword", queries))
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
                if embedder is None:
                    from assistant.index.embeddings import load_embedder

                    embedder = load_embedder(None)
                    if embedder.dim != RandomVectors.dim:
                        raise SystemExit(f"the default embedder has {embedder.dim} dimensions")
                row.update(search_times(ws, "hybrid", queries,
                                        lambda q, e=embedder: e.embed([q])[0]))  # fmt: skip
                row["index_mb_with_vectors"] = du(ws.index_dir) / 1e6
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
        print(json.dumps({"conditions": finish(cond)}), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
