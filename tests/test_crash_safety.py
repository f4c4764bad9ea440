"""SIGKILL the real `assist index` at random moments: the index must always open and answer,
and the next run must complete it to exactly the state a fresh index would have."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.workspace import Workspace

pytestmark = pytest.mark.slow


def make_repo(root: Path, n_files: int) -> None:
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    rng = random.Random(7)
    words = ["upload", "retry", "parse", "token", "cache", "render", "session", "buffer"]
    for i in range(n_files):
        lines = [f'"""Module {i}."""', ""]
        for j in range(6):
            a, b = rng.sample(words, 2)
            lines += [f"def {a}_{b}_{i}_{j}(value, count={j}):",
                      f'    """{a.title()} the {b} {j} times."""',
                      f"    return [{a!r} * count for _ in range(value)]", ""]  # fmt: skip
        (root / f"mod_{i:03d}.py").write_text("\n".join(lines))


def snapshot(db: Path) -> tuple:
    con = sqlite3.connect(db)
    try:
        files = con.execute("SELECT path, hash FROM files ORDER BY path").fetchall()
        chunks = con.execute(
            "SELECT f.path, c.qualified_name, c.start_line, c.end_line FROM chunks c"
            " JOIN files f ON f.id = c.file_id ORDER BY 1, 3, 2"
        ).fetchall()
        fts = con.execute("SELECT count(*) FROM chunk_fts").fetchone()
        vectors = con.execute("SELECT count(*) FROM vectors").fetchone()
        return files, chunks, fts, vectors
    finally:
        con.close()


@pytest.mark.timeout(1800)  # fourteen real indexing runs; on a loaded machine over 300 s
def test_kill_at_random_moments(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    n_files = 120
    make_repo(repo, n_files)
    cmd = [sys.executable, "-m", "assistant", "index", str(repo), "-q"]
    rng = random.Random(1234)
    # Kill moments are spread over how long a whole run takes on this machine, so that slow
    # and fast machines alike are interrupted in every phase; the invariant is asserted after
    # each run, and that some runs really were killed with an index on disk to check.
    started = time.monotonic()
    subprocess.run(cmd, check=True, timeout=600)
    full_run = time.monotonic() - started
    (repo / ".assist").rename(tmp_path / "first-index")
    kills = checked = 0
    for attempt in range(12):
        # Rewrite a quarter of the files each time, so every run has parsing and embedding
        # to do when the kill lands, in fresh and incremental states alike.
        for i in rng.sample(range(n_files), n_files // 4):
            p = repo / f"mod_{i:03d}.py"
            p.write_text(p.read_text() + f"\n\ndef extra_{attempt}_{i}():\n    return {i}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.6 * full_run))  # a random moment, not a wait for an event
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if not (repo / ".assist" / "index.db").exists():
            continue
        checked += killed
        # The index opens and answers after every kill, vectors included.
        ws = Workspace.open(repo)
        ws.search("retry the upload", mode="keyword")
        ws.search("retry the upload", mode="hybrid")
        ws.close()
    # Without a kill this would test nothing but plain indexing.
    assert kills > 0, f"no run was killed (a whole run takes {full_run:.1f} s here)"
    assert checked > 0, f"{kills} runs killed, none after its index.db existed"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    fresh = tmp_path / "fresh"
    subprocess.run(["cp", "-r", str(repo), str(fresh)], check=True)
    subprocess.run(["rm", "-rf", str(fresh / ".assist")], check=True)
    subprocess.run([sys.executable, "-m", "assistant", "index", str(fresh), "-q"], check=True)
    completed, reference = snapshot(repo / ".assist/index.db"), snapshot(fresh / ".assist/index.db")
    assert completed[0] == reference[0]  # same files, same content hashes
    assert completed[1] == reference[1]  # same chunks
    assert completed[2] == reference[2] and completed[3] == reference[3]
    hits = Workspace.open(repo).search("retry upload", mode="vector", k=3)
    assert len(hits) == 3


def test_damaged_hnsw_file_is_rebuilt_not_loaded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, 5)
    subprocess.run([sys.executable, "-m", "assistant", "index", str(repo), "-q"], check=True)
    hnsw = repo / ".assist" / "vectors.hnsw"
    good = Workspace.open(repo).search("render the session", mode="vector", k=5)
    for damage in ("flip", "truncate", "header"):
        data = bytearray(hnsw.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0xFF
        elif damage == "truncate":
            data = data[: len(data) // 3]
        else:
            data[:64] = b"\xff" * 64  # hnswlib would abort the process on this header
        hnsw.write_bytes(bytes(data))
        # A subprocess, so that an abort inside hnswlib would fail the test, not kill pytest.
        out = subprocess.run(
            [sys.executable, "-m", "assistant", "search", "render the session", "--repo",
             str(repo), "--mode", "vector", "-k", "5", "--json"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert out.returncode == 0, (damage, out.stderr)
        import json

        names = [h["name"] for h in json.loads(out.stdout)]
        assert names == [h.name for h in good], damage


def test_readers_query_while_the_indexer_writes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, 120)
    cmd = [sys.executable, "-m", "assistant", "index", str(repo), "-q"]
    subprocess.run([*cmd, "--no-vectors"], check=True)  # something to read from the start
    for i in range(0, 120, 2):
        p = repo / f"mod_{i:03d}.py"
        p.write_text(p.read_text() + f"\n\ndef late_{i}():\n    return {i}\n")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ws = Workspace.open(repo)
    while True:  # every search answers, however far the writer has got
        running = proc.poll() is None
        assert ws.search("retry the upload", mode="keyword", k=3)
        if not running:
            break
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert ws.search("late_60", mode="keyword")[0].name == "late_60"
