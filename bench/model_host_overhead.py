"""What the model host's socket hop costs a request.

The same short request (an infill of one token on a repeated prompt, so llama.cpp's cache makes
the model's part small) timed in-process and through the host, alternating, in one run; the
difference is the hop: HTTP over the Unix socket, JSON events, the host's scheduler. Also the
time a front-end waits to get a model: loading it in-process against finding a running host.

    python bench/model_host_overhead.py [--model PATH.gguf] [--requests 200]

Default model: the embedded SmolLM2-135M. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from conditions import conditions, finish

from assistant.config import ModelSettings
from assistant.llm.fim import Hole
from assistant.llm.hosting import HostedModel, stop_hosts
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Model, Request
from assistant.llm.source import embedded_model_path

PREFIX = "def total(items):\n    result = 0\n    for item in items:\n        result += "
SUFFIX = "\n    return result\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one(model: Model) -> float:
    started = time.perf_counter()
    "".join(model.infill(Hole(PREFIX, SUFFIX, path="a.py"), Request(max_tokens=1)))
    return (time.perf_counter() - started) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    path = args.model or str(embedded_model_path())
    settings = ModelSettings(temperature=0.0)
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="aho-")
    cond = conditions(requests=args.requests, model_settings="temperature 0, other defaults",
                      cache="warm (the same infill each time)")  # fmt: skip
    out: dict[str, Any] = {"model": Path(path).name, "requests": args.requests}
    try:
        started = time.perf_counter()
        local = LocalModel.load(path, settings)
        out["load_in_process_ms"] = round((time.perf_counter() - started) * 1000, 1)
        started = time.perf_counter()
        hosted = HostedModel(path, settings)
        out["start_host_ms"] = round((time.perf_counter() - started) * 1000, 1)
        started = time.perf_counter()
        HostedModel(path, settings)
        out["find_running_host_ms"] = round((time.perf_counter() - started) * 1000, 1)
        one(local), one(hosted)  # warm both caches
        times: dict[str, list[float]] = {"in_process": [], "hosted": []}
        for _ in range(args.requests):
            times["in_process"].append(one(local))
            times["hosted"].append(one(hosted))
        for name, values in times.items():
            out[f"{name}_p50_ms"] = round(statistics.median(values), 2)
            out[f"{name}_p95_ms"] = round(pct(values, 0.95), 2)
        out["hop_p50_ms"] = round(out["hosted_p50_ms"] - out["in_process_p50_ms"], 2)
    finally:
        stop_hosts()
    print(json.dumps({"conditions": finish(cond), **out}, indent=2))


if __name__ == "__main__":
    main()
