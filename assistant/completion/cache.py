"""Completions by the text around the cursor; also serves a person typing into one.

Keyed by the text just before the cursor and just after it, not by the prompt's window: the
window at one place grows in the background, and a completion found with a smaller window is
still the one to show there.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

BEFORE_CHARS = 1024
AFTER_CHARS = 256
TYPED_AHEAD = 256
"""Characters typed into a shown completion that the cache still follows."""


def around_cursor(text: str, offset: int) -> tuple[str, str]:
    """What a completion is cached by: the text before the cursor (with room for typing into
    an earlier completion) and after it."""
    return text[max(0, offset - BEFORE_CHARS - TYPED_AHEAD) : offset], text[
        offset : offset + AFTER_CHARS
    ]


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class CompletionCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, before: str, after: str) -> str | None:
        """The completion for this cursor, or the rest of one the person has typed into."""
        if self.size <= 0:
            return None
        tail = before[-BEFORE_CHARS:]
        key = (_digest(tail), _digest(after[:AFTER_CHARS]))
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
                return hit[1]
            # Typed ahead: an earlier cursor's text plus the start of its completion is this.
            longer = before[-(BEFORE_CHARS + TYPED_AHEAD) :]
            for (_, after_key), (old, text) in reversed(self.entries.items()):
                if after_key != key[1]:
                    continue
                at = longer.rfind(old)
                if at < 0:
                    continue
                typed = longer[at + len(old) :]
                if typed and len(typed) < len(text) and text.startswith(typed):
                    return text[len(typed) :]
        return None

    def put(self, before: str, after: str, text: str) -> None:
        if self.size <= 0:
            return
        tail = before[-BEFORE_CHARS:]
        with self.lock:
            self.entries[(_digest(tail), _digest(after[:AFTER_CHARS]))] = (tail, text)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
