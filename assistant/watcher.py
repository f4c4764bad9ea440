"""Keeps the index fresh: watchdog events, debounced into batches, applied incrementally.

Events alone cannot be trusted: on a 10,000-file branch switch the kernel's inotify queue
overflows and most changed files produce no event at all (watchdog only logs a warning). So a
burst of events, a change of `.git/HEAD`, a changed ignore file, or a directory event ends in a
reconciling rescan of the whole tree (stat first, then content hash: tens of milliseconds for
10,000 unchanged files), and a slow periodic rescan is the safety net. When watching is
impossible (inotify watch limit, permissions, the directory gone), periodic rescans take over
with one log line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from assistant.errors import AssistError
from assistant.index.indexer import IndexReport
from assistant.index.progress import Progress
from assistant.workspace import INDEX_DIR, Workspace

log = logging.getLogger(__name__)

_RULE_FILES = (".assistignore", ".gitignore")
BULK = 50
"""A batch with more files than this (a branch switch, a big checkout) reports its progress;
smaller ones finish before a progress bar would be worth drawing."""


@dataclass(frozen=True)
class Batch:
    """What one round of the watcher did, for front-ends and tests."""

    paths: int
    full: bool
    reason: str
    report: IndexReport | None
    seconds: float


class _Collector(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        for raw in paths:
            self.watcher._note(os.fsdecode(raw), event.is_directory, event.event_type)


class Watcher:
    """Watches `ws.root` and re-indexes what changed; one thread, started by `start()`."""

    def __init__(
        self,
        ws: Workspace,
        *,
        debounce: float = 0.15,
        burst: int = 500,
        rescan_every: float = 300.0,
        vectors: bool | None = None,
        on_batch: Callable[[Batch], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        """`on_progress` hears only of bulk batches (over `BULK` files)."""
        self.ws = ws
        self.root = ws.root
        self.debounce = debounce
        self.burst = burst
        self.rescan_every = rescan_every
        self.vectors = vectors
        self.on_batch = on_batch
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending: set[str] = set()
        self._full_reason = ""
        self._last_event = 0.0
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._thread: threading.Thread | None = None
        self.watching = False
        self.batches = 0

    # -- events ------------------------------------------------------------------------------

    def _note(self, path: str, is_dir: bool, kind: str) -> None:
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return
        with self._lock:
            if rel == ".git/HEAD" or rel.startswith(".git/refs/heads"):
                self._full_reason = self._full_reason or "branch switch (.git/HEAD changed)"
            elif rel == ".git" or rel.startswith((".git/", INDEX_DIR + "/")) or rel == INDEX_DIR:
                return
            elif rel in (".", ""):
                if kind in ("deleted", "moved"):
                    self._full_reason = "the watched directory moved or was deleted"
                return
            elif rel.rsplit("/", 1)[-1] in _RULE_FILES:
                self._full_reason = self._full_reason or f"{rel} changed"
            elif is_dir and kind in ("moved", "deleted", "created"):
                self._full_reason = self._full_reason or f"directory {kind}: {rel}"
            else:
                self._pending.add(rel)
                if len(self._pending) > self.burst:
                    self._full_reason = self._full_reason or f"burst of {len(self._pending)}+"
            self._last_event = time.monotonic()
        self._wake.set()

    def request_rescan(self, reason: str = "requested") -> None:
        with self._lock:
            self._full_reason = self._full_reason or reason
            self._last_event = time.monotonic() - self.debounce
        self._wake.set()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            observer = Observer()
            observer.schedule(_Collector(self), str(self.root), recursive=True)
            observer.start()
            self._observer = observer
            self.watching = True
        except OSError as exc:
            # Typically ENOSPC: the inotify watch limit (fs.inotify.max_user_watches).
            log.warning(
                "cannot watch %s (%s); falling back to a rescan every %.0f s",
                self.root, exc, min(self.rescan_every, 30.0),
            )  # fmt: skip
            self.rescan_every = min(self.rescan_every, 30.0)
            self.watching = False
        self._thread = threading.Thread(target=self._run, name="assist-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ------------------------------------------------------------------------------

    def _take(self) -> tuple[set[str], str]:
        with self._lock:
            paths, reason = self._pending, self._full_reason
            self._pending, self._full_reason = set(), ""
        return paths, reason

    def _quiet(self) -> bool:
        with self._lock:
            return time.monotonic() - self._last_event >= self.debounce

    def _run(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(timeout=min(self.rescan_every, 1.0))
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._observer is not None and self.watching and not self._observer.is_alive():
                log.warning("the file watcher stopped; falling back to periodic rescans")
                self.watching = False
                self.rescan_every = min(self.rescan_every, 30.0)
            due = time.monotonic() - last_scan >= self.rescan_every
            with self._lock:
                has_work = bool(self._pending or self._full_reason)
            if not has_work and not due:
                continue
            # Coalesce: wait until the events stop for `debounce` seconds.
            while has_work and not self._quiet() and not self._stop.is_set():
                time.sleep(self.debounce / 3)
            paths, reason = self._take()
            if due and not reason:
                reason = "periodic rescan"
            if not self.root.is_dir():
                log.warning("%s is gone; waiting for it to come back", self.root)
                continue
            self._apply(paths, reason)
            if reason:
                last_scan = time.monotonic()

    def _apply(self, paths: set[str], reason: str) -> None:
        started = time.perf_counter()
        full = bool(reason)
        if full:
            self.ws.reload_rules()  # cheap, and an ignore file may be what changed
        report: IndexReport | None = None
        try:
            for item in self.ws.index(vectors=self.vectors, only=None if full else paths):
                if isinstance(item, IndexReport):
                    report = item
                elif self.on_progress is not None and item.total > BULK:
                    self.on_progress(item)
        except AssistError as exc:
            # Typically another process holds the writer lock. Keep the work and retry, so
            # nothing is lost if that process was a one-off `assist index`.
            log.info("not indexing this batch yet: %s", exc.message)
            with self._lock:
                self._pending |= paths
                self._full_reason = self._full_reason or reason
            self._stop.wait(0.5)
            return
        except Exception:
            log.exception("indexing a watcher batch failed; a full rescan will follow")
            with self._lock:
                self._pending |= paths
                self._full_reason = self._full_reason or "retry after a failure"
            return
        self.batches += 1
        batch = Batch(len(paths), full, reason or "changed files", report,
                      time.perf_counter() - started)  # fmt: skip
        log.info("watcher: %s, %d paths in %.2f s", batch.reason, batch.paths, batch.seconds)
        if self.on_batch is not None:
            self.on_batch(batch)
