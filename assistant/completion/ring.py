"""The context ring: repository context that stays put while the user types.

A completion prompt starts with definitions from other files. If each keystroke chose them
afresh, the prompt's beginning would change with every identifier typed and llama.cpp would
read the whole prompt again each time. Instead the chosen chunks live in a ring with a stable
order: keystrokes use it as it is, and only when the editor is idle (or a file opens) is it
refreshed from the cursor (new chunks at the end, the oldest unwanted ones out) and read into
the model's cache in the background, so the next keystroke finds it warm. llama.vim keeps its
extra context the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from assistant.completion.context import Candidate


class ContextRing:
    """Context chunks in the order they were added, within a budget of characters."""

    def __init__(self, budget_chars: int) -> None:
        self.budget = budget_chars
        self._chunks: list[Candidate] = []
        self._lock = threading.Lock()
        self.filled = False
        """Whether the ring was ever refreshed: an empty ring may just mean nothing matched."""

    def snapshot(self, exclude_path: str | None = None) -> list[Candidate]:
        """The chunks in ring order; those of the file being edited are left out (its own text
        is in the prompt already)."""
        with self._lock:
            return [c for c in self._chunks if c.chunk.path != exclude_path]

    def refresh(self, wanted: Sequence[Candidate]) -> bool:
        """Add what is wanted now at the end; evict the oldest chunks no longer wanted while
        over budget. True when the ring changed (its prompt must be read again)."""
        with self._lock:
            self.filled = True
            before = [c.key for c in self._chunks]
            have = set(before)
            for c in wanted:
                if c.key not in have:
                    self._chunks.append(c)
                    have.add(c.key)
            keep = {c.key for c in wanted}
            while self._size() > self.budget:
                victim = next((c for c in self._chunks if c.key not in keep), self._chunks[0])
                self._chunks.remove(victim)
            return [c.key for c in self._chunks] != before

    def copy(self) -> ContextRing:
        with self._lock:
            other = ContextRing(self.budget)
            other._chunks = list(self._chunks)
            other.filled = self.filled
            return other

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self.filled = False

    def _size(self) -> int:
        return sum(len(c.text) for c in self._chunks)
