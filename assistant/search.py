"""Hybrid search: BM25 keywords and vector neighbours fused by reciprocal rank, plus boosts
for identifier matches.

Vectors alone miss exact names and rare identifiers; keywords alone miss paraphrase. Reciprocal
rank fusion needs no score calibration between the two, and each hit keeps both ranks so a
result can be explained.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from assistant.identifiers import identifier_candidates, query_terms, split_identifier
from assistant.store import ChunkRow, Store
from assistant.vectors import VectorIndex

Mode = Literal["hybrid", "keyword", "vector"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "vector")

RRF_K = 60
CANDIDATES = 200
KEYWORD_WEIGHT = 1.0
VECTOR_WEIGHT = 1.0
SYNONYM_WEIGHT = 0.1
EXACT_NAME_BOOST = 2.0 / (RRF_K + 1)
PARTIAL_NAME_BOOST = 0.5 / (RRF_K + 1)


@dataclass(frozen=True)
class Hit:
    path: str
    name: str
    """Qualified name of the symbol (`Session.get`), or the file name for top-level code."""
    kind: str
    start_line: int
    end_line: int
    score: float
    signature: str
    snippet: str
    keyword_rank: int | None
    vector_rank: int | None
    chunk_id: int

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": round(self.score, 6),
            "signature": self.signature,
            "keyword_rank": self.keyword_rank,
            "vector_rank": self.vector_rank,
        }


@dataclass
class SearchTimings:
    keyword_ms: float = 0.0
    embed_ms: float = 0.0
    vector_ms: float = 0.0
    fuse_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


def fts_expression(terms: list[str]) -> str:
    """An FTS5 MATCH expression matching any of `terms` (BM25 adds up what matches)."""
    return " OR ".join(f'"{t}"' for t in terms if t)


def _snippet(row: ChunkRow, max_lines: int = 6) -> str:
    lines = row.text.split("\n")
    return "\n".join(lines[:max_lines])


def search(
    store: Store,
    query: str,
    *,
    k: int = 10,
    mode: Mode = "hybrid",
    per_file: int = 3,
    vectors: VectorIndex | None = None,
    embed: Callable[[str], np.ndarray] | None = None,
    allow: Callable[[str], bool] | None = None,
    timings: SearchTimings | None = None,
) -> list[Hit]:
    """Best chunks for `query`; `allow` is the privacy check applied to every result path."""
    timings = timings if timings is not None else SearchTimings()
    scores: dict[int, float] = {}
    kw_rank: dict[int, int] = {}
    vec_rank: dict[int, int] = {}

    if mode in ("hybrid", "keyword"):
        t = time.perf_counter()
        terms, synonyms = query_terms(query)
        bm25 = dict(store.keyword(fts_expression(terms), CANDIDATES))
        # Synonyms widen recall but are weaker evidence than the user's own words.
        for cid, score in store.keyword(fts_expression(synonyms), CANDIDATES):
            bm25[cid] = bm25.get(cid, 0.0) + SYNONYM_WEIGHT * score
        ordered = sorted(bm25, key=lambda c: -bm25[c])[:CANDIDATES]
        for rank, cid in enumerate(ordered):
            kw_rank[cid] = rank + 1
            scores[cid] = scores.get(cid, 0.0) + KEYWORD_WEIGHT / (RRF_K + rank + 1)
        timings.keyword_ms = (time.perf_counter() - t) * 1000

    if mode in ("hybrid", "vector"):
        if vectors is None or embed is None or vectors.count == 0:
            timings.notes.append("no vectors yet: run `assist index` (keyword results only)")
        else:
            t = time.perf_counter()
            qvec = embed(query)
            timings.embed_ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            for rank, (cid, _) in enumerate(vectors.search(qvec, CANDIDATES)):
                vec_rank[cid] = rank + 1
                scores[cid] = scores.get(cid, 0.0) + VECTOR_WEIGHT / (RRF_K + rank + 1)
            timings.vector_ms = (time.perf_counter() - t) * 1000

    t = time.perf_counter()
    names = identifier_candidates(query)
    if mode != "vector" and names:
        for cid in store.chunks_named(names):
            scores.setdefault(cid, 0.0)
    rows = store.chunks(list(scores))
    query_parts = {p for name in names for p in split_identifier(name)}
    for cid, row in rows.items():
        if mode == "vector":
            break
        lname = row.name.lower()
        if lname in names or row.qualified_name.lower() in names:
            scores[cid] += EXACT_NAME_BOOST
        else:
            parts = set(split_identifier(row.name))
            if len(parts) > 1 and parts <= query_parts:
                scores[cid] += PARTIAL_NAME_BOOST

    ranked = sorted(rows.values(), key=lambda r: (-scores[r.id], r.path, r.start_line))
    hits: list[Hit] = []
    seen_symbols: set[tuple[str, str, int]] = set()
    per_path: dict[str, int] = {}
    for row in ranked:
        if allow is not None and not allow(row.path):
            continue
        symbol = (row.path, row.qualified_name, row.symbol_start)
        if symbol in seen_symbols:
            continue  # another window of the same definition ranked higher
        if per_file and per_path.get(row.path, 0) >= per_file:
            continue
        seen_symbols.add(symbol)
        per_path[row.path] = per_path.get(row.path, 0) + 1
        hits.append(
            Hit(
                row.path,
                row.qualified_name,
                row.kind,
                row.start_line,
                row.end_line,
                scores[row.id],
                row.signature,
                _snippet(row),
                kw_rank.get(row.id),
                vec_rank.get(row.id),
                row.id,
            )
        )
        if len(hits) >= k:
            break
    timings.fuse_ms = (time.perf_counter() - t) * 1000
    return hits
