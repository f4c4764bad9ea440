"""What moving cached keys costs in quality: the next token after a prompt whose cache was
reused by moving runs (llm/kv_plan.py), against the same prompt read from scratch.

A moved run's keys were computed after other text than the new prompt has before it (llama.cpp
and llama-server's `--cache-reuse` accept that). Each case takes a stretch of real code as A, B,
C (300, 60 and 200 tokens): *insertion* caches A+C and asks for A+B+C (B read, C moved on);
*deletion* caches A+B+C and asks for A+C (C moved back). Reported: how often the most likely
next token is the same as from scratch, and the KL divergence of the two distributions.

    python bench/kv_shift_quality.py --corpora /tmp/assist-bench [--cases 20] [--model PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import threading
from pathlib import Path

import numpy as np

from assistant.llm.llama_runtime import LlamaRuntime
from assistant.llm.source import embedded_model_path

FILES = ("jinja2/src/jinja2/compiler.py", "requests/src/requests/models.py", "gin/context.go",
         "gin/tree.go", "commander/lib/command.js")  # fmt: skip
SIZES = (300, 60, 200)


def next_token_logits(runtime: LlamaRuntime) -> np.ndarray:
    pointer = runtime.lib.llama_get_logits_ith(runtime.ctx, -1)
    return np.ctypeslib.as_array(
        ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(runtime.n_vocab,)
    ).copy()


def from_scratch(runtime: LlamaRuntime, tokens: list[int]) -> np.ndarray:
    runtime.clear()
    for i in range(0, len(tokens), runtime.n_batch):
        runtime.decode(tokens[i : i + runtime.n_batch])
    return next_token_logits(runtime)


def reused(runtime: LlamaRuntime, cached: list[int], tokens: list[int]) -> tuple[np.ndarray, int]:
    """Logits for `tokens` when the cache held `cached` and was reused by plan; tokens read."""
    from_scratch(runtime, cached)
    plan = runtime.plan(tokens[:-1])
    assert runtime.prepare(tokens[:-1], plan, cancel=threading.Event())
    runtime.decode(tokens[-1:])
    return next_token_logits(runtime), plan.to_read


def compare(reference: np.ndarray, other: np.ndarray) -> tuple[bool, float]:
    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max())
        return e / e.sum()

    p, q = softmax(reference.astype(np.float64)), softmax(other.astype(np.float64))
    kl = float(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12))))
    return int(reference.argmax()) == int(other.argmax()), kl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--model", type=Path)
    args = ap.parse_args()
    runtime = LlamaRuntime(
        args.model or embedded_model_path(), n_ctx=2048, n_threads=0, n_gpu_layers=0
    )
    rng = random.Random(25)
    need = sum(SIZES)
    results: dict[str, list[tuple[bool, float]]] = {"insertion": [], "deletion": []}
    extra: dict[str, list[int]] = {"insertion": [], "deletion": []}
    for case in range(args.cases):
        tokens = runtime.tokenize((args.corpora / FILES[case % len(FILES)]).read_text())
        start = rng.randrange(0, len(tokens) - need)
        a = tokens[start : start + SIZES[0]]
        b = tokens[start + SIZES[0] : start + SIZES[0] + SIZES[1]]
        c = tokens[start + SIZES[0] + SIZES[1] : start + need]
        inserted, read = reused(runtime, a + c, a + b + c)
        extra["insertion"].append(read - len(b))  # 0: only the inserted text was read
        results["insertion"].append(compare(from_scratch(runtime, a + b + c), inserted))
        removed, read = reused(runtime, a + b + c, a + c)
        extra["deletion"].append(read)
        results["deletion"].append(compare(from_scratch(runtime, a + c), removed))
    out = {"model": str(args.model or "default"), "cases": args.cases}
    for kind, rows in results.items():
        kls = sorted(kl for _, kl in rows)
        out[kind] = {"same_top_token": sum(1 for same, _ in rows if same),
                     "kl_mean": round(float(np.mean(kls)), 4),
                     "kl_p50": round(kls[len(kls) // 2], 4), "kl_max": round(kls[-1], 4),
                     "tokens_read_beyond_the_new_text": sum(extra[kind])}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
