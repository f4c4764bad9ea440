"""Embedding throughput: `Embedder.embed` in batches against a bare llama-cpp-python loop.

    python bench/embedding_speed.py [--texts 200] [--lines 30] [--configs NAME,...]

The texts are chunks of this repository's own Python files (code-sized, ~100-400 tokens).
Each configuration is compared with the bare loop over the same texts cut to the same number of
tokens (llama-cpp-python's own loop cuts at n_batch, 512 by default, while the pipeline cuts at
256 for MiniLM: a ratio across cuts would compare different amounts of work). Prints JSON with
wall and CPU seconds (the CPU figure is steadier on a shared machine) and the run's conditions;
figures are for reading, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conditions import conditions, finish

from assistant.index.embeddings import Embedder
from assistant.index.minilm import default_embedding_model_path, minilm_max_tokens

ROOT = Path(__file__).resolve().parent.parent


def code_chunks(n: int, lines: int) -> list[str]:
    chunks: list[str] = []
    files = sorted((ROOT / "assistant").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    for path in files:
        text = path.read_text(encoding="utf-8").splitlines()
        for start in range(0, len(text), lines):
            chunk = "\n".join(text[start : start + lines]).strip()
            if chunk:
                chunks.append(f"{path.relative_to(ROOT)}\n{chunk}")
            if len(chunks) == n:
                return chunks
    return chunks


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_embedder(embedder: Embedder, texts: list[str], per_call: int) -> tuple[float, float]:
    embedder.embed(texts[:8])  # warm-up

    def run() -> None:
        for i in range(0, len(texts), per_call):
            embedder.embed(texts[i : i + per_call])

    return _timed(run)


def time_bare_loop(
    path: Path, texts: list[str], flash_attn: bool, cut: int
) -> tuple[float, float, int]:
    """llama-cpp-python as documented: `Llama.embed(text)` once per text, each cut at `cut`
    tokens (`truncate=True` cuts at n_batch)."""
    import llama_cpp
    from llama_cpp import Llama

    with contextlib.redirect_stderr(io.StringIO()):
        llama = Llama(model_path=str(path), embedding=True, n_ctx=cut, n_batch=cut,
                      n_ubatch=cut, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                      flash_attn=flash_attn, verbose=True)  # fmt: skip
    llama_cpp._logger.set_verbose(False)
    llama.verbose = False
    llama.embed(texts[0])
    tokens = sum(min(len(llama.tokenize(t.encode())), cut) for t in texts)

    def run() -> None:
        for text in texts:
            llama.embed(text, normalize=True)

    wall, cpu = _timed(run)
    llama.close()
    return wall, cpu, tokens


def _rates(n_texts: int, tokens: int, wall: float, cpu: float) -> dict[str, float]:
    return {
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "texts_per_s": round(n_texts / wall, 1),
        "tokens_per_s": round(tokens / wall),
    }


CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},  # batch 512, flash attention, texts cut to 256 tokens
    "cut512": {"max_tokens": 512},
    "no-flash-attn": {"flash_attn": False},
    "batch1024": {"batch_tokens": 1024},
    "batch2048": {"batch_tokens": 2048},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--lines", type=int, default=30, help="lines of code per text")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    parser.add_argument("--per-call", default="32,10000", help="texts per embed() call")
    args = parser.parse_args()

    texts = code_chunks(args.texts, args.lines)
    path = default_embedding_model_path()
    limit = minilm_max_tokens()
    names = args.configs.split(",")
    cond = conditions(
        texts=len(texts),
        lines_per_text=args.lines,
        defaults="config `default` is the pipeline's defaults; the bare loops are "
        "llama-cpp-python's (flash attention off) at the same cut",
        configs=names,
    )
    report: dict[str, Any] = {"model": path.name, "cpu_count": os.cpu_count(),
                              "machine": platform.machine(), "texts": len(texts)}  # fmt: skip
    cuts = sorted({int(CONFIGS[n].get("max_tokens", limit)) for n in names})
    bare: dict[str, Any] = {}
    for cut in cuts:
        for fa in (False, True):
            wall, cpu, tokens = time_bare_loop(path, texts, fa, cut)
            bare[f"cut={cut},flash_attn={fa}"] = _rates(len(texts), tokens, wall, cpu)
    report["bare_llama_embed_per_text"] = bare
    runs = []
    for name in names:
        kwargs = dict(CONFIGS[name])
        kwargs.setdefault("max_tokens", limit)
        base = bare[f"cut={kwargs['max_tokens']},flash_attn=False"]["wall_s"]
        embedder = Embedder.load(path, **kwargs)
        tokens = sum(len(embedder.tokens(t)) for t in texts)
        for per_call in (int(x) for x in args.per_call.split(",")):
            wall, cpu = time_embedder(embedder, texts, per_call)
            runs.append({"config": name, "cut": kwargs["max_tokens"],
                         "texts_per_call": min(per_call, len(texts)),
                         **_rates(len(texts), tokens, wall, cpu),
                         "speedup_vs_bare_same_cut_wall": round(base / wall, 2)})  # fmt: skip
        embedder.close()
    report["embedder"] = runs
    print(json.dumps({"conditions": finish(cond), **report}, indent=2))


if __name__ == "__main__":
    main()
