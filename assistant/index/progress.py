"""Where indexing is: one progress type for every front-end (the CLI's line, the TUI's bar and
status, the language server's `$/progress`), with phase labels, rate and time left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["scan", "parse", "embed"]
PHASE_LABELS: dict[Phase, str] = {
    "scan": "listing files",
    "parse": "symbols + keywords",
    "embed": "vectors",
}


@dataclass(frozen=True)
class Progress:
    """Where indexing is: one phase, its counts, and its speed so far."""

    phase: Phase
    done: int
    total: int
    detail: str = ""
    """The file or item just done, when there is one."""
    elapsed: float = 0.0
    """Seconds since this phase began."""

    @property
    def label(self) -> str:
        return PHASE_LABELS[self.phase]

    @property
    def rate(self) -> float:
        """Items a second in this phase so far (0 until there is something to measure)."""
        return self.done / self.elapsed if self.elapsed > 0.5 and self.done else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far, or None when unknown."""
        rate = self.rate
        return (self.total - self.done) / rate if rate and self.total >= self.done else None

    def describe(self) -> str:
        """`vectors 120/1,760 · 19/s · 1m 26s left`, for a status line."""
        if not self.total:
            return f"{self.label} …"
        text = f"{self.label} {self.done:,}/{self.total:,}"
        if self.rate:
            text += f" · {self.rate:,.0f}/s"
        eta = self.eta
        if eta is not None and self.done < self.total:
            text += f" · {duration(eta)} left"
        return text


def duration(seconds: float) -> str:
    """`0.4 s`, `12 s`, `3m 05s`, `1h 02m`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
