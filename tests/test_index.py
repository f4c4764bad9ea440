"""Indexing and search end to end on real git repositories, real SQLite and real tree-sitter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.index.indexer import IndexReport
from assistant.workspace import Workspace

FILES = {
    "uploads/client.py": '''"""Upload files to the storage service."""

import time

MAX_RETRIES = 5


class UploadClient:
    """Talks to the storage API."""

    def upload_file(self, path):
        """Send one file to the bucket."""
        with open(path, "rb") as fh:
            return self._post(fh.read())

    def retry_failed_uploads(self, failed):
        for attempt in range(MAX_RETRIES):
            time.sleep(2 ** attempt)
            failed = [p for p in failed if not self.upload_file(p)]
        return failed
''',
    "auth/session.go": """package auth

// Authenticate checks a user's password against the stored hash.
func Authenticate(user string, password string) bool {
	return checkHash(user, password)
}

type Session struct {
	Token string
}

// Refresh renews the session token before it expires.
func (s *Session) Refresh() error {
	return nil
}
""",
    "web/format.js": """// Formats a price in cents as a currency string.
export function formatPrice(cents) {
  return (cents / 100).toFixed(2);
}

export const parseQuery = (qs) => Object.fromEntries(new URLSearchParams(qs));
""",
    "README.md": "# demo\n\nA demo repository.\n",
}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "blob").write_bytes(b"\0\1\2binary")  # no extension: its content decides
    (root / "data.bin").write_bytes(b"\0\1\2binary")
    (root / "latin.py").write_bytes("x = 'caf\u00e9'\n".encode("latin-1"))
    (root / "bundle.min.js").write_text("var a=1;" * 1000)
    (root / ".env").write_text("API_KEY=hunter2\n")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return root


def run_index(ws: Workspace, **kwargs: object) -> IndexReport:
    report = None
    for item in ws.index(**kwargs):  # type: ignore[arg-type]
        if isinstance(item, IndexReport):
            report = item
    assert report is not None
    return report


def test_index_and_keyword_search(repo: Path) -> None:
    ws = Workspace.open(repo)
    report = run_index(ws, vectors=False)
    counts = ws.store.counts()
    assert counts["files"] == 4  # 3 code files and the README; the rest is skipped
    reasons = dict(report.skipped)
    assert reasons["blob"] == "binary"
    assert reasons["data.bin"] == "not source, config or docs (.bin)"
    assert reasons["latin.py"].startswith("not valid UTF-8")
    assert reasons["bundle.min.js"].startswith("minified")
    assert reasons[".env"].startswith("private")
    assert (repo / ".assist" / "index.db").is_file()
    assert "hunter2" not in (repo / ".assist" / "index.db").read_bytes().decode("latin-1")

    hits = ws.search("where do we retry failed uploads", mode="keyword")
    assert hits[0].name == "UploadClient.retry_failed_uploads"
    assert hits[0].path == "uploads/client.py"
    assert (hits[0].start_line, hits[0].end_line) == (16, 20)
    assert hits[0].keyword_rank == 1

    hits = ws.search("authenticate user password", mode="keyword")
    assert hits[0].name == "Authenticate" and hits[0].kind == "function"
    hits = ws.search("Refresh", mode="keyword")
    assert hits[0].name == "Session.Refresh"
    hits = ws.search("formatPrice", mode="keyword")
    assert hits[0].name == "formatPrice"


def test_incremental(repo: Path) -> None:
    ws = Workspace.open(repo)
    first = run_index(ws, vectors=False)
    assert first.parsed == 4
    again = run_index(ws, vectors=False)
    assert again.parsed == 0 and again.unchanged == 4

    (repo / "web/format.js").write_text("export function formatDate(d) { return d; }\n")
    (repo / "auth/session.go").unlink()
    report = run_index(ws, vectors=False)
    assert report.parsed == 1 and report.removed == 1
    assert ws.search("formatDate", mode="keyword")[0].name == "formatDate"
    assert not [h for h in ws.search("Authenticate", mode="keyword") if h.path.endswith(".go")]

    # A touched file with the same content is not re-parsed.
    (repo / "README.md").write_text((repo / "README.md").read_text())
    assert run_index(ws, vectors=False).parsed == 0


def test_new_exclusion_removes_chunks(repo: Path) -> None:
    ws = Workspace.open(repo)
    run_index(ws, vectors=False)
    assert ws.search("UploadClient", mode="keyword")
    (repo / ".assistignore").write_text("uploads/\n")
    ws = Workspace.open(repo)  # rules are read when the workspace opens
    # Even before re-indexing, search never returns a path a rule now excludes.
    assert not [h for h in ws.search("UploadClient", mode="keyword") if h.path.startswith("up")]
    run_index(ws, vectors=False)
    assert ws.store.db.execute(
        "SELECT count(*) FROM files WHERE path LIKE 'uploads/%'"
    ).fetchone() == (0,)


def test_parse_deadline_skips_the_slow_file(repo: Path) -> None:
    # About 9 MB: tree-sitter needs most of a second for it even on a fast CPU, ten times the
    # deadline below, while each small file needs a millisecond.
    big = "\n".join(
        f"def f{i}(a, b):\n    return [a + b for _ in range({i})]\n" for i in range(140000)
    )
    (repo / "huge.py").write_text(big)
    for i in range(12):  # enough files for the worker pool (a handful are parsed in-process)
        (repo / f"small_{i}.py").write_text(f"def small_{i}():\n    return {i}\n")
    (repo / ".assist").mkdir()
    (repo / ".assist" / "config.toml").write_text("[index]\nmax_file_size = 9500000\n")
    ws = Workspace.open(repo, env={**os.environ, "ASSIST_INDEX_PARSE_TIMEOUT": "0.1"})
    report = run_index(ws, vectors=False)
    reasons = dict(report.skipped)
    assert reasons["huge.py"].startswith("parse timed out")
    assert ws.store.counts()["files"] == 4 + 12  # the others were requeued and indexed


def test_cli_index_and_search_json(repo: Path) -> None:
    env_cmd = [sys.executable, "-m", "assistant"]
    out = subprocess.run([*env_cmd, "index", str(repo), "--no-vectors", "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["files"] == 4 and summary["symbols"] >= 8
    out = subprocess.run(
        [*env_cmd, "search", "price in cents as currency", "--repo", str(repo), "-k", "3",
         "--json", "--mode", "keyword"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    results = json.loads(out.stdout)
    assert isinstance(results, list) and 1 <= len(results) <= 3
    top = results[0]
    assert {"path", "name", "kind", "start_line", "end_line", "score"} <= set(top)
    assert top["path"] == "web/format.js" and top["name"] == "formatPrice"
    assert top["start_line"] <= 2 <= top["end_line"]


def test_search_without_index_is_a_clear_error(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    out = subprocess.run([sys.executable, "-m", "assistant", "search", "x", "--repo",
                          str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2
    assert "no index yet" in out.stderr and "assist index" in out.stderr


def test_words_in_most_chunks_are_left_out_of_keyword_queries(repo: Path) -> None:
    ws = Workspace.open(repo)
    run_index(ws, vectors=False)
    n_chunks = ws.store.counts()["chunks"]
    with_return = ws.store.db.execute(
        "SELECT count(*) FROM chunk_fts WHERE chunk_fts MATCH 'return'"
    ).fetchone()[0]
    assert with_return / n_chunks > 0.2  # the fixture is full of `return`
    assert ws.store.common_terms(["return", "price", "nosuchword"], 0.2) == {"return"}
    # Search still finds things when every query word is common: nothing is dropped then.
    assert ws.search("return", mode="keyword")


def test_a_damaged_database_is_set_aside_and_rebuilt(repo: Path) -> None:
    (repo / ".assist").mkdir()
    (repo / ".assist" / "index.db").write_bytes(b"this is not sqlite" * 100)
    cmd = [sys.executable, "-m", "assistant"]
    out = subprocess.run([*cmd, "search", "upload", "--repo", str(repo)], capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 2 and "cannot be opened" in out.stderr and "assist index" in out.stderr
    out = subprocess.run([*cmd, "index", str(repo), "--no-vectors"], capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "setting it aside and rebuilding" in out.stderr
    assert [p.name for p in (repo / ".assist").glob("index.db.corrupt-*")]
    ws = Workspace.open(repo)
    assert ws.search("upload_file", mode="keyword")[0].name == "UploadClient.upload_file"
