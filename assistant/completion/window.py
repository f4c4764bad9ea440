"""The text around the cursor that a completion prompt shows, and where it stays put.

A prompt's window is only cheap when the model's KV cache already holds it. So the engine keeps
one *place*: where the window starts, and how far the cached text reaches. While the cursor stays
there (typing, moving a few lines) the window keeps its start, and a keystroke reads only what
changed. At a new place (a jump, another file) there is nothing to reuse: the first window is cut
to what the model reads within `completion.cold_ms` at the speed measured so far, and it grows,
lines added before it and after it, in the background while the person types and reads, up to
`completion.prefix_tokens` / `suffix_tokens`. Typing down past the full size moves the start on
by a step, which costs no reading (the cached text is shifted, llm/kv_plan.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from assistant.errors import AssistError

if TYPE_CHECKING:
    from assistant.llm.protocol import GenerationStats

CHARS_PER_TOKEN = 3.5
"""Code averages 3–4 characters a token; windows are cut in characters so that choosing them
costs no tokenizer call on every keystroke."""
MIN_PREFIX_LINES = 2
"""Lines a cold window keeps before the cursor's line even past its budget (when short)."""
STEP = 0.25
"""Share of the full prefix the window's start moves on by when typing reaches its end."""
ANCHOR = 80
"""Characters at the window's start that recognise it after edits elsewhere."""
SPEED_GUESS = 100.0
"""Prompt tokens/s assumed before the first measurement: a slow CPU's figure."""


def cursor_offset(text: str, line: int, col: int) -> int:
    """Offset of (0-based line, 0-based column in characters); out-of-range values clamp."""
    if line < 0 or col < 0:
        raise AssistError(f"position {line + 1}:{col} is invalid", "lines and columns start at 1:0")
    lines = text.split("\n")
    if line >= len(lines):
        return len(text)
    start = sum(len(s) + 1 for s in lines[:line])
    return start + min(col, len(lines[line]))


class PromptSpeed:
    """Prompt tokens/s as measured on recent requests (a moving average): what sizes a new
    place's window."""

    def __init__(self, guess: float = SPEED_GUESS) -> None:
        self.value = guess
        self.samples = 0
        self._lock = threading.Lock()

    def add(self, stats: GenerationStats) -> None:
        """The model's own measure when it has one (a local model, a model host), else this
        request's reading time."""
        rate = stats.prompt_speed
        if rate <= 0:
            read, ms = stats.read_tokens, stats.prompt_ms
            if read < 16 or ms <= 0:
                return
            rate = read / (ms / 1000)
        with self._lock:
            self.value = rate if self.samples == 0 else 0.7 * self.value + 0.3 * rate
            self.samples += 1


@dataclass(frozen=True)
class Window:
    """The text the model sees around the cursor."""

    prefix: str
    """Whole lines before the cursor's line, from the window's start."""
    typed: str
    """The cursor's line up to the cursor."""
    suffix: str
    """The rest of the cursor's line and whole lines after it."""
    start_line: int
    """0-based document line where `prefix` starts."""
    cold: bool = False
    """A new place: cut to what the model reads within `completion.cold_ms`."""

    @property
    def before(self) -> str:
        return self.prefix + self.typed


@dataclass(frozen=True)
class Place:
    """Where the window is: its file, the offset its first line starts at (with the text there,
    to know it again), how many lines after the cursor's it shows, and the cursor it last
    served (the cached text reaches that far)."""

    rel: str
    start: int
    anchor: str
    after: int
    reach: int


@dataclass(frozen=True)
class Sizes:
    """Window budgets in characters: the full ones, and a cold place's."""

    prefix: int
    suffix: int
    cold: int
    """Characters the model reads within `cold_ms` (prefix and suffix together)."""


