"""What every use case needs from a model, local or remote, and the facts it reports.

Code branches on typed facts (`fim_kind`, `GenerationStats.stopped_by`); display text is made
from them (`fim_label`), never parsed back.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from assistant.llm.chat_templates import Message
from assistant.llm.fim import Hole
from assistant.repo.vetted import Vetted

FimKind = Literal["tokens", "server", "emulated"]
"""How a model fills a hole: its own FIM tokens, a server's `/infill`, or an emulation."""
StopReason = Literal["", "stop token", "stop string", "length", "cancel", "budget", "end"]
"""Why a request stopped: `length` is the token limit, `budget` a time limit."""
Phase = Literal["queued", "prompt", "generate"]
Priority = Literal["explicit", "background", "idle"]
"""Who waits for a request: a person who asked (chat, a docstring, `assist complete`), an editor
offering text while its user types, or nobody (a cache warm-up). A model serves them in that
order (llm/schedule.py)."""
Dropped = Literal["", "superseded", "pre-empted", "busy", "gone"]
"""Why the scheduler cancelled a request (or its client left: `gone`)."""
_order = itertools.count()


@dataclass
class GenerationStats:
    """What one request did, kept current as it runs (front-ends show it live)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens whose KV cache was reused where it was (the beginning shared with what the
    cache held)."""
    shifted_tokens: int = 0
    """Prompt tokens whose KV cache was reused by moving it: text the cache held at another
    place of the prompt (a window that moved, a line typed above the text after the cursor)."""
    prompt_done: int = 0
    """Prompt tokens in the cache so far (reused ones included)."""
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    stopped_by: StopReason = ""
    phase: Phase = "prompt"
    wait_ms: float = 0.0
    """Time waiting for the model to be free: behind other requests, or for the one this
    superseded to let go (at its next prompt chunk or token)."""
    prompt_speed: float = 0.0
    """Prompt tokens/s the model has been reading at lately (0: not measured yet): what a
    front-end sizes prompts by."""

    @property
    def read_tokens(self) -> int:
        """Prompt tokens the model read (not reused from the cache) so far."""
        return max(0, self.prompt_done - self.cached_tokens - self.shifted_tokens)

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
        if self.phase == "queued" or (self.phase == "prompt" and not self.prompt_tokens):
            return "waiting for the model"
        if self.phase == "prompt":
            return f"reading {self.prompt_tokens:,} tokens · {self.prompt_fraction:.0%}"
        speed = f" · {self.tokens_per_second:.1f} tok/s" if self.tokens_per_second else ""
        return f"writing · {self.generated_tokens} tokens{speed}"


Progress = Callable[[GenerationStats], None]
"""Called from the generating thread as a request advances (queued, prompt chunks, tokens)."""


@dataclass(eq=False)
class Request:
    """One model request: what it may write, how long it may take, who waits for it, how it is
    stopped, and what it did.

    A caller makes one per call and reads `stats` while it streams and after it ends; nothing
    about a request is kept on the (shared) model object. Every runtime takes the same object,
    and one scheduler (llm/schedule.py) decides from it who runs and who is cancelled.
    """

    max_tokens: int | None = None
    """Tokens to write at most; None: the model's configured limit; 0: only read the prompt
    into the cache (a warm-up)."""
    priority: Priority = "explicit"
    prompt_s: float | None = None
    """Seconds the prompt may take to read; past it the request ends with no text
    (`stopped_by == "budget"`), and what was read stays in the cache for the next one."""
    generate_s: float | None = None
    """Seconds of writing; past it the request ends with what is written."""
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    """Sampling temperature; None: the model's setting."""
    grammar: str | None = None
    """GBNF text that constrains the answer (a tool call)."""
    progress: Progress | None = None
    lane: str = ""
    """Who asked: within a lane a newer request supersedes an older one of the same or lower
    priority (an editor asking again after a keystroke). Empty: the model's own lane."""
    cancel: threading.Event = field(default_factory=threading.Event)
    stats: GenerationStats = field(default_factory=GenerationStats)
    dropped: Dropped = ""
    seq: int = field(default_factory=lambda: next(_order))
    """When it was made here: the order of a queue."""
    made: int = -1
    """When its client made it, which says which of a lane's requests is newer (a model host
    hears this from the client; its threads may take requests in another order)."""
    order: int = 0
    """Its place among the requests the scheduler let run (1 is the first)."""

    def __post_init__(self) -> None:
        if self.made < 0:
            self.made = self.seq

    @classmethod
    def warm_up(cls, cancel: threading.Event | None = None, lane: str = "") -> Request:
        """Read a prompt into the cache and write nothing, when the model has nothing else
        to do; anything that arrives cancels it."""
        return cls(max_tokens=0, priority="idle", cancel=cancel or threading.Event(), lane=lane)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def drop(self, why: Dropped) -> None:
        """Cancel the request, saying why (the first reason wins)."""
        if not self.cancel.is_set():
            self.dropped = why
            self.cancel.set()

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.stats)


class Model(Protocol):
    """A model behind one of our runtimes; every method is safe to call from any thread. Who
    runs, waits or is cancelled is decided from each `Request` (llm/schedule.py)."""

    name: str
    """The model as people name it: file name, or the server's model id."""

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

    def complete(self, prompt: Vetted, request: Request | None = None) -> Iterator[str]:
        """Continue `prompt` (plain text, no template)."""
        ...

    def chat(self, messages: list[Message], request: Request | None = None) -> Iterator[str]:
        """Stream a reply through the model's chat template."""
        ...

    def infill(self, hole: Hole, request: Request | None = None) -> Iterator[str]:
        """Fill the hole between `hole.prefix` and `hole.suffix`."""
        ...
