"""A cloned repository and a shared machine are hostile: nothing is written through the links a
repository commits, and a folder another user owns or can write is never adopted as a root.

Real git repositories in temp dirs, the real CLI in a subprocess, real files and links.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.chat.history import History
from assistant.errors import AssistError
from assistant.repo.own_files import LinkRefused, WriterLock
from assistant.repo.roots import find_root
from assistant.workspace import Workspace


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _assist(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    base.update(XDG_CONFIG_HOME=str(cwd.parent / "xdg"), ASSIST_MODEL_HOST="false", **env)
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=cwd, env=base, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file in the user's account that a repository would like to overwrite."""
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir(parents=True)
    path.write_text("export PATH=/usr/bin\n")
    return path


def _hostile_clone(tmp_path: Path, victim: Path) -> Path:
    """A repository with `.assist/` committed: links to the victim where assist writes."""
    repo = tmp_path / "clone"
    (repo / ".assist").mkdir(parents=True)
    (repo / "app.py").write_text("def handler(request):\n    return request\n")
    for name in ("writer.lock", ".gitignore", "index.db", "tui.log", "clipboard.txt"):
        os.symlink(os.path.relpath(victim, repo / ".assist"), repo / ".assist" / name)
    os.symlink(str(victim.parent), repo / ".assist" / "chat")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "hostile")
    return repo


def test_a_committed_assist_folder_is_never_written_in(tmp_path: Path, victim: Path) -> None:
    repo = _hostile_clone(tmp_path, victim)
    before = victim.read_bytes()
    done = _assist(["index", "--no-vectors", "-q"], repo)
    assert done.returncode == 0, done.stderr
    assert "is committed to the repository" in done.stderr
    assert "Traceback" not in done.stderr
    assert victim.read_bytes() == before
    assert sorted(p.name for p in victim.parent.iterdir()) == [".bashrc"]
    assert _assist(["search", "handler", "--mode", "keyword"], repo).stdout.count("app.py")
    ws = Workspace.open(repo)
    assert ws.index_dir != repo / ".assist"
    History(ws.index_dir).save("s1", repo, [])
    assert victim.read_bytes() == before
    assert stat.S_IMODE(ws.index_dir.stat().st_mode) == 0o700
    for name in ("index.db", "chat/s1.json"):
        assert stat.S_IMODE((ws.index_dir / name).stat().st_mode) == 0o600, name


def test_links_in_an_untracked_assist_folder_are_refused(tmp_path: Path, victim: Path) -> None:
    """A tarball brings `.assist/` with links and no git: each write refuses, none follows."""
    repo = tmp_path / "unpacked"
    (repo / ".assist").mkdir(parents=True)
    (repo / "app.py").write_text("def f():\n    return 1\n")
    before = victim.read_bytes()
    lock = repo / ".assist" / "writer.lock"
    os.symlink(victim, lock)
    done = _assist(["index", "--no-vectors", "-q"], repo)
    assert done.returncode == 2 and "writer.lock: is a symbolic link" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    lock.unlink()
    os.symlink(victim, repo / ".assist" / "index.db")
    with pytest.raises(LinkRefused, match=r"index\.db: is a symbolic link"):
        Workspace.open(repo).store  # noqa: B018
    with pytest.raises(LinkRefused), WriterLock(repo / ".assist" / "index.db"):
        pass
    (repo / ".assist" / "index.db").unlink()
    os.symlink(victim.parent, repo / ".assist" / "chat")
    with pytest.raises(AssistError, match="symbolic link"):
        History(repo / ".assist").save("s1", repo, [])
    assert victim.read_bytes() == before
    assert sorted(p.name for p in victim.parent.iterdir()) == [".bashrc"]


def test_index_files_are_private(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "a.py").write_text("def a():\n    return 1\n")
    (repo / ".assist").mkdir(mode=0o755)
    ws = Workspace.open(repo)
    for _ in ws.index(vectors=False):
        pass
    assert stat.S_IMODE((repo / ".assist").stat().st_mode) == 0o700
    for path in (repo / ".assist").iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


def test_the_tui_log_is_not_written_through_a_link(tmp_path: Path, victim: Path) -> None:
    from assistant.tui.logfile import logging_to_file

    folder = tmp_path / "r" / ".assist"
    folder.mkdir(parents=True)
    os.symlink(victim, folder / "tui.log")
    before = victim.read_bytes()
    with pytest.raises(LinkRefused), logging_to_file(folder / "tui.log"):
        logging.getLogger("x").warning("secret code")
    assert victim.read_bytes() == before


def test_a_hooks_folder_that_is_a_link_is_refused(tmp_path: Path, victim: Path) -> None:
    from assistant.git_hook import install

    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    os.symlink(victim.parent, repo / "hooks")
    _git(repo, "config", "core.hooksPath", "hooks")
    with pytest.raises(LinkRefused):
        install(repo)
    assert sorted(p.name for p in victim.parent.iterdir()) == [".bashrc"]


# -- whose root ------------------------------------------------------------------------------


def test_another_users_assist_folder_is_not_a_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    (shared / ".assist").mkdir(parents=True)
    mine = shared / "mine" / "src"
    mine.mkdir(parents=True)
    assert find_root(mine) == shared  # the user's own: adopted
    other = os.getuid() + 1  # the same folder, seen by another user
    assert find_root(mine, uid=other) is None
    assert "owned by another user" in caplog.text


def test_a_folder_others_can_write_is_not_a_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "tmp"
    (shared / ".assist").mkdir(parents=True)
    (shared / "work").mkdir()
    os.chmod(shared, 0o1777)
    assert find_root(shared / "work") is None
    assert "can be written by other users" in caplog.text
    (shared / "work" / ".git").mkdir()  # a repository of the user's inside it is fine
    assert find_root(shared / "work") == shared / "work"


@pytest.mark.skipif(os.getuid() != 0, reason="handing a folder to another user needs root")
def test_a_folder_chowned_to_another_user_is_not_adopted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / ".assist").mkdir(parents=True)
    (shared / ".assist" / "config.toml").write_text('[model]\npath = "/evil.gguf"\n')
    os.chown(shared / ".assist", 65534, 65534)
    (shared / "mine").mkdir()
    ws = Workspace.open(shared / "mine")
    assert ws.root == shared / "mine" and ws.settings.model.path is None


# -- what a model path may be ----------------------------------------------------------------


def test_a_model_path_that_is_a_pipe_is_refused_at_once(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    started = time.monotonic()
    done = _assist(["complete", "a.py", "--line", "1", "--col", "0"], repo, ASSIST_MODEL=str(fifo))
    assert time.monotonic() - started < 60  # before the fix the open never returned
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
