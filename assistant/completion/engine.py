"""Code completion at a cursor: one engine for the CLI and the language server.

A request goes: window of text around the cursor → repository context chosen by retrieval →
the model's own FIM prompt (or the chat emulation) → streamed text shaped to the hole
(`completion_shape.py`) → a cache that also serves the user typing ahead into a completion.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.completion.context import (
    Candidate,
    ContextChunk,
    as_prompt_context,
    candidates,
)
from assistant.completion.ring import ContextRing
from assistant.completion.shaping import Shaper, wants_multiline
from assistant.errors import AssistError
from assistant.llm.fim import ContextFile, path_comment
from assistant.llm.protocol import Budget

if TYPE_CHECKING:
    from assistant.llm.protocol import GenerationStats, Model
    from assistant.workspace import Workspace

CHARS_PER_TOKEN = 3.5
"""Code averages 3–4 characters a token; windows are cut in characters so that choosing them
costs no tokenizer call on every keystroke."""
WINDOW_STEP = 2048
"""The prefix window's start moves in steps of this many characters, so that while a person
types, the prompt's beginning stays the same and llama.cpp reuses its KV cache."""


@dataclass
class CompletionTimings:
    retrieval_ms: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    first_token_ms: float = 0.0
    """From the request to the first completion text out of the model."""
    total_ms: float = 0.0
    wait_ms: float = 0.0
    """Waiting for the model to be free (a superseded request finishing its prompt chunk)."""
    overhead_ms: float = 0.0
    """Everything that is not the model nor waiting for it: windowing, retrieval, prompt
    building and tokenizing, shaping."""


@dataclass
class Completion:
    text: str
    multiline: bool
    cached: bool = False
    model: str = ""
    context: list[ContextChunk] = field(default_factory=list)
    timings: CompletionTimings = field(default_factory=CompletionTimings)
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "multiline": self.multiline,
            "cached": self.cached,
            "model": self.model,
            "note": self.note,
            "timings": {k: round(v, 3) for k, v in asdict(self.timings).items()},
            "context": [asdict(c) for c in self.context],
        }


@dataclass(frozen=True)
class Window:
    """The text the model sees around the cursor."""

    prefix: str
    suffix: str
    start_line: int
    """0-based document line where `prefix` starts."""


def cursor_offset(text: str, line: int, col: int) -> int:
    """Offset of (0-based line, 0-based column in characters); out-of-range values clamp."""
    if line < 0 or col < 0:
        raise AssistError(f"position {line + 1}:{col} is invalid", "lines and columns start at 1:0")
    lines = text.split("\n")
    if line >= len(lines):
        return len(text)
    start = sum(len(s) + 1 for s in lines[:line])
    return start + min(col, len(lines[line]))


