"""Search while the index is still being built: keywords as soon as symbols are stored, vectors
used as they are embedded, in this process and in another one (real SQLite, real MiniLM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from servers import handlers_repo

from assistant.index.indexer import IndexReport, index_vectors
from assistant.index.progress import Progress
from assistant.index.search import fuse
from assistant.workspace import Workspace


def git_repo(root: Path, functions: int = 70) -> Path:
    return handlers_repo(root, functions)


def search_cli(root: Path, query: str, mode: str) -> tuple[list[dict[str, object]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "search", query, "--repo", str(root), "--json",
         "--mode", mode],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONUTF8": "1"},
    )  # fmt: skip
    return json.loads(done.stdout), done.stderr


def test_search_works_at_every_phase(tmp_path: Path) -> None:
    root = git_repo(tmp_path / "repo")
    ws = Workspace.open(root)
    phases: list[tuple[str, int]] = []
    checked_partial = False
    for item in ws.index():
        if isinstance(item, IndexReport):
            break
        phases.append((item.phase, item.done))
        if item.phase == "embed" and item.done == 0:
            # Symbols and keywords are stored, no vector yet: keyword search works, and hybrid
            # says it is keywords only, in this process and in another.
            assert ws.search("retry_failed_uploads", mode="keyword")[0].name == (
                "retry_failed_uploads"
            )
            hits, _ = search_cli(root, "retry_failed_uploads", "hybrid")
            assert hits[0]["name"] == "retry_failed_uploads"
            assert all(h["vector_rank"] is None for h in hits)
        if item.phase == "embed" and 0 < item.done < item.total and not checked_partial:
            checked_partial = True
            embedded = ws.store.counts()["vectors"]
            assert 0 < embedded < ws.store.counts()["chunks"]
            # This process: the growing index is the one searched.
            vectors = ws.vector_index()
            assert vectors is not None and vectors.count == embedded
            # Another process: the HNSW file is not saved yet, SQLite's vectors are caught up.
            hits, err = search_cli(root, "handle request kind", "vector")
            assert hits and all(h["vector_rank"] is not None for h in hits)
            hits, err = search_cli(root, "retry_failed_uploads send the files again", "hybrid")
            assert "still embedding" in err
            # retry.py's chunk comes last, so it has no vector yet; keywords still rank it first.
            assert hits[0]["name"] == "retry_failed_uploads" and hits[0]["vector_rank"] is None
    assert checked_partial, phases
    assert [p for p, _ in phases].index("embed") > [p for p, _ in phases].index("parse")
    final = ws.search("retry_failed_uploads send the files again", mode="hybrid")
    assert final[0].vector_rank is not None  # every chunk has its vector now
    ws.close()


def test_an_interrupted_embedding_run_is_searchable_and_resumes(tmp_path: Path) -> None:
    import threading

    root = git_repo(tmp_path / "repo")
    ws = Workspace.open(root)
    for _ in ws.index(vectors=False):
        pass
    cancel = threading.Event()
    for step in index_vectors(ws.store, ws.embedder, ws.hnsw_path, cancel=cancel):
        if isinstance(step, Progress) and step.done:
            cancel.set()  # killed after the first batch: the HNSW file was never saved
    partial = ws.store.counts()["vectors"]
    assert 0 < partial < ws.store.counts()["chunks"]
    ws.close()
    reopened = Workspace.open(root)
    vectors = reopened.vector_index()
    assert vectors is not None and vectors.count == partial
    report = next(r for r in reopened.index() if isinstance(r, IndexReport))
    assert report.embedded == reopened.store.counts()["chunks"] - partial
    reopened.close()


def test_a_candidate_without_a_vector_is_ranked_by_its_keywords() -> None:
    bm25 = {1: 5.0, 2: 4.0}
    cosine = {2: 0.9, 3: 0.5}
    complete = fuse(bm25, cosine)
    assert complete[2] > complete[1]  # chunk 1 lacks a vector: sunk by the missing list
    partial = fuse(bm25, cosine, embedded={2, 3})
    assert partial[1] == 1.0 > partial[2]  # its keyword score stands in for both
    assert partial[2] == complete[2] and partial[3] == complete[3]


def test_assist_index_says_when_keywords_are_ready(tmp_path: Path) -> None:
    root = git_repo(tmp_path / "repo", functions=5)
    done = subprocess.run([sys.executable, "-m", "assistant", "index", str(root)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "keywords ready after" in done.stderr
    assert "embedding" in done.stderr and "chunks behind it" in done.stderr
    assert done.stdout.startswith("indexed ")
    again = subprocess.run([sys.executable, "-m", "assistant", "index", str(root)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert "vectors are up to date" in again.stderr
