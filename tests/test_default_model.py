"""The embedded default model (SmolLM2-135M-Instruct) in real llama.cpp: it loads, it streams,
it stops, it cancels. What it *says* differs by CPU (a 135M Q4_1 model flips near-tie logits
between AVX2 and AVX-512 kernels), so no assertion here depends on its words: a grammar holds it
to text it cannot end early, and quality is measured in `bench/`, not tested."""

from __future__ import annotations

import threading

import pytest

from assistant.config import ModelSettings
from assistant.llm.chat_templates import Message
from assistant.llm.fim import Hole
from assistant.llm.local import LocalModel
from assistant.llm.protocol import GenerationStats, Request
from assistant.llm.source import embedded_model_path

pytestmark = pytest.mark.slow

# At least 40 letters: whatever the kernels pick, the answer cannot end before that.
LETTERS = 'root ::= [a-z]{40,60} "."'


@pytest.fixture(scope="module")
def smollm() -> LocalModel:
    return LocalModel.load(embedded_model_path(), ModelSettings(temperature=0.0, max_tokens=48))


def test_it_loads_as_a_demo_model_without_fim(smollm: LocalModel) -> None:
    assert smollm.name == embedded_model_path().name
    assert smollm.fim_kind == "emulated" and smollm.context_window() >= 2048
    assert smollm.count_tokens("def add(a, b): return a + b") > 5


def test_it_streams_and_stops_at_the_token_limit(smollm: LocalModel) -> None:
    messages = [Message("user", "Write a long word.")]
    request = Request(max_tokens=6, grammar=LETTERS)
    pieces = list(smollm.chat(messages, request))
    stats = request.stats
    assert len(pieces) >= 2 and all(p.isalpha() for p in pieces)
    assert stats.generated_tokens == 6 and stats.stopped_by == "length"
    assert stats.prompt_ms > 0 and stats.prompt_done == stats.prompt_tokens


def test_it_cancels_while_generating(smollm: LocalModel) -> None:
    cancel = threading.Event()
    pieces = []
    request = Request(cancel=cancel, grammar=LETTERS)
    for piece in smollm.chat([Message("user", "Spell.")], request):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) == 1 and request.stats.stopped_by == "cancel"


def test_it_cancels_while_reading_the_prompt(smollm: LocalModel) -> None:
    """Cancel lands between prompt chunks: the request ends before the prompt is read, and
    what was read stays cached for the next request."""
    cancel = threading.Event()
    seen: list[int] = []

    def progress(stats: GenerationStats) -> None:
        seen.append(stats.prompt_done)
        cancel.set()

    text = " ".join(f"word{i}" for i in range(500))  # about 2,000 tokens
    request = Request(cancel=cancel, progress=progress, max_tokens=4)
    pieces = list(smollm.complete(text, request))
    stats = request.stats
    assert pieces == [] and stats.stopped_by == "cancel"
    assert 0 < stats.prompt_done < stats.prompt_tokens and stats.generated_tokens == 0
    again = Request(max_tokens=1, grammar='root ::= "x"')
    assert list(smollm.complete(text, again)) == ["x"]
    assert again.stats.cached_tokens >= stats.prompt_done - 1


def test_emulated_infill_runs_through_the_chat_template(smollm: LocalModel) -> None:
    prefix = "def add(a, b):\n    "
    request = Request()
    out = "".join(smollm.infill(Hole(prefix, "\n\nprint(add(1, 2))\n", path="math.py"), request))
    stats = request.stats
    assert isinstance(out, str) and "```" not in out
    assert stats.prompt_tokens > smollm.count_tokens(prefix) + 20  # the instructions went in
    assert stats.stopped_by in ("stop token", "length", "end")
