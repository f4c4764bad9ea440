"""The watcher with real watchdog (inotify) events on real files in temp git repositories.

Waits are bounded polls on the index, never bare sleeps.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.index.indexer import IndexReport
from assistant.watcher import Batch, Watcher
from assistant.workspace import Workspace


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def names(ws: Workspace, query: str) -> set[str]:
    return {h.name for h in ws.search(query, mode="keyword", k=50, per_file=0)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "pkg" / "a.py").write_text("def alpha_handler():\n    return 1\n")
    (root / "pkg" / "b.py").write_text("def beta_handler():\n    return 2\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def watched(repo: Path) -> Iterator[tuple[Workspace, Watcher, list[Batch]]]:
    ws = Workspace.open(repo)
    for _ in ws.index(vectors=False):
        pass
    batches: list[Batch] = []
    watcher = Watcher(ws, vectors=False, debounce=0.1, on_batch=batches.append)
    watcher.start()
    assert watcher.watching
    try:
        yield ws, watcher, batches
    finally:
        watcher.stop()


def test_save_is_indexed(watched, repo: Path) -> None:
    ws, _, batches = watched
    (repo / "pkg" / "a.py").write_text(
        "def alpha_handler():\n    return 1\n\ndef gamma_saved():\n    pass\n"
    )
    wait_for(lambda: "gamma_saved" in names(ws, "gamma_saved"))
    assert batches and not batches[-1].full  # an incremental batch, not a rescan


def test_atomic_save_through_rename(watched, repo: Path) -> None:
    ws, _, _ = watched
    tmp = repo / "pkg" / ".b.py.swp"
    tmp.write_text("def beta_renamed_in():\n    return 3\n")
    os.replace(tmp, repo / "pkg" / "b.py")  # what editors do on save
    wait_for(lambda: "beta_renamed_in" in names(ws, "beta_renamed_in"))
    wait_for(lambda: "beta_handler" not in names(ws, "beta_handler"))


def test_delete(watched, repo: Path) -> None:
    ws, _, _ = watched
    (repo / "pkg" / "b.py").unlink()
    wait_for(lambda: "beta_handler" not in names(ws, "beta_handler"))


def test_directory_move(watched, repo: Path) -> None:
    ws, _, batches = watched
    os.rename(repo / "pkg", repo / "lib")

    def moved() -> bool:
        paths = {h.path for h in ws.search("alpha_handler", mode="keyword")}
        return "lib/a.py" in paths and not any(p.startswith("pkg/") for p in paths)

    wait_for(moved)
    assert any(b.full for b in batches)


def test_new_assistignore_rule_takes_effect(watched, repo: Path) -> None:
    _ = watched  # the watcher must be running
    (repo / ".assistignore").write_text("pkg/b.py\n")
    db = repo / ".assist" / "index.db"

    def gone() -> bool:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT count(*) FROM files WHERE path = 'pkg/b.py'").fetchone() == (
                0,
            )
        finally:
            con.close()

    wait_for(gone)


def _fresh_snapshot(root: Path, tmp: Path) -> list[tuple]:
    ref = tmp / "fresh"
    subprocess.run(["git", "clone", "-q", str(root), str(ref)], check=True)
    ws = Workspace.open(ref)
    for _ in ws.index(vectors=False):
        pass
    return _snapshot(ref)


def _snapshot(root: Path) -> list[tuple]:
    con = sqlite3.connect(root / ".assist" / "index.db")
    try:
        return con.execute(
            "SELECT f.path, f.hash, c.qualified_name, c.start_line, c.end_line FROM chunks c"
            " JOIN files f ON f.id = c.file_id ORDER BY 1, 4, 3"
        ).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_branch_switch_of_thousands_of_files(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for i in range(3000):
        d = root / f"d{i // 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"m{i:04d}.py").write_text(f"def main_fn_{i}():\n    return {i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main")
    git(root, "checkout", "-q", "-b", "other")
    for i in range(0, 3000, 1):
        p = root / f"d{i // 100:02d}" / f"m{i:04d}.py"
        if i % 3 == 0:
            p.unlink()
        else:
            p.write_text(f"def other_fn_{i}():\n    return {i}\n")
    for i in range(500):
        (root / "new").mkdir(exist_ok=True)
        (root / "new" / f"n{i}.py").write_text(f"def added_{i}():\n    pass\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "other")
    git(root, "checkout", "-q", "main")

    ws = Workspace.open(root)
    for _ in ws.index(vectors=False):
        pass
    batches: list[Batch] = []
    with Watcher(ws, vectors=False, debounce=0.2, on_batch=batches.append):
        git(root, "checkout", "-q", "other")
        expected = _fresh_snapshot(root, tmp_path)
        wait_for(lambda: _snapshot(root) == expected, timeout=120)
        # The batch's rows are committed just before its callback runs: wait for that too.
        wait_for(lambda: any(b.full for b in batches))  # a reconciling rescan, not 3,500 updates
        assert len(batches) < 20
        git(root, "checkout", "-q", "main")
        wait_for(lambda: "main_fn_3" in names(ws, "main_fn_3"), timeout=120)


def test_two_front_ends_one_writer(repo: Path, monkeypatch, caplog) -> None:
    """Two watchers on one repository (as the TUI and the language server would be): the
    writer lock lets one index at a time, the other is refused and retries, and no update is
    lost. Each writer holds the lock a while, so both watchers' batches for a change overlap."""
    import assistant.index.indexer as indexer

    first, second = Workspace.open(repo), Workspace.open(repo)
    for _ in first.index(vectors=False):
        pass
    lock_file = first.index_dir / "writer.lock"
    reports: list[IndexReport] = []
    writing: list[int] = []  # how many write at once, seen by each writer as it starts
    holders: list[str] = []  # the lock file's content while each writer holds it
    guard = threading.Lock()
    active = 0
    index_keywords = indexer.index_keywords

    def one_writer_at_a_time(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal active
        with guard:
            active += 1
            writing.append(active)
        holders.append(lock_file.read_text())
        try:
            time.sleep(0.3)  # a slow batch: the other watcher's batch runs into it
            yield from index_keywords(*args, **kwargs)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(indexer, "index_keywords", one_writer_at_a_time)
    caplog.set_level(logging.INFO, logger="assistant.watcher")

    def keep(batch: Batch) -> None:
        if batch.report is not None:
            reports.append(batch.report)

    with (
        Watcher(first, vectors=False, debounce=0.1, on_batch=keep),
        Watcher(second, vectors=False, debounce=0.1, on_batch=keep),
    ):
        for i in range(5):  # one change at a time: each its own batch, both watchers racing
            (repo / "pkg" / f"n{i}.py").write_text(f"def shared_{i}():\n    pass\n")
            wait_for(lambda i=i: f"shared_{i}" in names(first, f"shared_{i}"))
        wait_for(lambda: all(f"shared_{i}" in names(first, f"shared_{i}") for i in range(5)))
        wait_for(lambda: all(f"shared_{i}" in names(second, f"shared_{i}") for i in range(5)))
    assert writing and max(writing) == 1, writing  # never two writers at once
    assert set(holders) == {str(os.getpid())}  # the lock names its holder
    refused = [r for r in caplog.records if "another assist process is indexing" in r.getMessage()]
    assert refused, "the second watcher was never refused: the batches did not race"
    # Each file was parsed once: the watcher that waited found it already indexed.
    assert sum(r.parsed for r in reports) == 5, [r.parsed for r in reports]


def test_watch_command_runs_and_stops(repo: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "watch", str(repo), "--no-vectors", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("watching"), line
        (repo / "pkg" / "c.py").write_text("def from_cli_watch():\n    pass\n")
        ws = Workspace.open(repo)
        wait_for(lambda: "from_cli_watch" in names(ws, "from_cli_watch"))
    finally:
        proc.send_signal(2)
        proc.wait(120)  # a bound, not a speed: a loaded machine finishes its batch first
    assert proc.returncode == 130


def test_falls_back_to_rescans_when_watching_is_impossible(repo: Path, monkeypatch, caplog) -> None:
    """The inotify watch limit cannot be lowered from a test without root-wide effects, so
    the observer's start is made to fail the way it does then (ENOSPC) — a fake at that seam
    only; the rescans that follow are real."""
    import errno

    import assistant.watcher as watcher_module

    class FullObserver:
        def schedule(self, *args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher_module, "Observer", FullObserver)
    ws = Workspace.open(repo)
    for _ in ws.index(vectors=False):
        pass
    watcher = Watcher(ws, vectors=False)
    watcher.start()
    try:
        assert not watcher.watching
        assert watcher.rescan_every <= 30
        assert "falling back to a rescan" in caplog.text
        watcher.rescan_every = 0.2  # the test need not wait the real 30 s
        (repo / "pkg" / "late.py").write_text("def found_by_rescan():\n    pass\n")
        wait_for(lambda: "found_by_rescan" in names(ws, "found_by_rescan"))
    finally:
        watcher.stop()
