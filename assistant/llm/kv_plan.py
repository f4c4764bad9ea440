"""How to get a new prompt into a KV cache that holds an older one, reading as little as possible.

The beginning both share stays where it is. Runs of the older prompt that the new one has at
another place are moved there (llama.cpp shifts the positions of cached keys; nothing is
recomputed), and only the rest is read. llama-server's `--cache-reuse` moves runs towards the
front, when text before them was removed; a completion prompt also grows in the middle (a line
typed above the text after the cursor, a window grown backwards, a chunk added to the context
ring), so runs move both ways here.

A moved run's keys were computed with other text before them; llama.cpp and llama.vim accept
that approximation for the reading it saves (bench/kv_shift_quality.py: on the default model the
most likely next token was the one a prompt read from scratch gives in 37 of 40 cases, the
distributions a KL divergence of 0.03 nats apart on average).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HOLE = -1
"""A position of the cache that holds nothing (read no further, or freed)."""
MIN_RUN = 12
"""Shortest run worth moving: each move is two cache operations and a key shift, and a short
run matches by chance (indentation, a common line)."""
CANDIDATES = 8
"""Places in the cache looked at for one run of the prompt."""
MAX_RUNS = 200
"""Runs weighed against each other at most, the longest."""
WORK = 8
"""Tokens compared per token of the two sides, at most: text that repeats all over (a table
of numbers) would otherwise make a plan cost more than it saves."""


@dataclass(frozen=True)
class Move:
    """A run of `length` cached tokens at `src` that the new prompt has at `dst`."""

    src: int
    dst: int
    length: int


@dataclass(frozen=True)
class Plan:
    """The cache made to hold `total` prompt tokens: `keep` shared at the start, `moves` (in
    prompt order, a run may also stay in place), and the gaps between them read."""

    keep: int
    moves: tuple[Move, ...]
    total: int

    @property
    def reused(self) -> int:
        """Tokens used where they are: the shared beginning and runs that did not move."""
        return self.keep + sum(m.length for m in self.moves if m.src == m.dst)

    @property
    def shifted(self) -> int:
        return sum(m.length for m in self.moves if m.src != m.dst)

    @property
    def to_read(self) -> int:
        return self.total - self.reused - self.shifted

    def steps(self) -> list[tuple[str, int, int]]:
        """("read" | "move", start, end) over the prompt from `keep` to `total`, in order."""
        out: list[tuple[str, int, int]] = []
        at = self.keep
        for m in self.moves:
            if m.dst > at:
                out.append(("read", at, m.dst))
            out.append(("move", m.dst, m.dst + m.length))
            at = m.dst + m.length
        if at < self.total:
            out.append(("read", at, self.total))
        return out


def plan_reuse(
    cached: Sequence[int], prompt: Sequence[int], *, shift: bool = True, min_run: int = MIN_RUN
) -> Plan:
    """The plan that fills the cache with `prompt` from `cached` (a token per position, `HOLE`
    where there is none). Moves keep their order on both sides, so they can be carried out
    without one run landing on another (llama_runtime.py); among such sets of runs, the one
    that reuses the most is taken, so that a short run matching by chance does not cost a long
    one after it."""
    keep = 0
    for a, b in zip(cached, prompt, strict=False):
        if a != b or a == HOLE:
            break
        keep += 1
    total = len(prompt)
    if not shift or total - keep < min_run:
        return Plan(keep, (), total)
    return Plan(keep, _best_chain(_runs(cached, prompt, keep, min_run)), total)


def _runs(cached: Sequence[int], prompt: Sequence[int], keep: int, min_run: int) -> list[Move]:
    """Every maximal run of at least `min_run` tokens the prompt and the cache share past the
    common start (at most `CANDIDATES` places of each in the cache)."""
    index: dict[tuple[int, ...], list[int]] = {}
    for i in range(keep, len(cached) - min_run + 1):
        key = tuple(cached[i : i + min_run])
        if HOLE not in key:
            index.setdefault(key, []).append(i)
    runs: list[Move] = []
    reached: dict[int, int] = {}  # per diagonal (src - dst): the prompt position a run reached
    work = WORK * (len(cached) + len(prompt))  # tokens compared: text repeated all over stops
    for at in range(keep, len(prompt) - min_run + 1):
        if work <= 0:
            break
        for src in index.get(tuple(prompt[at : at + min_run]), ())[:CANDIDATES]:
            if reached.get(src - at, -1) > at:
                continue  # inside a run already found
            n = min_run
            end = min(len(cached) - src, len(prompt) - at)
            while n < end and cached[src + n] == prompt[at + n]:
                n += 1
            work -= n
            runs.append(Move(src, at, n))
            reached[src - at] = at + n
    return runs


def _best_chain(runs: list[Move]) -> tuple[Move, ...]:
    """The runs, in order on both sides and overlapping on neither, that cover the most (of
    the `MAX_RUNS` longest: text repeated all over would otherwise make this slow)."""
    runs = sorted(runs, key=lambda m: -m.length)[:MAX_RUNS]
    runs.sort(key=lambda m: (m.dst, m.src))
    best: list[int] = []
    before: list[int] = []
    for i, run in enumerate(runs):
        best.append(run.length)
        before.append(-1)
        for j in range(i):
            prior = runs[j]
            fits = prior.dst + prior.length <= run.dst and prior.src + prior.length <= run.src
            if fits and best[j] + run.length > best[i]:
                best[i], before[i] = best[j] + run.length, j
    if not runs:
        return ()
    chain = []
    i = max(range(len(runs)), key=best.__getitem__)
    while i >= 0:
        chain.append(runs[i])
        i = before[i]
    return tuple(reversed(chain))
