"""An hnswlib HNSW index over chunk vectors, saved atomically and checked on load.

hnswlib's own `save_index` overwrites in place and its loader checks little (a damaged header
aborts the process; flipped bytes load silently). So the file is written to a temporary name,
fsynced and renamed, its CRC is recorded in SQLite, and a file whose CRC does not match is never
handed to hnswlib: the index is rebuilt from the vectors kept in SQLite instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import hnswlib
import numpy as np

from assistant.index.store import Store
from assistant.repo.atomic import replacing

log = logging.getLogger(__name__)

_M, _EF_CONSTRUCTION, _EF_SEARCH = 16, 200, 128
_LOAD_SLICE = 4096


def file_crc(path: Path) -> str:
    crc = 0
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}:{path.stat().st_size}"


class VectorIndex:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.index = hnswlib.Index(space="cosine", dim=dim)
        self.index.init_index(
            max_elements=max(capacity, 16),
            ef_construction=_EF_CONSTRUCTION,
            M=_M,
            allow_replace_deleted=True,
        )
        self.index.set_ef(_EF_SEARCH)
        self.live: set[int] = set()
        self.lock = threading.RLock()
        """Searches run while the indexer adds vectors (hybrid uses what is embedded so far),
        and hnswlib's resize is not safe beside a query."""

    @property
    def count(self) -> int:
        return len(self.live)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if not len(ids):
            return
        with self.lock:
            fresh = [i for i in ids if i not in self.live]
            needed = self.index.element_count + len(fresh)
            if needed > self.index.get_max_elements():
                self.index.resize_index(max(needed, self.index.get_max_elements() * 2))
            self.index.add_items(vectors, np.asarray(ids, dtype=np.int64), replace_deleted=True)
            self.live.update(ids)

    def remove(self, ids: Sequence[int]) -> None:
        with self.lock:
            for i in ids:
                if i in self.live:
                    self.index.mark_deleted(i)
                    self.live.discard(i)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity), best first; k is clamped to what the index holds."""
        with self.lock:
            k = min(k, self.count)
            if k <= 0:
                return []
            self.index.set_ef(max(_EF_SEARCH, k))
            labels, distances = self.index.knn_query(vector.reshape(1, -1), k=k)
        return [(int(i), 1.0 - float(d)) for i, d in zip(labels[0], distances[0], strict=True)]

    def save(self, path: Path, store: Store, embedder: str) -> None:
        """Write atomically, then record the checksum (the caller commits)."""
        with self.lock, replacing(path) as tmp:
            self.index.save_index(str(tmp))
        store.set_meta("hnsw_checksum", file_crc(path))
        store.set_meta("hnsw_embedder", embedder)

    def add_blobs(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Add (chunk id, float32 bytes) rows, a slice at a time: never every vector twice over."""
        for start in range(0, len(rows), _LOAD_SLICE):
            part = rows[start : start + _LOAD_SLICE]
            matrix = np.frombuffer(b"".join(b for _, b in part), dtype=np.float32)
            self.add([cid for cid, _ in part], matrix.reshape(len(part), self.dim))

    @classmethod
    def from_store(cls, store: Store, embedder: str, dim: int) -> VectorIndex:
        ids = sorted(store.vector_ids(embedder))
        index = cls(dim, capacity=len(ids) + 1024)
        for start in range(0, len(ids), _LOAD_SLICE):
            index.add_blobs(store.vectors_for(embedder, ids[start : start + _LOAD_SLICE]))
        return index

    def catch_up(self, store: Store, embedder: str, known: set[int] | None = None) -> int:
        """Add the vectors SQLite has and this index lacks: those another process embedded
        since the file was saved (an `assist index` still running). Returns how many."""
        with self.lock:
            missing = sorted((store.vector_ids(embedder) if known is None else known) - self.live)
        for start in range(0, len(missing), _LOAD_SLICE):
            self.add_blobs(store.vectors_for(embedder, missing[start : start + _LOAD_SLICE]))
        return len(missing)

    @classmethod
    def open(cls, path: Path, store: Store, embedder: str, dim: int) -> tuple[VectorIndex, bool]:
        """The saved index if its checksum and embedder match, else a rebuild from SQLite.

        Returns (index, rebuilt).
        """
        expected = store.meta("hnsw_checksum")
        if (
            path.is_file()
            and expected
            and store.meta("hnsw_embedder") == embedder
            and file_crc(path) == expected
        ):
            index = cls.__new__(cls)
            index.dim = dim
            index.index = hnswlib.Index(space="cosine", dim=dim)
            index.index.load_index(str(path), allow_replace_deleted=True)
            index.index.set_ef(_EF_SEARCH)
            index.live = set(int(i) for i in index.index.get_ids_list())
            # get_ids_list includes deleted labels; keep only those SQLite still has.
            index.lock = threading.RLock()
            known = store.vector_ids(embedder)
            for stale in index.live - known:
                with contextlib.suppress(RuntimeError):  # already deleted in the saved file
                    index.index.mark_deleted(stale)
            index.live &= known
            caught = index.catch_up(store, embedder, known)
            if caught:
                log.info("added %d vectors embedded since %s was saved", caught, path.name)
            return index, False
        if path.exists():
            log.warning("%s does not match its recorded checksum; rebuilding from SQLite", path)
        return cls.from_store(store, embedder, dim), True
