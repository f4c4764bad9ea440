"""Reusing the KV cache: plans that keep, move and read, carried out on real llama.cpp.

The plans are pure functions, tested on token lists. Carrying them out is tested on a tiny
generated model: llama.cpp itself refuses a batch whose positions do not continue its sequence,
so a wrong move shows up as an error, and the cache's own account of its positions is checked
against ours after every request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.config import ModelSettings
from assistant.llm.kv_plan import HOLE, Move, plan_reuse
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Request

A, B, C, D = (
    list(range(100, 140)),
    list(range(200, 230)),
    list(range(300, 350)),
    list(range(400, 420)),
)


def test_the_shared_beginning_is_kept_and_the_rest_read() -> None:
    plan = plan_reuse(A + B, A + C)
    assert (plan.keep, plan.moves, plan.to_read) == (40, (), 50)
    assert plan_reuse([], A).to_read == 40
    assert plan_reuse(A, A[:10]).reused == 10  # a shorter prompt: nothing to read


def test_text_removed_before_a_run_moves_it_back() -> None:
    plan = plan_reuse(A + B + C, A + C)
    assert plan.keep == 40 and plan.moves == (Move(70, 40, 50),)
    assert (plan.shifted, plan.to_read) == (50, 0)
    assert plan.steps() == [("move", 40, 90)]


def test_text_inserted_before_a_run_moves_it_on() -> None:
    plan = plan_reuse(A + C, A + B + C)
    assert plan.moves == (Move(40, 70, 50),)
    assert plan.to_read == 30 and plan.steps() == [("read", 40, 70), ("move", 70, 120)]


def test_several_runs_in_both_directions_keep_their_order() -> None:
    cached = A + B + C + D
    prompt = A + C + list(range(500, 520)) + D  # B removed, new text before D
    plan = plan_reuse(cached, prompt)
    assert plan.moves == (Move(70, 40, 50), Move(120, 110, 20))
    assert plan.to_read == 20 and plan.shifted == 70


def test_a_run_matching_by_chance_does_not_cost_a_longer_one() -> None:
    """B, inserted, happens to contain a stretch of C: taking it would leave the start of C
    behind (runs keep their order), so the plan takes C whole and reads B."""
    chance = C[30:44]
    inserted = B[:10] + chance + B[10:]
    plan = plan_reuse(A + C, A + inserted + C)
    assert plan.moves == (Move(40, 40 + len(inserted), 50),)
    assert plan.to_read == len(inserted)


def test_runs_too_short_or_holes_are_not_moved() -> None:
    short = list(range(600, 605))
    assert plan_reuse(A + short + C, A + C).moves == (Move(45, 40, 50),)
    assert plan_reuse(A + short, A + B + short).moves == ()  # five tokens: read them again
    holed = A + [HOLE] * 10 + C
    plan = plan_reuse(holed, A + B + C)
    assert plan.keep == 40 and plan.moves == (Move(50, 70, 50),)
    assert plan_reuse(A + C, A + C, shift=False).keep == 90
    assert plan_reuse(A + C, A + B + C, shift=False).moves == ()


@pytest.fixture(scope="module")
def model(make_gguf: Callable[..., Path]) -> LocalModel:
    path = make_gguf(favorite="a", context_length=4096)
    return LocalModel.load(path, ModelSettings(temperature=0.0, n_ctx=4096))


def held(model: LocalModel) -> list[int]:
    """What llama.cpp holds in sequence 0, by its own account, as our map must say."""
    runtime = model.runtime
    lib, memory = runtime.lib, runtime.memory
    assert lib.llama_memory_seq_pos_max(memory, 1) == -1  # nothing left parked
    assert lib.llama_memory_seq_pos_min(memory, 0) in (0, -1)
    assert lib.llama_memory_seq_pos_max(memory, 0) == len(runtime.cells) - 1
    assert HOLE not in runtime.cells
    return runtime.cells


def words(*ranges: tuple[int, int]) -> str:
    return "".join(f"w{i} " for lo, hi in ranges for i in range(lo, hi))


def run(model: LocalModel, text: str, **kw: object) -> Request:
    request = Request(max_tokens=2, **kw)  # type: ignore[arg-type]
    assert "".join(model.complete(text, request)) == "aa"
    return request


def test_moves_both_ways_on_real_llama_cpp(model: LocalModel) -> None:
    model.runtime.clear()
    first = run(model, words((0, 60), (100, 160)))
    assert first.stats.read_tokens == first.stats.prompt_tokens  # all of it, cold
    # Text inserted in the middle: the part after it is moved on, only the new text is read.
    inserted = run(model, words((0, 60), (60, 80), (100, 160)))
    new = len(model.tokenize(words((60, 80))))
    assert inserted.stats.shifted_tokens > 100
    assert new <= inserted.stats.read_tokens <= new + 3
    tokens = model.bos() + model.tokenize(words((0, 60), (60, 80), (100, 160)))
    assert held(model)[: len(tokens) - 1] == tokens[:-1]
    # Removed again: moved back, nothing read but the last token's neighbourhood.
    removed = run(model, words((0, 60), (100, 160)))
    assert removed.stats.shifted_tokens > 100 and removed.stats.read_tokens <= 3
    held(model)


def test_a_cancelled_read_leaves_runs_parked_and_the_next_request_uses_them(
    model: LocalModel,
) -> None:
    model.runtime.clear()
    run(model, words((0, 40), (300, 400)))
    cancel = threading.Event()

    def stop_after_a_chunk(stats: object) -> None:
        cancel.set()

    request = Request(max_tokens=2, cancel=cancel, progress=stop_after_a_chunk)
    model.runtime._chunk = 8  # small chunks: the cancel lands inside the new text
    text = words((0, 40), (40, 140), (300, 400))
    assert list(model.complete(text, request)) == []
    assert request.stats.stopped_by == "cancel" and request.stats.shifted_tokens > 100
    runtime = model.runtime
    assert HOLE in runtime.cells  # the rest of the new text was not read
    assert runtime.lib.llama_memory_seq_pos_max(runtime.memory, 1) >= 0  # a run waits parked
    again = run(model, text)  # continues where the cancelled one stopped
    parked = len(model.tokenize(words((300, 400))))
    assert again.stats.cached_tokens >= parked  # the parked run, already in its place
    assert again.stats.read_tokens < len(model.tokenize(words((40, 140))))
    held(model)
