"""How fast a cancel takes effect, and how soon a chat answer shows something, in-process and
through the model host (the default, `model.host = true`).

Cancel: a ~2,000-token prompt is sent to the model (the embedded default unless --model), and a
second thread sets the request's cancel event at a random moment of a whole run (prompt reading
or generation). Two figures per round: cancel → the stream returned to the caller, and cancel →
a one-token request from another client answered (the model is free again; through the host the
client's stream returns when it shuts its socket, the host lets go of the model only at its next
prompt chunk or token). Rounds alternate between the paths; each round's prompt is new text
(and the in-process cache is cleared), so every prompt is read cold. A round whose run ended
before its cancel fired is reported as `finished_first`, not dropped.

Chat: time to the first progress report and to the first answer text for a ~1,200-token prompt,
against what the prompt speed measured just before on a plain prompt of the same length allows
(prompt ÷ speed + 300 ms), for each path.

    python bench/cancel_latency.py [--model PATH] [--rounds 40] [--paths in-process,hosted]
    python bench/cancel_latency.py --chunks    # prompt speed and slowest chunk by chunk size

Prints one JSON object, with the run's conditions (commit, machine, load, samples).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from conditions import conditions, finish, summary

from assistant.config import ModelSettings
from assistant.llm.chat_templates import Message
from assistant.llm.local import LocalModel
from assistant.llm.protocol import GenerationStats, Model, Request
from assistant.llm.source import embedded_model_path

PATHS = ("in-process", "hosted")
VOCAB = ["upload", "retry", "parse", "token", "cache", "render", "session", "buffer", "file"]


def prompt_text(words: int, seed: int = 0) -> str:
    """Plain words (about four tokens each for SmolLM2); seed 0 is the text of the earlier runs,
    any other seed random words and numbers, so that two prompts share no long run of tokens
    and no cache can serve one from the other (`max_reused_tokens` in the output checks it)."""
    rng = random.Random(words * 1_000_003 + seed)
    if not seed:
        return " ".join(rng.choice(VOCAB) + str(i % 97) for i in range(words))
    return " ".join(f"{rng.choice(VOCAB)}{rng.randrange(100)}" for _ in range(words))


def probe(model: Model) -> float:
    """A one-token request: answered as soon as the model is free."""
    "".join(model.complete("def f(x):\n    return", Request(max_tokens=1)))
    return time.perf_counter()


def cancel_round(model: Model, prober: Model, text: str, delay: float) -> dict[str, Any]:
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
    first_text: float | None = None
    started = time.perf_counter()
    for piece in model.complete(text, request):
        if piece and first_text is None:
            first_text = time.perf_counter()
    ended = time.perf_counter()
    done.set()
    timer.join()
    row: dict[str, Any] = {"delay_ms": round(delay * 1000, 1),
                           "prompt_tokens": request.stats.prompt_tokens,
                           "reused_tokens": request.stats.cached_tokens
                           + request.stats.shifted_tokens}  # fmt: skip
    if not set_at:
        row["phase"] = "finished_first"  # the run ended before the cancel would have fired
        row["run_ms"] = round((ended - started) * 1000, 1)
        return row
    free = probe(prober)
    row["phase"] = "generate" if first_text is not None and first_text < set_at[0] else "prompt"
    row["returned_ms"] = round((ended - set_at[0]) * 1000, 1)
    row["free_ms"] = round((free - set_at[0]) * 1000, 1)
    return row


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


def chat_figures(model: Model, local: LocalModel | None, seed: int, words: int) -> dict[str, Any]:
    """First progress and first text of a cold ~1,200-token chat, against the bound from the
    prompt speed measured right before on a plain prompt of about the same length (this
    model's speed drifts by 10 % over a run of minutes on this CPU)."""
    chat_text = prompt_text(words, seed)
    messages = [Message("user", f"Summarise: {chat_text}")]
    if local is not None:
        local.runtime.clear()
    measured = Request(max_tokens=1)
    "".join(model.complete(prompt_text(words, seed + 1), measured))
    speed = measured.stats.prompt_tokens / max(measured.stats.prompt_ms / 1000, 1e-9)
    if local is not None:
        local.runtime.clear()
    first_progress: list[float] = []

    def progress(stats: GenerationStats) -> None:
        if not first_progress and stats.prompt_tokens:
            first_progress.append(time.perf_counter())

    start = time.perf_counter()
    first_text = None
    chat = Request(max_tokens=16, progress=progress)
    for piece in model.chat(messages, chat):
        if piece and first_text is None:
            first_text = time.perf_counter()
    tokens = chat.stats.prompt_tokens
    return {
        "prompt_tokens": tokens,
        "first_progress_ms": round((first_progress[0] - start) * 1000, 1)
        if first_progress
        else None,
        "first_text_ms": round((first_text - start) * 1000, 1) if first_text else None,
        "plain_prompt_tokens_just_before": measured.stats.prompt_tokens,
        "prompt_tokens_per_s_just_before": round(speed, 1),
        "allowed_ms": round(tokens / speed * 1000 + 300, 1) if speed else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--rounds", type=int, default=40, help="cancel rounds per path")
    ap.add_argument("--paths", default=",".join(PATHS), help="in-process, hosted or both")
    ap.add_argument("--words", type=int, default=520, help="prompt words (~2,000 tokens)")
    ap.add_argument("--chat-words", type=int, default=390, help="chat prompt (~1,200 tokens)")
    ap.add_argument("--json", action="store_true", help="one line (default: indented)")
    ap.add_argument("--chunks", action="store_true", help="only the chunk-size table")
    args = ap.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    if any(p not in PATHS for p in paths):
        raise SystemExit(f"--paths: {', '.join(PATHS)}")
    path = Path(args.model) if args.model else embedded_model_path()
    settings = ModelSettings(temperature=0.0, n_ctx=4096)
    cond = conditions(
        model=path.name,
        model_settings={"temperature": 0.0, "n_ctx": 4096, "others": "defaults"},
        rounds_per_path=args.rounds,
        prompt_words=args.words,
        chat_words=args.chat_words,
        paths=paths,
        cold="every prompt new text; in-process cache cleared",
    )
    local = LocalModel.load(path, settings)
    if args.chunks:
        table = chunk_table(local, local.tokenize(prompt_text(args.words))[:1500])
        print(json.dumps({"conditions": finish(cond), "chunks": table}))
        return
    models: dict[str, Model] = {}
    probers: dict[str, Model] = {}
    runtime = None
    if "in-process" in paths:
        models["in-process"] = probers["in-process"] = local
    if "hosted" in paths:
        from assistant.llm.hosting import HostedModel

        # A host of its own, in a folder of its own: `stop_hosts` below stops only that one.
        runtime = tempfile.mkdtemp(prefix="acl-")
        os.environ["XDG_RUNTIME_DIR"] = runtime
        models["hosted"] = HostedModel(str(path), settings)
        probers["hosted"] = HostedModel(str(path), settings)  # another client, another lane
    result: dict[str, Any] = {"model": local.name}
    try:
        rng = random.Random(7)
        seed = 1
        full: dict[str, float] = {}
        for name, model in models.items():  # one uncancelled run: the prompt speed, the span
            probe(probers[name])  # untimed: the first call of a model pays for set-up
            if name == "in-process":
                local.runtime.clear()
            plain = Request(max_tokens=40)
            t = time.perf_counter()
            "".join(model.complete(prompt_text(args.words, seed), plain))
            seed += 1
            full[name] = time.perf_counter() - t
            result[name] = {
                "prompt_tokens": plain.stats.prompt_tokens,
                "prompt_tokens_per_s": round(
                    plain.stats.prompt_tokens / max(plain.stats.prompt_ms / 1000, 1e-9), 1
                ),
                "uncancelled_run_ms": round(full[name] * 1000, 1),
            }
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
        for _ in range(args.rounds):  # the paths alternate, so drift over the run hits both
            for name, model in models.items():
                if name == "in-process":
                    local.runtime.clear()
                text = prompt_text(args.words, seed)
                seed += 1
                rows[name].append(
                    cancel_round(model, probers[name], text, rng.uniform(0.0, full[name]))
                )
        idle: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(10):  # what the probe takes when the model is already free
            for name in models:
                t = time.perf_counter()
                idle[name].append((probe(probers[name]) - t) * 1000)
        for name, model in models.items():
            done = [r for r in rows[name] if r["phase"] != "finished_first"]
            by_phase = {
                phase: {
                    "returned_ms": summary([r["returned_ms"] for r in done if r["phase"] == phase]),
                    "free_ms": summary([r["free_ms"] for r in done if r["phase"] == phase]),
                }
                for phase in ("prompt", "generate")
            }
            result[name].update(
                rounds=len(rows[name]),
                finished_first=sum(r["phase"] == "finished_first" for r in rows[name]),
                cancel_returned_ms=summary([r["returned_ms"] for r in done]),
                cancel_free_ms=summary([r["free_ms"] for r in done]),
                idle_probe_ms_p50=round(statistics.median(idle[name]), 1),
                by_phase=by_phase,
                max_reused_tokens=max((r["reused_tokens"] for r in rows[name]), default=0),
                chat=chat_figures(
                    model, local if name == "in-process" else None, seed, args.chat_words
                ),
            )
            seed += 2
        result["round_detail"] = rows
    finally:
        if runtime is not None:
            from assistant.llm.hosting import stop_hosts

            stop_hosts()
            shutil.rmtree(runtime, ignore_errors=True)
    out = {"conditions": finish(cond), **result}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
