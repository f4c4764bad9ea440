"""How to get a new prompt into a KV cache that holds an older one, reading as little as possible.

The beginning both share stays where it is. Runs of the older prompt that the new one has at
another place are moved there (llama.cpp shifts the positions of cached keys; nothing is
recomputed), and only the rest is read. llama-server's `--cache-reuse` moves runs towards the
front, when text before them was removed; a completion prompt also grows in the middle (a line
typed above the text after the cursor, a window grown backwards, a chunk added to the context
ring), so runs move both ways here.

A moved run's keys were computed with other text before them; llama.cpp and llama.vim accept
that approximation for the reading it saves (measured: the next token's distribution moves by a
KL divergence of 0.04 to 0.2 nats on a 135M model, the most likely token unchanged).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

HOLE = -1
"""A position of the cache that holds nothing (read no further, or freed)."""
MIN_RUN = 12
"""Shortest run worth moving: each move is two cache operations and a key shift, and a short
run matches by chance (indentation, a common line)."""
CANDIDATES = 8
"""Places of one run looked at before taking the one that matches longest."""


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
    without one run landing on another (llama_context.py)."""
    keep = 0
    for a, b in zip(cached, prompt, strict=False):
        if a != b or a == HOLE:
            break
        keep += 1
    total = len(prompt)
    if not shift or total - keep < min_run:
        return Plan(keep, (), total)
    # Every run of `min_run` tokens the cache holds past the shared start, by its tokens.
    index: dict[tuple[int, ...], list[int]] = {}
    tail = cached[keep:]
    for i in range(len(tail) - min_run + 1):
        key = tuple(tail[i : i + min_run])
        if HOLE not in key:
            index.setdefault(key, []).append(keep + i)
    moves: list[Move] = []
    at, floor = keep, keep  # prompt position; cache positions below `floor` are taken
    while at + min_run <= total:
        starts = index.get(tuple(prompt[at : at + min_run]))
        if not starts:
            at += 1
            continue
        best, best_len = -1, 0
        first = bisect.bisect_left(starts, floor)
        for src in starts[first : first + CANDIDATES]:
            n = min_run
            while src + n < len(cached) and at + n < total and cached[src + n] == prompt[at + n]:
                n += 1
            if n > best_len:
                best, best_len = src, n
        if best < 0:
            at += 1
            continue
        moves.append(Move(best, at, best_len))
        at += best_len
        floor = best + best_len
    return Plan(keep, tuple(moves), total)
