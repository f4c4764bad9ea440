"""Index speed on the Python standard library, against universal-ctags in the same run.

Prints one JSON object. Figures are ratios against baselines measured in this same process
(ctags on the same files; a bare llama-cpp-python embedding loop over the same texts), because
these machines are noisy.

    python bench/index_speed.py [--embed-sample 400] [--queries 200] [--cli-runs 30] [--vectors N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from assistant.index.indexer import IndexReport
from assistant.workspace import Workspace


def copy_stdlib(dest: Path) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    ignore = shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc")
    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    return dest


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embed-sample", type=int, default=400)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cli-runs", type=int, default=30)
    ap.add_argument("--vectors", type=int, default=5000, help="chunks to embed for search")
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lib = copy_stdlib(Path(tmp) / "Lib")
        files = [p for p in lib.rglob("*") if p.is_file()]
        py = [p for p in files if p.suffix == ".py"]
        out["files"] = len(files)
        out["python_files"] = len(py)
        out["python_lines"] = sum(p.read_bytes().count(b"\n") for p in py)

        t = time.perf_counter()
        subprocess.run(["ctags", "-R", "-f", str(Path(tmp) / "tags"), str(lib)], check=True,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        ctags_s = time.perf_counter() - t

        ws = Workspace.open(lib)
        t = time.perf_counter()
        report = None
        for item in ws.index(vectors=False):
            if isinstance(item, IndexReport):
                report = item
        index_s = time.perf_counter() - t
        assert report is not None
        counts = ws.store.counts()
        out.update(
            ctags_s=round(ctags_s, 3),
            assist_keyword_index_s=round(index_s, 3),
            ratio_vs_ctags=round(index_s / ctags_s, 2),
            indexed_files=counts["files"],
            symbols=counts["symbols"],
            chunks=counts["chunks"],
            skipped=len(report.skipped),
        )

        # Embedding: the pipeline against a bare llama-cpp-python loop over the same texts.
        from llama_cpp import Llama

        from assistant.index.indexer import _embedding_text

        rows = ws.store.chunks(list(range(1, args.embed_sample + 1)))
        texts = [_embedding_text(r) for r in rows.values()]
        embedder = ws.embedder
        tokens = sum(len(embedder.tokens(t)) for t in texts)
        t = time.perf_counter()
        embedder.embed(texts)
        pipeline_s = time.perf_counter() - t
        bare = Llama(str(embedder.path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                     verbose=False)  # fmt: skip
        t = time.perf_counter()
        for text in texts:
            bare.embed(text, truncate=True)
        bare_s = time.perf_counter() - t
        out.update(
            embed_texts=len(texts),
            embed_tokens=tokens,
            pipeline_chunks_per_s=round(len(texts) / pipeline_s, 1),
            pipeline_tokens_per_s=round(tokens / pipeline_s),
            bare_chunks_per_s=round(len(texts) / bare_s, 1),
            pipeline_vs_bare=round(bare_s / pipeline_s, 2),
        )

        # Search latency inside a running process. Embedding all ~30k chunks of the standard
        # library takes a quarter of an hour on 2 cores; --vectors N embeds the first N.
        import threading

        from assistant.index.indexer import Progress

        stop = threading.Event()
        for item in ws.index(vectors=True, cancel=stop):
            if isinstance(item, Progress) and item.phase == "embed" and item.done >= args.vectors:
                stop.set()
        out["vectors"] = ws.store.counts()["vectors"]
        queries = [r.text.split("\n")[0][:80] for r in ws.store.chunks(
            list(range(1, args.queries * 7, 7))).values()][: args.queries]  # fmt: skip
        for mode in ("keyword", "hybrid"):
            ms = []
            for q in queries:
                t = time.perf_counter()
                ws.search(q, mode=mode)  # type: ignore[arg-type]
                ms.append((time.perf_counter() - t) * 1000)
            out[f"{mode}_search_p50_ms"] = round(statistics.median(ms), 2)
            out[f"{mode}_search_p95_ms"] = round(percentile(ms, 95), 2)

        # The whole `assist search` command, interpreter start included, warm index.
        for mode in ("keyword", "hybrid"):
            ms = []
            for q in queries[: args.cli_runs]:
                t = time.perf_counter()
                command = [sys.executable, "-m", "assistant", "search", q, "--repo", str(lib)]
                command += ["--mode", mode, "--json"]
                subprocess.run(command, check=True, capture_output=True)
                ms.append((time.perf_counter() - t) * 1000)
            out[f"cli_{mode}_p50_ms"] = round(statistics.median(ms), 1)
            out[f"cli_{mode}_p95_ms"] = round(percentile(ms, 95), 1)

        size = sum(p.stat().st_size for p in (lib / ".assist").iterdir() if p.is_file())
        out["index_bytes"] = size
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["peak_child_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
        out["cpus"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