class Places:
    """The engine's one place, and the windows it cuts; safe to use from several threads."""

    def __init__(self) -> None:
        self.place: Place | None = None
        self._lock = threading.Lock()

    def window(self, rel: str, text: str, offset: int, sizes: Sizes) -> Window:
        """The window for a request at `offset`: the place's if the cursor is still there,
        else a cold one at a new place (which becomes the place)."""
        line_start = text.rfind("\n", 0, offset) + 1
        with self._lock:
            place = self._still_here(self.place, rel, text, line_start, sizes)
            cold = place is None
            if place is None:
                place = _cold_place(rel, text, line_start, sizes)
            elif line_start - place.start > sizes.prefix:
                place = _moved_on(place, text, line_start, sizes)
            place = replace(place, reach=offset)
            self.place = place
        return cut(text, offset, place.start, place.after, sizes, cold=cold)

    def grown(self, rel: str, text: str, offset: int, sizes: Sizes) -> tuple[Window, Place] | None:
        """The window one growth step larger than the place's (a step reads about what a cold
        window does), and the place it would make; None when it is full size or the cursor
        has left."""
        line_start = text.rfind("\n", 0, offset) + 1
        with self._lock:
            place = self._still_here(self.place, rel, text, line_start, sizes)
        if place is None:
            return None
        room = sizes.cold
        start, after = place.start, place.after
        if start > 0 and line_start - start < sizes.prefix:
            # Earlier whole lines, about three quarters of a step, within the full size.
            want = max(0, start - int(room * 0.75), line_start - sizes.prefix)
            new = 0 if want == 0 else text.find("\n", want - 1) + 1
            if 0 <= new < start:
                room -= start - new
                start = new
        end = _suffix_end(text, offset, after)
        while room > 0 and end < len(text) and end - offset < sizes.suffix:
            nl = text.find("\n", end)
            nxt = len(text) if nl < 0 else nl + 1
            if nxt - end > room or nxt - offset > sizes.suffix:
                break
            room -= nxt - end
            end, after = nxt, after + 1
        if start == place.start and after == place.after:
            return None
        grown = replace(place, start=start, anchor=text[start : start + ANCHOR], after=after)
        return cut(text, offset, start, after, sizes), grown

    def adopt(self, grown: Place) -> None:
        """Make a grown place the place (its window was read into the cache), unless the
        cursor moved to another place meanwhile."""
        with self._lock:
            if self.place is not None and self.place.rel == grown.rel:
                self.place = replace(grown, reach=self.place.reach)

    def forget(self) -> None:
        with self._lock:
            self.place = None

    @staticmethod
    def _still_here(
        place: Place | None, rel: str, text: str, line_start: int, sizes: Sizes
    ) -> Place | None:
        """The place, if the cursor is in it and what it would newly need to read is within
        what a cold place would read anyway."""
        if place is None or place.rel != rel or line_start < place.start:
            return None
        if text[place.start : place.start + ANCHOR] != place.anchor:
            return None  # edited above the cursor, or another text altogether
        reach_line = text.rfind("\n", 0, min(place.reach, len(text))) + 1
        if line_start - reach_line > sizes.cold:
            return None  # a jump down past what the cache holds: as far as a new place
        return place


def _cold_place(rel: str, text: str, line_start: int, sizes: Sizes) -> Place:
    """A new place: whole lines before the cursor's, then after it, within `sizes.cold`."""
    prefix_room = max(1, int(sizes.cold * sizes.prefix / max(1, sizes.prefix + sizes.suffix)))
    start = line_start
    lines = 0
    while start > 0:
        previous = text.rfind("\n", 0, start - 1) + 1
        if line_start - previous > prefix_room and lines >= MIN_PREFIX_LINES:
            break
        if line_start - previous > sizes.prefix:
            break
        start, lines = previous, lines + 1
    at = text.find("\n", line_start)
    rest = (len(text) if at < 0 else at) - line_start  # the cursor's line comes whole
    suffix_room = max(0, sizes.cold - (line_start - start) - rest)
    after = 0
    while at >= 0 and sizes.suffix > 0:
        nl = text.find("\n", at + 1)
        end = len(text) if nl < 0 else nl
        if end - at > suffix_room:
            break
        suffix_room -= end - at
        after += 1
        at = nl
    return Place(rel, start, text[start : start + ANCHOR], after, line_start)


def _moved_on(place: Place, text: str, line_start: int, sizes: Sizes) -> Place:
    """The window's start moved on past its full size, by a step: lines leave its front."""
    want = line_start - int(sizes.prefix * (1 - STEP))
    start = text.find("\n", want - 1) + 1 if want > 0 else 0
    start = min(max(start, place.start), line_start)
    return replace(place, start=start, anchor=text[start : start + ANCHOR])


def _suffix_end(text: str, offset: int, after: int) -> int:
    """Offset just past the `after`-th line after the cursor's (its newline included)."""
    end = text.find("\n", offset)
    for _ in range(after):
        if end < 0:
            break
        end = text.find("\n", end + 1)
    return len(text) if end < 0 else end + 1


def cut(
    text: str, offset: int, start: int, after: int, sizes: Sizes, *, cold: bool = False
) -> Window:
    """The window from `start` to `after` lines past the cursor's. Neither side ever exceeds
    its full budget: a line longer than that (minified code) is cut inside the line."""
    line_start = text.rfind("\n", 0, offset) + 1
    start = min(start, line_start)
    typed = text[line_start:offset]
    prefix = text[start:line_start]
    if len(typed) > sizes.prefix:
        prefix, typed = "", typed[-sizes.prefix :]
    elif len(prefix) + len(typed) > sizes.prefix:
        cut_at = len(prefix) + len(typed) - sizes.prefix
        newline = prefix.find("\n", cut_at)
        prefix = prefix[newline + 1 :] if newline >= 0 else ""
    end = min(_suffix_end(text, offset, after), offset + sizes.suffix)
    suffix = text[offset:end]
    if end < len(text) and end == offset + sizes.suffix:
        newline = suffix.rfind("\n")
        suffix = suffix[: newline + 1] if newline >= 0 else suffix
    return Window(prefix, typed, suffix, text.count("\n", 0, line_start - len(prefix)), cold)
