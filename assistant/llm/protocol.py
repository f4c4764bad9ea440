"""What every use case needs from a model, local or remote, and the facts it reports.

Code branches on typed facts (`fim_kind`, `GenerationStats.stopped_by`); display text is made
from them (`fim_label`), never parsed back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from assistant.llm.chat_templates import Message
from assistant.llm.fim import ContextFile

FimKind = Literal["tokens", "server", "emulated"]
"""How a model fills a hole: its own FIM tokens, a server's `/infill`, or an emulation."""
StopReason = Literal["", "stop token", "stop string", "length", "cancel", "budget", "end"]
"""Why the last request stopped: `length` is the token limit, `budget` a time limit."""
Phase = Literal["prompt", "generate"]
Priority = Literal["explicit", "background", "idle"]
"""Who waits for a request: a person who asked (chat, a docstring, `assist complete`), an editor
offering text while its user types, or nobody (a cache warm-up). A shared model host serves them
in that order (llm/schedule.py)."""


@dataclass
class GenerationStats:
    """Timings of a request as it runs (front-ends show them live) and after it ends."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens whose KV cache was reused from the request before."""
    prompt_done: int = 0
    """Prompt tokens evaluated so far (cached ones included)."""
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    stopped_by: StopReason = ""
    phase: Phase = "prompt"
    wait_ms: float = 0.0
    """Time waiting for the model to be free: the request it superseded finishing its chunk."""

    @property
    def tokens_per_second(self) -> float:
        if self.generated_tokens <= 1 or self.generation_ms <= 0:
            return 0.0
        return (self.generated_tokens - 1) / (self.generation_ms / 1000)

    @property
    def prompt_fraction(self) -> float:
        """Share of the prompt read so far, 0..1 (1 when there was nothing to read)."""
        if self.prompt_tokens <= 0:
            return 1.0
        return min(1.0, self.prompt_done / self.prompt_tokens)

    def describe(self) -> str:
        """One line for a status bar: what the model is doing now."""
        if self.phase == "prompt":
            if not self.prompt_tokens:
                return "waiting for the model"
            return f"reading {self.prompt_tokens:,} tokens · {self.prompt_fraction:.0%}"
        speed = f" · {self.tokens_per_second:.1f} tok/s" if self.tokens_per_second else ""
        return f"writing · {self.generated_tokens} tokens{speed}"


Progress = Callable[[GenerationStats], None]
"""Called from the generating thread as a request advances (prompt chunks, tokens)."""


@dataclass(frozen=True)
class Budget:
    """Time limits of one request, in seconds; past one the request returns what is ready
    (`stopped_by == "budget"`). What was read of the prompt stays in the cache for the next."""

    prompt_s: float | None = None
    generate_s: float | None = None
    background: bool = False
    """Text offered while the user types, which nobody explicitly asked for: a shared model
    host serves it after explicit requests and drops it once a newer one supersedes it."""


def priority_of(max_tokens: int | None, budget: Budget | None) -> Priority:
    """A request's priority from how it was made: `max_tokens=0` only warms a cache."""
    if max_tokens == 0:
        return "idle"
    return "background" if budget is not None and budget.background else "explicit"


class Model(Protocol):
    """A model behind one of our runtimes; every method is safe to call from any thread, and a
    newer request cancels the one in flight."""

    name: str
    """The model as people name it: file name, or the server's model id."""
    last_stats: GenerationStats

    @property
    def fim_kind(self) -> FimKind: ...

    @property
    def fim_label(self) -> str:
        """`fim_kind` in words, with the tokens or endpoint used."""
        ...

    def context_window(self) -> int:
        """Tokens the model can attend to in one request (prompt plus answer)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as untrusted content (exact locally, estimated for a server)."""
        ...

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]: ...

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        """Stream a reply; `grammar` (GBNF text) constrains it, e.g. to a valid tool call."""
        ...

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]: ...
