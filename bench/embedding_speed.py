"""Embedding throughput: `Embedder.embed` in batches against a bare llama-cpp-python loop.

    python bench/embedding_speed.py [--texts 200] [--lines 30] [--batch-tokens 512,1024,2048]

The texts are chunks of this repository's own Python files (code-sized, ~100-400 tokens).
Prints JSON; figures are for reading, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time
from pathlib import Path

from assistant.embeddings import Embedder, load_embedder

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


def time_embedder(embedder: Embedder, texts: list[str], per_call: int) -> float:
    embedder.embed(texts[:8])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), per_call):
        embedder.embed(texts[i : i + per_call])
    return time.perf_counter() - start


def time_bare_loop(path: Path, texts: list[str]) -> float:
    import llama_cpp
    from llama_cpp import Llama

    with contextlib.redirect_stderr(io.StringIO()):
        llama = Llama(model_path=str(path), embedding=True, n_ctx=512, n_batch=512,
                      n_ubatch=512, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                      verbose=True)  # fmt: skip
    llama_cpp._logger.set_verbose(False)
    llama.verbose = False
    llama.embed(texts[0])
    start = time.perf_counter()
    for text in texts:
        llama.embed(text, normalize=True)
    elapsed = time.perf_counter() - start
    llama.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--lines", type=int, default=30, help="lines of code per text")
    parser.add_argument("--batch-tokens", default="512,1024,2048,4096")
    parser.add_argument("--per-call", default="32,10000", help="texts per embed() call")
    args = parser.parse_args()

    texts = code_chunks(args.texts, args.lines)
    default = load_embedder()
    tokens = sum(len(default.tokens(t)) for t in texts)
    path = default.path
    default.close()

    def rates(seconds: float) -> dict[str, float]:
        return {"seconds": round(seconds, 3), "chunks_per_s": round(len(texts) / seconds, 1),
                "tokens_per_s": round(tokens / seconds)}  # fmt: skip

    bare = time_bare_loop(path, texts)
    runs = []
    for batch_tokens in (int(x) for x in args.batch_tokens.split(",")):
        embedder = load_embedder(batch_tokens=batch_tokens)
        for per_call in (int(x) for x in args.per_call.split(",")):
            seconds = time_embedder(embedder, texts, per_call)
            runs.append(
                {
                    "batch_tokens": batch_tokens,
                    "texts_per_call": min(per_call, len(texts)),
                    **rates(seconds),
                    "speedup_vs_bare": round(bare / seconds, 2),
                }
            )
        embedder.close()
    report = {
        "model": path.name,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "texts": len(texts),
        "tokens": tokens,
        "mean_tokens_per_text": round(tokens / len(texts), 1),
        "bare_llama_embed_per_text": rates(bare),
        "embedder": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