def make_window(text: str, offset: int, prefix_chars: int, suffix_chars: int) -> Window:
    """Cut prefix and suffix at whole lines, the prefix start quantised to `WINDOW_STEP`.

    Neither side ever exceeds its budget: a line longer than the budget (minified code) is cut
    inside the line rather than sent whole.
    """
    start = 0
    if offset > prefix_chars:
        start = offset - prefix_chars
        start = -(-start // WINDOW_STEP) * WINDOW_STEP  # round up: the window never grows
        start = min(start, offset)
        newline = text.find("\n", start, offset)
        if newline >= 0:
            start = newline + 1
    end = len(text)
    if end - offset > suffix_chars:
        newline = text.rfind("\n", offset, offset + suffix_chars)
        end = newline + 1 if newline >= 0 else offset + suffix_chars
    return Window(text[start:offset], text[offset:end], text.count("\n", 0, start))


class _Cache:
    """Completions by the text around the cursor; also serves a user typing into one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def _key(prefix: str, suffix: str) -> tuple[str, str]:
        digest = hashlib.blake2b(prefix.encode("utf-8", "surrogatepass"), digest_size=16)
        suffix_digest = hashlib.blake2b(suffix.encode("utf-8", "surrogatepass"), digest_size=16)
        return digest.hexdigest(), suffix_digest.hexdigest()

    def get(self, prefix: str, suffix: str) -> str | None:
        if self.size <= 0:
            return None
        key = self._key(prefix, suffix)
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
                return hit[1]
            # Typed ahead: an earlier prefix plus the start of its completion is this prefix.
            for (_, suffix_key), (old_prefix, text) in reversed(self.entries.items()):
                if suffix_key != key[1] or not prefix.startswith(old_prefix):
                    continue
                typed = prefix[len(old_prefix) :]
                if typed and len(typed) < len(text) and text.startswith(typed):
                    return text[len(typed) :]
        return None

    def put(self, prefix: str, suffix: str, text: str) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.entries[self._key(prefix, suffix)] = (prefix, text)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


class CompletionEngine:
    """Completions for one workspace; safe to call from several threads."""

    def __init__(self, ws: Workspace, model: Model | None = None) -> None:
        self.ws = ws
        self._model = model
        self.settings = ws.settings.completion
        self.cache = _Cache(self.settings.cache_size)
        self.ring = ContextRing(int(self.settings.context_tokens * CHARS_PER_TOKEN))
        self._ring_anchor: tuple[str, str] | None = None

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = self.ws.model
        return self._model

    def complete(
        self,
        path: str,
        text: str,
        line: int,
        col: int,
        *,
        cancel: threading.Event | None = None,
        on_text: Callable[[str], None] | None = None,
        budget: Budget | None = None,
        refresh: bool = True,
    ) -> Completion:
        """Complete at 0-based (`line`, `col`) of `text`, the editor's (maybe unsaved) buffer.

        `on_text` receives the completion as it streams, in pieces that are final. `budget`
        bounds the model's time (an editor passes `editor_budget()`); a completion that ends
        empty says why in `note`. `refresh=False` (a keystroke) keeps the context ring while
        the cursor stays in one definition, so the prompt's beginning is the one already in
        the model's cache.
        """
        rel = self._relative(path)
        model = self.model  # loaded before the clock starts: a load is not a completion's cost
        started = time.perf_counter()
        offset = cursor_offset(text, line, col)
        settings = self.settings
        window = self._window(text, offset)
        multiline = wants_multiline(window.prefix, window.suffix, settings.multiline)
        result = Completion(text="", multiline=multiline)
        cached = self.cache.get(window.prefix, window.suffix)
        if cached is not None:
            result.text, result.cached = cached, True
            if on_text and cached:
                on_text(cached)
            result.timings.total_ms = (time.perf_counter() - started) * 1000
            result.timings.overhead_ms = result.timings.total_ms
            return result

        t0 = time.perf_counter()
        context = self._context(rel, text, offset, refresh)
        result.context = [c.chunk for c in context]
        result.timings.retrieval_ms = (time.perf_counter() - t0) * 1000
        if cancel is not None and cancel.is_set():
            result.note = "cancelled"
            return result

        result.model = model.name
        shaper = Shaper(window.prefix, window.suffix, multiline)
        stream = self._stream(
            model, window, rel or Path(path).name, as_prompt_context(context), multiline,
            max_tokens=settings.max_tokens, cancel=cancel, budget=budget,
        )  # fmt: skip
        first: float | None = None
        try:
            for piece in stream:
                if first is None:
                    first = time.perf_counter()
                out = shaper.feed(piece)
                if out and on_text:
                    on_text(out)
                if shaper.done:
                    break
        finally:
            if isinstance(stream, Iterator) and hasattr(stream, "close"):
                stream.close()  # stops generation when the shaper has all it needs
        rest = shaper.finish()
        if rest and on_text:
            on_text(rest)
        result.text = shaper.text
        stats = model.last_stats
        t = result.timings
        t.prompt_tokens, t.cached_tokens = stats.prompt_tokens, stats.cached_tokens
        t.prompt_ms, t.generation_ms = stats.prompt_ms, stats.generation_ms
        t.first_token_ms = ((first or time.perf_counter()) - started) * 1000
        t.total_ms = (time.perf_counter() - started) * 1000
        t.wait_ms = stats.wait_ms
        t.overhead_ms = max(0.0, t.total_ms - t.wait_ms - t.prompt_ms - t.generation_ms)
        if cancel is not None and cancel.is_set():
            result.note = "cancelled"
        elif stats.stopped_by == "budget" and not result.text:
            result.note = (
                f"the prompt was not read within completion.prompt_ms ({stats.prompt_done} of "
                f"{stats.prompt_tokens} tokens); the next request continues from there"
            )
        else:
            if stats.stopped_by == "budget":
                # Out of writing time mid-line: a last word may be cut in two; drop it.
                result.text = re.sub(r"(?<=\W)\w+$", "", result.text)
                result.note = "cut at completion.generate_ms"
            if not result.text:
                result.note = empty_reason(stats, shaper)
            self.cache.put(window.prefix, window.suffix, result.text)
        return result

    def warm(
        self, path: str, text: str, line: int, col: int, *, cancel: threading.Event | None = None
    ) -> GenerationStats | None:
        """Read the prompt a keystroke here would send into the model's cache, generating
        nothing (the ring is refreshed first if the cursor moved to another definition). For
        idle moments: a real request pre-empts it, and it never pre-empts one. None when there
        is nothing to warm."""
        rel = self._relative(path)
        if rel is None:
            return None
        model = self.model
        settings = self.settings
        offset = cursor_offset(text, line, col)
        window = self._window(text, offset)
        multiline = wants_multiline(window.prefix, window.suffix, settings.multiline)
        context = as_prompt_context(self._context(rel, text, offset, refresh=False, idle=True))
        before = model.last_stats
        for _ in self._stream(model, window, rel, context, multiline, max_tokens=0, cancel=cancel):
            pass
        return model.last_stats if model.last_stats is not before else None

    def _window(self, text: str, offset: int) -> Window:
        s = self.settings
        prefix, suffix = s.prefix_tokens * CHARS_PER_TOKEN, s.suffix_tokens * CHARS_PER_TOKEN
        return make_window(text, offset, int(prefix), int(suffix))

    def _context(
        self, rel: str | None, text: str, offset: int, refresh: bool, *, idle: bool = False
    ) -> list[Candidate]:
        """The ring's chunks for a prompt in `rel`. The ring is refreshed from the cursor when
        asked, the first time, when the cursor is in another file, and, at an idle moment
        (`idle`), when it is in another top-level definition: a keystroke never pays for
        re-reading a changed ring within a file."""
        if rel is None:
            return []
        anchor = self._anchor(rel, text.count("\n", 0, offset) + 1)
        last = self._ring_anchor
        moved = last is None or last[0] != rel or (idle and anchor != last)
        if refresh or not self.ring.filled or moved:
            self.ring.refresh(candidates(self.ws, self.settings.context_tokens, rel, text, offset))
            self._ring_anchor = anchor
        return self.ring.snapshot(exclude_path=rel)

    def _anchor(self, rel: str, line: int) -> tuple[str, str]:
        """The file and top-level definition the cursor is in (as last indexed)."""
        for s in self.ws.symbols_in(rel):
            if not s.parent and s.start_line <= line <= s.end_line:
                return rel, s.qualified_name
        return rel, ""

    def _stream(
        self,
        model: Model,
        window: Window,
        path: str,
        context: list[ContextFile],
        multiline: bool,
        *,
        max_tokens: int,
        cancel: threading.Event | None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        """The model's stream for this hole; `max_tokens=0` only reads the prompt."""
        if self.settings.emulation == "continue" and model.fim_kind == "emulated":
            # No FIM tokens: continue the text before the cursor, context files above it.
            # The shaper still cuts at the block's end and where the suffix repeats.
            head = "".join(path_comment(c.path, c.text) for c in context)
            prompt = head + path_comment(path, "").rstrip("\n") + "\n"
            return model.complete(
                prompt + window.prefix,
                max_tokens=max_tokens,
                stop=() if multiline else ("\n",),
                cancel=cancel,
                budget=budget,
            )
        return model.infill(
            window.prefix,
            window.suffix,
            path=path,
            context=context,
            max_tokens=max_tokens,
            cancel=cancel,
            budget=budget,
        )

    def editor_budget(self) -> Budget:
        """The time limits of a completion an editor asked for while the user types."""
        s = self.settings
        return Budget(prompt_s=s.prompt_ms / 1000, generate_s=s.generate_ms / 1000, background=True)

    def _relative(self, path: str) -> str | None:
        """The repository path of the file, or None for a file outside the repository.

        A private or excluded file refuses completion: its text would go to the model.
        """
        resolved = self.ws.rules.resolve(path)
        why = self.ws.rules.refusal(resolved)  # every name: as opened, through links, outside
        if why:
            shown = resolved.rel if resolved.rel not in (None, ".") else path
            raise AssistError(
                f"{shown}: {why}; no completions here, since the text would go to a model",
                "remove the rule from .assistignore / config if this is wrong",
            )
        return resolved.rel if resolved.rel != "." else None


def empty_reason(stats: GenerationStats, shaper: Shaper) -> str:
    """Why a finished completion is empty, in words for `--json` and the editor's log."""
    if stats.generated_tokens == 0:
        return f"the model ended at once ({stats.stopped_by or 'no tokens'})"
    if shaper.raw and not shaper.text:
        return (
            f"the model wrote {stats.generated_tokens} tokens, none of which fit the hole "
            "(they repeated the text after the cursor, or closed a bracket opened before it)"
        )
    return f"the model wrote only white space ({stats.stopped_by})"


def complete_file(
    ws: Workspace,
    path: str,
    line: int,
    col: int,
    *,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """`assist complete`: complete a file on disk at 1-based `line`, 0-based `col`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AssistError(f"{path}: not UTF-8 text", "completions work on text files") from None
    except OSError as exc:
        raise AssistError(f"{path}: cannot read: {exc.strerror}", "check the path") from None
    if line < 1:
        raise AssistError(f"line {line} is invalid", "lines start at 1")
    return CompletionEngine(ws).complete(str(file.resolve()), text, line - 1, col, on_text=on_text)
