"""How fast a cancel takes effect, and how soon a chat answer shows something.

Cancel: a ~2,000-token prompt is sent to the model (the embedded default unless --model), and a
second thread sets the request's cancel event at a random moment during prompt reading or
generation; the figure is the time from `set()` until the stream has returned (the model is
free again). Chat: time to the first progress report and to the first answer text for a
~1,200-token prompt, against what the prompt speed measured just before on a plain prompt of the
same length allows (prompt ÷ speed + 300 ms).

    python bench/cancel_latency.py [--model PATH] [--rounds 40] [--json]
    python bench/cancel_latency.py --chunks    # prompt speed and slowest chunk by chunk size

Prints one JSON object (with --json) or a table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from pathlib import Path

from assistant.config import ModelSettings
from assistant.llm.chat_templates import Message
from assistant.llm.local import LocalModel
from assistant.llm.protocol import GenerationStats, Request
from assistant.llm.source import embedded_model_path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prompt_text(words: int) -> str:
    rng = random.Random(words)
    vocab = ["upload", "retry", "parse", "token", "cache", "render", "session", "buffer", "file"]
    return " ".join(rng.choice(vocab) + str(i % 97) for i in range(words))


def cancel_round(model: LocalModel, text: str, delay: float) -> tuple[float, str]:
    cancel = threading.Event()
    done = threading.Event()
    set_at: list[float] = []

    def later() -> None:
        if not done.wait(delay):
            set_at.append(time.perf_counter())
            cancel.set()

    timer = threading.Thread(target=later)
    timer.start()
    request = Request(cancel=cancel, max_tokens=400)
    for _ in model.complete(text, request):
        pass
    ended = time.perf_counter()
    done.set()
    timer.join()
    phase = request.stats.phase
    if not set_at:
        return -1.0, "finished first"
    return (ended - set_at[0]) * 1000, phase


def chunk_table(model: LocalModel, tokens: list[int]) -> dict[int, dict[str, float]]:
    """Prompt tokens/s and the slowest single `eval` call, for each chunk size."""
    runtime = model.runtime
    table: dict[int, dict[str, float]] = {}
    for chunk in (8, 16, 32, 64, 128, 256, 512):
        runtime.clear()
        start = time.perf_counter()
        worst = 0.0
        for i in range(0, len(tokens), chunk):
            t = time.perf_counter()
            runtime.decode(tokens[i : i + chunk])
            worst = max(worst, time.perf_counter() - t)
        seconds = time.perf_counter() - start
        table[chunk] = {
            "tokens_per_s": round(len(tokens) / seconds, 1),
            "slowest_chunk_ms": round(worst * 1000, 1),
        }
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--chunks", action="store_true", help="only the chunk-size table")
    args = ap.parse_args()
    path = Path(args.model) if args.model else embedded_model_path()
    model = LocalModel.load(path, ModelSettings(temperature=0.0, n_ctx=4096))
    text = prompt_text(520)  # about 2,000 tokens
    if args.chunks:
        print(json.dumps(chunk_table(model, model.tokenize(text)[:1500])))
        return
    tokens = len(model.tokenize(text))
    # One uncancelled read, for the prompt speed and the full time.
    model.runtime.clear()
    t = time.perf_counter()
    plain = Request(max_tokens=40)
    for _ in model.complete(text, plain):
        pass
    full = time.perf_counter() - t
    prompt_speed = tokens / (plain.stats.prompt_ms / 1000)
    rng = random.Random(7)
    latencies: dict[str, list[float]] = {"prompt": [], "generate": []}
    for _ in range(args.rounds):
        model.runtime.clear()  # a cold prompt each time
        ms, phase = cancel_round(model, text, rng.uniform(0.0, full))
        if ms >= 0:
            latencies[phase].append(ms)
    # Chat: time to first progress and to first text, 1,500-token prompt, cold cache.
    chat_text = prompt_text(390)
    messages = [Message("user", f"Summarise: {chat_text}")]
    # The prompt speed the chat is held to, measured right before it on a plain prompt of the
    # same length: this model's speed drifts by 10 % over a run of minutes on this CPU.
    same = model.bos() + model.tokenize(chat_text)[: len(model.chat_prompt(messages)) - 1]
    model.runtime.clear()
    measured = Request(max_tokens=1)
    for _ in model.generate(same, measured):
        pass
    chat_speed = len(same) / (measured.stats.prompt_ms / 1000)
    model.runtime.clear()
    first_progress: list[float] = []

    def progress(stats: GenerationStats) -> None:
        if not first_progress:
            first_progress.append(time.perf_counter())

    start = time.perf_counter()
    first_text = None
    chat = Request(max_tokens=16, progress=progress)
    for piece in model.chat(messages, chat):
        if piece and first_text is None:
            first_text = time.perf_counter()
    stats = chat.stats
    allowed = stats.prompt_tokens / chat_speed * 1000 + 300
    result = {
        "model": model.name,
        "prompt_tokens": tokens,
        "prompt_tokens_per_s": round(prompt_speed, 1),
        "cancel_ms": {
            phase: {
                "n": len(v),
                "p50": round(statistics.median(v), 1) if v else None,
                "p95": round(pct(v, 0.95), 1) if v else None,
                "max": round(max(v), 1) if v else None,
            }
            for phase, v in latencies.items()
        },
        "chat": {
            "prompt_tokens": stats.prompt_tokens,
            "first_progress_ms": round((first_progress[0] - start) * 1000, 1)
            if first_progress
            else None,
            "first_text_ms": round((first_text - start) * 1000, 1) if first_text else None,
            "prompt_tokens_per_s_just_before": round(chat_speed, 1),
            "allowed_ms": round(allowed, 1),
        },
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
