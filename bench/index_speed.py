"""Index speed on the Python standard library, against universal-ctags in the same run.

Prints one JSON object, with the run's conditions (commit, machine, load, samples). Figures are
ratios against baselines measured in this same process (ctags on the same files; a bare
llama-cpp-python embedding loop over the same texts cut to the same number of tokens as the
pipeline's, 256 by default), because these machines are noisy.

Search latency is measured on the index with every chunk embedded (`--vectors all`, the
default: about an hour on 2 cores); `--vectors N` stops after N chunks for a quick look, and the
output then says `vectors_cover_all: false` (hybrid search then ranks the unembedded rest by
keywords, a different path from a finished index's). Queries are the first line of every 7th
chunk (distinct code lines, not sentences), each once; p95 only from 40 samples up.

    python bench/index_speed.py [--embed-sample 400] [--queries 200] [--cli-runs 40]
                                [--vectors all|N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from conditions import conditions, finish, summary

from assistant.index.indexer import IndexReport
from assistant.workspace import Workspace


def copy_stdlib(dest: Path) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    ignore = shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc")
    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embed-sample", type=int, default=400)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cli-runs", type=int, default=40)
    ap.add_argument("--vectors", default="all", help="chunks to embed for search: all or N")
    args = ap.parse_args()
    limit = 0 if args.vectors == "all" else int(args.vectors)
    cond = conditions(
        defaults="every index and search default; the bare loop cut to the pipeline's tokens",
        embed_sample=args.embed_sample,
        queries=args.queries,
        cli_runs=args.cli_runs,
        vectors=args.vectors,
        search="in process after indexing (warm), then `assist search` processes (warm index)",
    )
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

        # Embedding: the pipeline against a bare llama-cpp-python loop over the same texts, both
        # cut to the same number of tokens (the pipeline's default cut, 256 for MiniLM): a bare
        # loop at llama-cpp-python's own 512 would read more tokens per text than the pipeline.
        from llama_cpp import Llama

        from assistant.index.indexer import _embedding_text

        rows = ws.store.chunks(list(range(1, args.embed_sample + 1)))
        texts = [_embedding_text(r) for r in rows.values()]
        embedder = ws.embedder
        cut = embedder.max_tokens
        tokens = sum(len(embedder.tokens(t)) for t in texts)
        t = time.perf_counter()
        embedder.embed(texts)
        pipeline_s = time.perf_counter() - t
        # `Llama.embed(truncate=True)` cuts each text at n_batch tokens.
        bare = Llama(str(embedder.path), embedding=True, n_ctx=cut, n_batch=cut, n_ubatch=cut,
                     verbose=False)  # fmt: skip
        bare_tokens = sum(min(len(bare.tokenize(t.encode())), cut) for t in texts)
        t = time.perf_counter()
        for text in texts:
            bare.embed(text, truncate=True)
        bare_s = time.perf_counter() - t
        out.update(
            embed_texts=len(texts),
            embed_cut_tokens=cut,
            embed_tokens=tokens,
            bare_tokens=bare_tokens,
            pipeline_chunks_per_s=round(len(texts) / pipeline_s, 1),
            pipeline_tokens_per_s=round(tokens / pipeline_s),
            bare_chunks_per_s=round(len(texts) / bare_s, 1),
            bare_tokens_per_s=round(bare_tokens / bare_s),
            pipeline_vs_bare=round(bare_s / pipeline_s, 2),
        )

        # Search latency inside a running process, on the index with every chunk embedded (about
        # an hour for the ~90k chunks of the standard library on 2 cores); --vectors N stops
        # after N for a quick look.
        import threading

        from assistant.index.indexer import Progress

        stop = threading.Event()
        t = time.perf_counter()
        for item in ws.index(vectors=True, cancel=stop):
            if (limit and isinstance(item, Progress) and item.phase == "embed"
                    and item.done >= limit):  # fmt: skip
                stop.set()
        counts = ws.store.counts()
        out["vector_phase_s"] = round(time.perf_counter() - t, 1)
        out["vectors"] = counts["vectors"]
        out["vectors_cover_all"] = counts["vectors"] >= counts["chunks"]
        queries = [r.text.split("\n")[0][:80] for r in ws.store.chunks(
            list(range(1, args.queries * 7, 7))).values()][: args.queries]  # fmt: skip
        out["distinct_queries"] = len(set(queries))
        for mode in ("keyword", "hybrid"):
            ms = []
            for q in queries:
                t = time.perf_counter()
                ws.search(q, mode=mode)  # type: ignore[arg-type]
                ms.append((time.perf_counter() - t) * 1000)
            out[f"{mode}_search_ms"] = summary(ms, 2)

        # The whole `assist search` command, interpreter start included, warm index.
        for mode in ("keyword", "hybrid"):
            ms = []
            for q in queries[: args.cli_runs]:
                t = time.perf_counter()
                command = [sys.executable, "-m", "assistant", "search", q, "--repo", str(lib)]
                command += ["--mode", mode, "--json"]
                subprocess.run(command, check=True, capture_output=True)
                ms.append((time.perf_counter() - t) * 1000)
            out[f"cli_{mode}_ms"] = summary(ms)

        size = sum(p.stat().st_size for p in ws.index_dir.iterdir() if p.is_file())
        out["index_bytes"] = size
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["peak_child_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
        out["cpus"] = os.cpu_count()
    print(json.dumps({"conditions": finish(cond), **out}))


if __name__ == "__main__":
    main()
