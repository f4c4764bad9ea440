"""What a completion is (its text, where the text came from, its timings, a note on why it is
empty or cut) and what an idle warm-up did."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from assistant.completion.context import ContextChunk

if TYPE_CHECKING:
    from assistant.completion.model_run import ModelRun
    from assistant.llm.protocol import GenerationStats

Source = Literal["", "model", "cache", "recall:file", "recall:context"]
"""Where a completion's text came from."""


@dataclass
class CompletionTimings:
    retrieval_ms: float = 0.0
    recall_ms: float = 0.0
    """Looking the answer up in known text (done for every editor request, used when the
    model is late)."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the model's cache held where they are."""
    shifted_tokens: int = 0
    """Prompt tokens the model's cache held elsewhere, moved into place."""
    read_tokens: int = 0
    """Prompt tokens the model read."""
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    first_token_ms: float = 0.0
    """From the request to the first completion text out of the model."""
    total_ms: float = 0.0
    wait_ms: float = 0.0
    """Waiting for the model to be free (a superseded request finishing its prompt chunk)."""
    overhead_ms: float = 0.0
    """Everything that is not the model nor waiting for it: windowing, retrieval, recall,
    prompt building, shaping."""


@dataclass
class Completion:
    text: str
    multiline: bool
    source: Source = ""
    model: str = ""
    context: list[ContextChunk] = field(default_factory=list)
    timings: CompletionTimings = field(default_factory=CompletionTimings)
    cold: bool = False
    """The cursor was at a new place: the window was cut to what the model reads quickly."""
    note: str = ""

    @property
    def cached(self) -> bool:
        return self.source == "cache"

    def as_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "multiline": self.multiline,
            "source": self.source,
            "cached": self.cached,
            "cold": self.cold,
            "model": self.model,
            "note": self.note,
            "timings": {k: round(v, 3) for k, v in asdict(self.timings).items()},
            "context": [asdict(c) for c in self.context],
        }


@dataclass
class Warmed:
    """What one idle warm-up did, and whether there is more to do."""

    stats: GenerationStats
    what: str
    more: bool


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def fill_timings(result: Completion, run: ModelRun, started: float) -> None:
    t, stats = result.timings, run.request.stats
    t.prompt_tokens, t.cached_tokens = stats.prompt_tokens, stats.cached_tokens
    t.shifted_tokens, t.read_tokens = stats.shifted_tokens, stats.read_tokens
    t.prompt_ms, t.generation_ms = stats.prompt_ms, stats.generation_ms
    t.wait_ms = stats.wait_ms
    t.first_token_ms = ((run.first or time.perf_counter()) - started) * 1000
    t.total_ms = ms_since(started)
    if result.source == "model":
        t.overhead_ms = max(0.0, t.total_ms - t.wait_ms - t.prompt_ms - t.generation_ms)
    else:  # the model's time was not waited for
        t.overhead_ms = t.retrieval_ms + t.recall_ms + run.build_ms
