"""Hybrid search: BM25 keywords and vector neighbours fused into one score, plus boosts for
identifier matches.

Vectors alone miss exact names and rare identifiers; keywords alone miss paraphrase. The two
normalised scores are combined (reciprocal rank fusion is there as `fusion="rrf"`; it measured
worse here, see `fuse`), and each hit keeps both ranks so a result can be explained.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from assistant.index.identifiers import identifier_candidates, query_terms, split_identifier
from assistant.index.store import ChunkRow, Store

if TYPE_CHECKING:
    import numpy as np

    from assistant.index.vectors import VectorIndex

Mode = Literal["hybrid", "keyword", "vector"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "vector")

CANDIDATES = 200
RRF_K = 60
VECTOR_SHARE = 0.3
"""Weight of the vector score in hybrid fusion; the keyword score gets the rest (less when its
list is flat: see `fuse`)."""
KEYWORD_PEAK = 0.5
"""The keyword list keeps its full weight when its 10th score is at most half its best."""
SYNONYM_WEIGHT = 0.25
COMMON_SHARE = 0.2
"""Query words found in more than this share of all chunks are left out of the keyword query."""
EXACT_NAME_BOOST = 1.0
PARTIAL_NAME_BOOST = 0.3
NAME_HINT = 0.1
TEST_CODE_FACTOR = 0.7
"""Tests rank a little below the code they test: a search usually wants the implementation."""


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


def fuse(
    bm25: dict[int, float], cosine: dict[int, float], embedded: set[int] | None = None
) -> dict[int, float]:
    """Convex combination of the two normalised scores (a list that is empty weighs 0).

    `embedded` (the chunks that have a vector) is given while vectors are still being made:
    a keyword candidate without one then counts its keyword score in the vector's place
    too, so it is ranked by the evidence there is rather than sunk for lacking a vector.

    BM25 is divided by the query's best score; cosine is min-max scaled over the candidates.
    On the retrieval benchmark this beat reciprocal rank fusion (0.427 against 0.415 overall
    MRR@10, before other tuning): RRF's rank flattening gives the weaker list as much say as
    the stronger. Which list is stronger changed with the BM25 body weight (docs/search.md).
    """
    alpha = VECTOR_SHARE if bm25 and cosine else (1.0 if cosine else 0.0)
    if bm25 and cosine:
        # Trust the keyword list less when it is flat: a sentence of common words gives many
        # chunks nearly the same BM25, and then its order says little.
        best = sorted(bm25.values(), reverse=True)
        tenth = best[min(9, len(best) - 1)]
        peak = (best[0] - tenth) / best[0] if best[0] > 0 else 0.0
        alpha = 1 - (1 - VECTOR_SHARE) * max(0.25, min(1.0, peak / KEYWORD_PEAK))
    out: dict[int, float] = {}
    if bm25:
        top = max(bm25.values()) or 1.0
        for cid, score in bm25.items():
            share = 1.0 if embedded is not None and cid not in embedded else 1 - alpha
            out[cid] = share * score / top
    if cosine:
        lo, hi = min(cosine.values()), max(cosine.values())
        span = (hi - lo) or 1.0
        for cid, sim in cosine.items():
            out[cid] = out.get(cid, 0.0) + alpha * (sim - lo) / span
    return out


_TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|__tests__|spec|specs)/|(^|/)test_[^/]*$|_test\.[a-z]+$"
    r"|\.(test|spec)\.[a-z]+$|_spec\.rb$"
)


def is_test_code(path: str, qualified_name: str) -> bool:
    """Tests, by path or by name (`mod tests` in Rust, `test_*` functions)."""
    if _TEST_PATH.search(path):
        return True
    first = qualified_name.split(".", 1)[0]
    last = qualified_name.rsplit(".", 1)[-1]
    return first in ("tests", "test") or last.startswith(("test_", "Test"))


def fuse_rrf(bm25: dict[int, float], cosine: dict[int, float]) -> dict[int, float]:
    """Reciprocal rank fusion (k=60), kept as `search.fusion = "rrf"` for comparison."""
    out: dict[int, float] = {}
    for scores in (bm25, cosine):
        for rank, cid in enumerate(sorted(scores, key=lambda c: -scores[c])):
            out[cid] = out.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    return out


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="assist-vectors")
        return _POOL


def _nearest(
    vectors: VectorIndex,
    embed: Callable[[str], np.ndarray],
    query: str,
    timings: SearchTimings,
) -> list[tuple[int, float]]:
    t = time.perf_counter()
    qvec = embed(query)
    timings.embed_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    found = vectors.search(qvec, CANDIDATES)
    timings.vector_ms = (time.perf_counter() - t) * 1000
    return found


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
    fusion: Literal["score", "rrf"] = "score",
    vectors: VectorIndex | None = None,
    embed: Callable[[str], np.ndarray] | None = None,
    allow: Callable[[str], bool] | None = None,
    timings: SearchTimings | None = None,
) -> list[Hit]:
    """Best chunks for `query`; `allow` is the privacy check applied to every result path."""
    timings = timings if timings is not None else SearchTimings()
    kw_rank: dict[int, int] = {}
    vec_rank: dict[int, int] = {}
    vec_sim: dict[int, float] = {}
    bm25: dict[int, float] = {}

    # Hybrid: embed the query and search the vectors on another thread while FTS5 ranks the
    # keywords here. llama.cpp and SQLite both release the GIL, so on two cores the two lists
    # cost the slower of them, not their sum.
    vector_part: Future[list[tuple[int, float]]] | None = None
    if mode == "hybrid" and vectors is not None and embed is not None and vectors.count > 0:
        vector_part = _pool().submit(_nearest, vectors, embed, query, timings)

    if mode in ("hybrid", "keyword"):
        t = time.perf_counter()
        terms, synonyms = query_terms(query)
        # A word in a fifth of all chunks ("return", "self") adds little to BM25 but makes
        # FTS5 rank every row that has it: on the standard library this took keyword search
        # from p50 59 / p95 87 ms to 15 / 43 ms, for -0.013 keyword and -0.001 hybrid MRR.
        common = store.common_terms(terms, COMMON_SHARE)
        if common and len(common) < len(terms):
            terms = [t for t in terms if t not in common]
        bm25 = dict(store.keyword(fts_expression(terms), CANDIDATES))
        # Synonyms widen recall but are weaker evidence than the user's own words.
        for cid, score in store.keyword(fts_expression(synonyms), CANDIDATES):
            bm25[cid] = bm25.get(cid, 0.0) + SYNONYM_WEIGHT * score
        for rank, cid in enumerate(sorted(bm25, key=lambda c: -bm25[c])[:CANDIDATES]):
            kw_rank[cid] = rank + 1
        bm25 = {cid: bm25[cid] for cid in kw_rank}
        timings.keyword_ms = (time.perf_counter() - t) * 1000

    if mode in ("hybrid", "vector"):
        if vectors is None or embed is None or vectors.count == 0:
            timings.notes.append("no vectors yet: run `assist index` (keyword results only)")
        else:
            nearest = (
                vector_part.result()
                if vector_part is not None
                else _nearest(vectors, embed, query, timings)
            )
            for rank, (cid, cos) in enumerate(nearest):
                vec_rank[cid] = rank + 1
                vec_sim[cid] = cos

    t = time.perf_counter()
    embedded: set[int] | None = None
    if vec_sim and vectors is not None and any(cid not in vectors.live for cid in bm25):
        embedded = vectors.live  # still embedding: some candidates have no vector yet
        total = store.chunk_count()
        timings.notes.append(
            f"vectors cover {vectors.count:,} of {total:,} chunks (still embedding); "
            "hybrid ranks the rest by keywords"
        )
    scores = fuse_rrf(bm25, vec_sim) if fusion == "rrf" else fuse(bm25, vec_sim, embedded)
    names = identifier_candidates(query)
    if mode != "vector" and names:
        for cid in store.chunks_named(names):
            scores.setdefault(cid, 0.0)
    rows = store.chunks(list(scores), text=False)
    if mode != "vector" and names:
        # A query that is just a name wants that definition first; a sentence that mentions a
        # name often describes something else that uses it, so there the name only nudges.
        short = len(query.split()) <= 2
        exact = EXACT_NAME_BOOST if short else NAME_HINT
        partial = PARTIAL_NAME_BOOST if short else NAME_HINT / 3
        query_parts = {p for name in names for p in split_identifier(name)}
        for cid, row in rows.items():
            if row.name.lower() in names or row.qualified_name.lower() in names:
                scores[cid] += exact
            elif len(parts := set(split_identifier(row.name))) > 1 and parts <= query_parts:
                scores[cid] += partial

    for cid, row in rows.items():
        if is_test_code(row.path, row.qualified_name):
            scores[cid] *= TEST_CODE_FACTOR

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
                "",
                kw_rank.get(row.id),
                vec_rank.get(row.id),
                row.id,
            )
        )
        if len(hits) >= k:
            break
    timings.fuse_ms = (time.perf_counter() - t) * 1000
    full = store.chunks([h.chunk_id for h in hits])  # text only for what is shown
    return [replace(h, snippet=_snippet(full[h.chunk_id])) if h.chunk_id in full else h
            for h in hits]  # fmt: skip
