"""Ranking rules of hybrid search: fusion as a pure function, then the per-file cap, test-code
demotion, the keyword-pipeline rebuild and the embedder check on a real index."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from assistant.errors import AssistError
from assistant.index.search import TEST_CODE_FACTOR, fuse, fuse_rrf, is_test_code
from assistant.index.store import FTS_VERSION
from assistant.workspace import Workspace


def test_fuse_weighs_the_two_lists_after_normalising() -> None:
    # Only keywords: scores are divided by the best one.
    assert fuse({1: 8.0, 2: 4.0}, {}) == {1: 1.0, 2: 0.5}
    # Only vectors: cosine is min-max scaled over the candidates.
    assert fuse({}, {1: 0.9, 2: 0.5, 3: 0.7}) == pytest.approx({1: 1.0, 2: 0.0, 3: 0.5})
    # Both, with a steep keyword list (it keeps its full 0.7 share).
    both = fuse({1: 10.0, 2: 1.0}, {1: 0.2, 2: 0.8})
    assert both[1] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert both[2] == pytest.approx(0.7 * 0.1 + 0.3 * 1.0)
    # A flat keyword list (ten equal scores) gives the vectors more say.
    flat = {i: 5.0 for i in range(10)}
    fused = fuse(flat, {0: 0.1, 9: 0.9})
    assert fused[9] > fused[0]


def test_rrf_counts_ranks_not_scores() -> None:
    out = fuse_rrf({1: 100.0, 2: 1.0}, {2: 0.9, 1: 0.1})
    assert out[1] == pytest.approx(out[2])


@pytest.mark.parametrize(
    ("path", "name", "test"),
    [
        ("tests/test_upload.py", "test_upload", True),
        ("src/upload_test.go", "TestUpload", True),
        ("web/format.spec.ts", "formatPrice", True),
        ("src/lib.rs", "tests.parses", True),
        ("src/upload.py", "upload_file", False),
        ("contest/solver.py", "solve", False),
    ],
)
def test_test_code_is_recognised(path: str, name: str, test: bool) -> None:
    assert is_test_code(path, name) is test


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    body = "\n\n".join(
        f"def compress_block_{i}(data):\n    return compress(data, level={i})" for i in range(8)
    )
    (root / "src" / "compress.py").write_text(body + "\n")
    (root / "src" / "other.py").write_text("def compress_other(data):\n    return data\n")
    (root / "tests" / "test_compress.py").write_text(
        "def test_compress_block(data):\n    return compress_block(data)\n"
    )
    w = Workspace.open(root)
    for _ in w.index(vectors=False):
        pass
    return w


def test_one_file_cannot_fill_the_results(ws: Workspace) -> None:
    hits = ws.search("compress block data", mode="keyword", k=10, per_file=3)
    per_file: dict[str, int] = {}
    for hit in hits:
        per_file[hit.path] = per_file.get(hit.path, 0) + 1
    assert per_file["src/compress.py"] == 3
    assert "src/other.py" in per_file
    unlimited = ws.search("compress block data", mode="keyword", k=20, per_file=0)
    assert sum(h.path == "src/compress.py" for h in unlimited) == 8


def test_tests_rank_below_the_code_they_test(ws: Workspace) -> None:
    hits = ws.search("compress block", mode="keyword", k=20, per_file=0)
    paths = [h.path for h in hits]
    assert paths.index("tests/test_compress.py") > paths.index("src/compress.py")
    demoted = next(h for h in hits if h.path.startswith("tests/"))
    assert demoted.score <= TEST_CODE_FACTOR * max(h.score for h in hits)


def test_a_changed_keyword_pipeline_rebuilds_the_keyword_index(ws: Workspace) -> None:
    before = [h.name for h in ws.search("compress other", mode="keyword")]
    store = ws.store
    with store.transaction():
        store.db.execute("DELETE FROM chunk_fts")  # what an old pipeline's rows would be worth
        store.set_meta("fts_version", "0")
    assert ws.search("compress other", mode="keyword") == []
    for _ in ws.index(vectors=False):
        pass
    assert store.meta("fts_version") == FTS_VERSION
    assert (
        [h.name for h in ws.search("compress other", mode="keyword")]
        == before
        == ["compress_other"]
    )


def test_vectors_of_another_embedder_are_refused(ws: Workspace) -> None:
    other = "some-other-model.gguf:0123/max256"
    store = ws.store
    chunk_id = ws.search("compress_other", mode="keyword")[0].chunk_id
    with store.transaction():
        store.set_meta("embedder", other)
        store.set_meta("embedder_dim", "384")
        store.put_vectors(other, [(chunk_id, bytes(4 * 384))])
    # The index's vectors came from another model: the query cannot be compared with them.
    with pytest.raises(AssistError, match=r"vectors come from some-other-model\.gguf"):
        ws.search("compress", mode="hybrid")
