"""Full and incremental indexing: files -> symbols -> chunks -> SQLite rows, then vectors.

Parsing runs in worker processes with a hard per-file deadline: tree-sitter can spend minutes
on one pathological file, and a stuck worker is killed rather than waited for. Unchanged files
(same size and mtime, or same content hash) cost a stat, nothing more. Each file's rows are
replaced in one transaction, so killing the indexer at any moment leaves a readable index.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import multiprocessing.pool
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.config import IndexSettings
from assistant.index.chunks import make_chunks
from assistant.index.languages import language_for_path
from assistant.index.progress import Progress
from assistant.index.store import (
    ChunkRow,
    ChunkValues,
    Store,
    SymbolValues,
    chunk_values,
    fts_columns,
    symbol_values,
)
from assistant.index.symbols import extract_symbols
from assistant.repo.files import RepoFile, content_problem, scan
from assistant.repo.privacy import PathRules
from assistant.repo.secrets import redact

if TYPE_CHECKING:
    from assistant.index.embeddings import Embedder
    from assistant.index.remote_embeddings import RemoteEmbedder
    from assistant.index.vectors import VectorIndex

log = logging.getLogger(__name__)

_BATCH = 16
_COMMIT_EVERY_S = 0.5


@dataclass
class IndexReport:
    files: int = 0
    parsed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0
    redacted: dict[str, int] = field(default_factory=dict)
    """Files whose text had secrets cut out, and how many."""
    keyword_seconds: float = 0.0
    """Listing, parsing and the keyword index: when search by keywords is ready."""
    vector_seconds: float = 0.0
    removed_chunk_ids: list[int] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """The whole run, every phase."""
        return self.keyword_seconds + self.vector_seconds


@dataclass(frozen=True)
class Parsed:
    path: str
    status: str
    """`ok`, `same` (content hash unchanged) or `skip`."""
    hash: str = ""
    reason: str = ""
    symbols: tuple[SymbolValues, ...] = ()
    chunks: tuple[ChunkValues, ...] = ()
    keywords: tuple[tuple[str, str, str], ...] = ()
    """The FTS columns of each chunk, computed here so the work spreads over the workers."""
    redacted: int = 0
    """Secrets cut out of the text (repo/secrets.py) before it was chunked."""


def parse_file(
    root: str,
    f: RepoFile,
    old_hash: str | None,
    max_line_length: int,
    chunk_lines: int,
    *,
    bounded: bool = True,
) -> Parsed:
    """Read, check, hash, extract and chunk one file (runs in a worker process)."""
    try:
        with open(os.path.join(root, f.path), "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return Parsed(f.path, "skip", reason=f"cannot read: {exc.strerror}")
    problem = content_problem(data, max_line_length)
    if problem:
        return Parsed(f.path, "skip", reason=problem)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if digest == old_hash:
        return Parsed(f.path, "same", hash=digest)
    # Secrets found by content never reach the index (nor, through it, a prompt).
    redacted = redact(data.decode("utf-8"))
    text = redacted.text
    if redacted.count:
        data = text.encode("utf-8")
    symbols = tuple(extract_symbols(data, f.language, bounded=bounded)) if f.language else ()
    chunks = tuple(make_chunks(f.path, text, list(symbols), chunk_lines))
    keywords = tuple(
        fts_columns(c.qualified_name, f.path, c.signature, c.doc, c.text) for c in chunks
    )
    return Parsed(
        f.path,
        "ok",
        hash=digest,
        redacted=redacted.count,
        symbols=tuple(map(symbol_values, symbols)),
        chunks=tuple(map(chunk_values, chunks)),
        keywords=keywords,
    )


def _parse_batch(
    root: str, batch: Sequence[tuple[RepoFile, str | None]], max_line_length: int, lines: int
) -> list[Parsed]:
    # A worker is killed at its batch's deadline, so tree-sitter's own budget (which costs a
    # second parse: see symbols._parse) is not needed here.
    return [parse_file(root, f, h, max_line_length, lines, bounded=False) for f, h in batch]


def _ready(_: int) -> int:
    return os.getpid()


class _Workers:
    """A process pool that can be killed and replaced when a task overruns its deadline."""

    def __init__(self, n: int) -> None:
        self.n = n
        method = "fork" if threading.active_count() == 1 else "spawn"
        self.ctx = multiprocessing.get_context(method)
        self.pool: multiprocessing.pool.Pool | None = None

    def get(self) -> multiprocessing.pool.Pool:
        if self.pool is None:
            self.pool = self.ctx.Pool(self.n)
            # Start every worker before any deadline runs: a spawned worker imports the
            # package first, which must not count as parse time.
            self.pool.map(_ready, range(self.n), chunksize=1)
        return self.pool

    def kill(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None


def parse_files(
    root: Path,
    todo: Sequence[tuple[RepoFile, str | None]],
    settings: IndexSettings,
    cancel: threading.Event | None = None,
) -> Iterator[Parsed]:
    """Parse `todo` (file, stored hash) in parallel, yielding results as they come."""
    lines, longest = settings.chunk_lines, settings.max_line_length
    workers = settings.workers or os.cpu_count() or 1
    if len(todo) <= 8:
        # A few files (a save in the editor): starting processes costs more than it saves.
        # Parse here; tree-sitter's own time budget in symbols.py bounds a hostile file.
        for f, old_hash in todo:
            if cancel is not None and cancel.is_set():
                return
            yield parse_file(str(root), f, old_hash, longest, lines)
        return
    pending: list[list[tuple[RepoFile, str | None]]] = [  # batches, popped from the end
        list(todo[i : i + _BATCH]) for i in range(0, len(todo), _BATCH)
    ]
    pending.reverse()
    pool = _Workers(workers)
    Batch = list[tuple[RepoFile, str | None]]
    in_flight: list[tuple[multiprocessing.pool.AsyncResult[list[Parsed]], Batch, float, float]]
    in_flight = []
    try:
        while pending or in_flight:
            if cancel is not None and cancel.is_set():
                return
            while pending and len(in_flight) < workers:
                batch = pending.pop()
                deadline = settings.parse_timeout * (1 if len(batch) == 1 else 2) + 0.05 * len(
                    batch
                )
                result = pool.get().apply_async(_parse_batch, (str(root), batch, longest, lines))
                in_flight.append((result, batch, time.monotonic(), deadline))
            in_flight[0][0].wait(0.05)
            for item in list(in_flight):
                res, b, st, dl = item
                if res.ready():
                    in_flight.remove(item)
                    try:
                        yield from res.get()
                    except Exception as exc:  # a crash inside the parser for this batch
                        log.warning("parser failed on a batch: %s", exc)
                        if len(b) == 1:
                            yield Parsed(b[0][0].path, "skip", reason=f"parser crashed: {exc}")
                        else:
                            pending.extend([x] for x in b)
                elif time.monotonic() - st > dl:
                    # Too slow: kill every worker, requeue innocent files one by one.
                    pool.kill()
                    for other_res, other_batch, _, _ in in_flight:
                        if other_res is res:
                            continue
                        pending.extend([x] for x in other_batch)
                    if len(b) == 1:
                        yield Parsed(
                            b[0][0].path,
                            "skip",
                            reason=f"parse timed out after {settings.parse_timeout:g} s",
                        )
                    else:
                        pending.extend([x] for x in b)
                    in_flight.clear()
                    break
    finally:
        if in_flight:
            pool.kill()  # abandoned (cancelled) work: do not wait for it
        else:
            pool.close()


def index_keywords(
    root: Path,
    store: Store,
    rules: PathRules,
    settings: IndexSettings,
    cancel: threading.Event | None = None,
    only: set[str] | None = None,
) -> Iterator[Progress | IndexReport]:
    """Bring files, symbols, chunks and keywords up to date; yields progress, then the report.

    `only` limits the work to these paths (the watcher's changed files); otherwise the whole
    repository is reconciled, which also removes files that are gone or newly excluded.
    """
    started = time.perf_counter()
    report = IndexReport()
    yield Progress("scan", 0, 0)
    files, skips = scan(
        root, rules, settings.max_file_size, only, settings.text_extensions, language_for_path
    )
    report.skipped.extend((s.path, s.reason) for s in skips)
    states = store.file_states()
    present = {f.path for f in files}
    report.files = len(files)
    todo: list[tuple[RepoFile, str | None]] = []
    for f in files:
        old = states.get(f.path)
        if old is not None and old.size == f.size and old.mtime_ns == f.mtime_ns:
            report.unchanged += 1
            continue
        todo.append((f, old.hash if old else None))
    gone = [p for p in states if p not in present and (only is None or p in only)]
    by_path = {f.path: f for f, _ in todo}
    total = len(todo)
    parse_started = time.monotonic()
    yield Progress("parse", 0, total, elapsed=0.0)
    done = 0
    last_commit = time.monotonic()
    store.db.execute("BEGIN IMMEDIATE")
    try:
        store.rebuild_fts_if_stale()
        for path in gone:
            report.removed_chunk_ids.extend(store.delete_file(path))
            report.removed += 1
        for parsed in parse_files(root, todo, settings, cancel):
            f = by_path[parsed.path]
            if parsed.status == "skip":
                report.skipped.append((parsed.path, parsed.reason))
                report.removed_chunk_ids.extend(store.delete_file(parsed.path))
            elif parsed.status == "same":
                store.touch_file(parsed.path, f.size, f.mtime_ns)
                report.unchanged += 1
            else:
                report.removed_chunk_ids.extend(
                    store.replace_file(
                        parsed.path,
                        content_hash=parsed.hash,
                        size=f.size,
                        mtime_ns=f.mtime_ns,
                        language=f.language,
                        symbols=parsed.symbols,
                        chunks=parsed.chunks,
                        keywords=parsed.keywords,
                    )
                )
                report.parsed += 1
                if parsed.redacted:
                    report.redacted[parsed.path] = parsed.redacted
                    log.info("%s: %d secrets left out of the index", parsed.path, parsed.redacted)
            done += 1
            if time.monotonic() - last_commit > _COMMIT_EVERY_S:
                store.db.execute("COMMIT")
                store.db.execute("BEGIN IMMEDIATE")
                last_commit = time.monotonic()
                yield Progress("parse", done, total, parsed.path, last_commit - parse_started)
        if only is None:
            store.record_skips(report.skipped)
        store.set_meta("rules", rules.fingerprint)
        store.db.execute("COMMIT")
    except BaseException:
        store.db.execute("ROLLBACK")
        raise
    for path, reason in report.skipped:
        log.info("skipped %s: %s", path, reason)
    report.keyword_seconds = time.perf_counter() - started
    yield Progress("parse", done, total, elapsed=time.monotonic() - parse_started)
    yield report


_EMBED_BATCH = 32
_SAVE_EVERY_S = 30.0


def index_vectors(
    store: Store,
    embedder: Embedder | RemoteEmbedder,
    hnsw_path: Path,
    removed_chunk_ids: Sequence[int] = (),
    cancel: threading.Event | None = None,
    publish: Callable[[VectorIndex], None] | None = None,
) -> Iterator[Progress | int]:
    """Embed every chunk that has no vector yet; yields progress, then the number embedded.

    Vectors go to SQLite first (the truth), then into the HNSW index, which is saved
    atomically at the end and every half minute, so a kill loses at most the unsaved HNSW
    part, which the next open rebuilds from SQLite. Search works throughout: `publish` hands
    the growing index to this process's searches, and another process's search adds what
    SQLite has beyond the saved file (`VectorIndex.catch_up`).
    """
    import numpy as np

    from assistant.index.vectors import VectorIndex

    identity = embedder.identity
    if store.meta("embedder") != identity:
        with store.transaction():
            store.drop_vectors_except(identity)
            store.set_meta("embedder", identity)
            store.set_meta("embedder_dim", str(embedder.dim))
    index, rebuilt = VectorIndex.open(hnsw_path, store, identity, embedder.dim)
    index.remove(list(removed_chunk_ids))
    if publish is not None:
        publish(index)
    total = store.count_missing_vectors(identity)
    done = 0
    dirty = rebuilt or bool(removed_chunk_ids)
    last_save = time.monotonic()
    save_cost = 0.0
    embed_started = time.monotonic()
    yield Progress("embed", 0, total)
    per_call = getattr(embedder, "rows_per_call", _EMBED_BATCH)
    last_id = 0
    while not (cancel is not None and cancel.is_set()):
        rows = store.chunks_without_vectors(identity, per_call, after=last_id)
        if not rows:
            break
        ids = [row.id for row in rows]
        last_id = ids[-1]
        matrix = embedder.embed([_embedding_text(row) for row in rows], cancel=cancel)
        if cancel is not None and cancel.is_set():
            break
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        with store.transaction():
            store.put_vectors(identity, zip(ids, (v.tobytes() for v in matrix), strict=True))
        index.add(ids, matrix)
        dirty = True
        done += len(ids)
        if time.monotonic() - last_save > max(_SAVE_EVERY_S, 10 * save_cost):
            # A save writes the whole file: on a large index it takes seconds, so saves are
            # spaced to cost at most a tenth of the time (searches meanwhile catch up from
            # SQLite, which has every vector at once).
            started_save = time.monotonic()
            with store.transaction():
                index.save(hnsw_path, store, identity)
            last_save = time.monotonic()
            save_cost = last_save - started_save
            dirty = False
        yield Progress("embed", done, total, elapsed=time.monotonic() - embed_started)
    if dirty:
        with store.transaction():
            index.save(hnsw_path, store, identity)
    yield done


def _embedding_text(row: ChunkRow) -> str:
    head = f"{row.path} {row.kind} {row.qualified_name}"
    doc = f"\n{row.doc}" if row.doc and row.doc not in row.text else ""
    return f"{head}{doc}\n{row.text}"
