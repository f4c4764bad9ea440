"""Does `model.n_gpu_layers = "auto"` load, and is it faster than the CPU alone?

For one GGUF: the plan "auto" makes from the GPU's free memory, then the model loaded with that
plan and with no layers offloaded, each measured the way `assist model` measures (prompt and
generation tokens per second from a cold cache). Prints one JSON object; the speed-up is the
ratio of the two runs in this process.

    python bench/gpu_plan_check.py MODEL.gguf [--n-ctx 4096]

Needs a llama-cpp-python built with a GPU backend (CMAKE_ARGS="-DGGML_CUDA=on" pip install
--no-binary llama-cpp-python llama-cpp-python); on a CPU build the plan says "CPU only" and both
runs are the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from assistant.config import ModelSettings
from assistant.llm.card import measure_speed
from assistant.llm.gguf import read_gguf
from assistant.llm.gpu_plan import gpu_memory, plan_layers
from assistant.llm.local import LocalModel


def run(path: str, settings: ModelSettings) -> dict[str, Any]:
    started = time.perf_counter()
    model = LocalModel.load(path, settings)
    loaded = time.perf_counter() - started
    speed = measure_speed(model)
    plan = model.gpu_plan
    out = {"n_gpu_layers": settings.n_gpu_layers, "load_s": round(loaded, 2), **speed,
           "plan": plan.describe() if plan else None}  # fmt: skip
    model.runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()
    info = read_gguf(args.model)
    memory = gpu_memory()
    base = ModelSettings(n_ctx=args.n_ctx)
    result: dict[str, Any] = {"model": info.path.name, "n_ctx": args.n_ctx}
    if memory is not None:
        free, total = memory
        plan = plan_layers(info, args.n_ctx, free, total)
        result["gpu_free_bytes"], result["gpu_total_bytes"] = free, total
        result["planned"] = plan.describe()
    auto = run(args.model, dataclasses.replace(base, n_gpu_layers="auto"))
    cpu = run(args.model, dataclasses.replace(base, n_gpu_layers=0))
    result["auto"], result["cpu_only"] = auto, cpu
    for key in ("prompt_tokens_per_s", "generation_tokens_per_s"):
        if cpu.get(key):
            result[f"speedup_{key}"] = round(auto[key] / cpu[key], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
