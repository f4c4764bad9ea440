"""The embedded default model (SmolLM2-135M-Instruct), end to end in real llama.cpp."""

from __future__ import annotations

import pytest

from assistant.chat_format import Message
from assistant.config import ModelSettings
from assistant.model import LocalModel
from assistant.model_source import embedded_model_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm() -> LocalModel:
    return LocalModel.load(embedded_model_path(), ModelSettings(temperature=0.0, max_tokens=48))


def test_chat_answers(smollm: LocalModel) -> None:
    messages = [
        Message("system", "You are a helpful assistant."),
        Message("user", "What is the capital of France?"),
    ]
    answer = "".join(smollm.chat(messages))
    assert "Paris" in answer
    assert smollm.last_stats.stopped_by in ("stop token", "length")


def test_emulated_infill_fills_the_hole(smollm: LocalModel) -> None:
    assert smollm.fim is None
    prefix = "def add(a, b):\n    "
    out = "".join(smollm.infill(prefix, "\n\nprint(add(1, 2))\n", path="math.py"))
    assert out.strip()
    assert "```" not in out
    assert not out.startswith("def add")  # the repeated prefix line is trimmed
    assert "print(add" not in out  # and so is the repeated suffix
