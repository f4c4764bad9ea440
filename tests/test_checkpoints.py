"""Checkpoints on real git repositories: undo/redo restore files exactly, dirty and untracked
ones included, while the user's HEAD, branch, index, status and ignored files stay untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from assistant.agent.checkpoints import CURRENT_REF, HEAD_REF, Checkpoints, write_atomic
from assistant.errors import AssistError


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def files(root: Path) -> dict[str, bytes | str]:
    """Every file under root except .git: bytes, or 'link -> target' for symlinks."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "link -> " + os.readlink(full)
            else:
                out[rel] = full.read_bytes() + (b"+x" if os.access(full, os.X_OK) else b"")
    return out


def user_state(root: Path) -> tuple[str, str, str, str, str]:
    """What checkpoints must never change: HEAD, branch, index, status, the user's refs."""
    index = hashlib.sha256((root / ".git" / "index").read_bytes()).hexdigest()
    return (
        git(root, "rev-parse", "HEAD"),
        git(root, "symbolic-ref", "HEAD"),
        index,
        git(root, "status", "--porcelain=v1", "--untracked-files=all"),
        git(root, "for-each-ref", "refs/heads", "refs/tags", "refs/remotes", "refs/stash"),
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".venv/\n*.log\n")
    (root / "src" / "app.py").write_text("def main():\n    return 1\n")
    (root / "src" / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    # The user's work in progress: staged, unstaged, untracked, ignored.
    (root / "src" / "app.py").write_text("def main():\n    return 2  # unstaged\n")
    (root / "staged.txt").write_text("staged\n")
    git(root, "add", "staged.txt")
    (root / "notes.md").write_text("untracked notes\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "lib.py").write_text("ignored\n")
    (root / "debug.log").write_text("ignored log\n")
    git(root, "status")  # let git refresh its index stat cache before we take the fingerprint
    return root


def test_undo_and_redo_restore_a_dirty_tree_exactly(repo: Path) -> None:
    before_files = files(repo)
    before_user = user_state(repo)
    cp = Checkpoints(repo)
    start = cp.begin("rename things")
    # Step 1: edit a dirty tracked file, delete an untracked one, add a file in a new dir.
    (repo / "src" / "app.py").write_text("def main():\n    return 3\n")
    (repo / "notes.md").unlink()
    (repo / "new" / "deep").mkdir(parents=True)
    (repo / "new" / "deep" / "x.py").write_text("x = 1\n")
    step1 = cp.record("step 1")
    assert step1 is not None and step1.parent == start.commit
    after1 = files(repo)
    # Step 2: change mode, CRLF content and add a symlink; touch an ignored file too.
    (repo / "run.sh").chmod(0o644)
    (repo / "src" / "crlf.txt").write_bytes(b"one\r\nTWO\r\n")
    os.symlink("src/app.py", repo / "link.py")
    (repo / ".venv" / "lib.py").write_text("changed by pip, not by the agent\n")
    assert cp.record("step 2") is not None
    after2 = files(repo)

    cp.undo()
    assert files(repo) == {**after1, ".venv/lib.py": b"changed by pip, not by the agent\n"}
    cp.undo()
    restored = files(repo)
    assert restored.pop(".venv/lib.py") == b"changed by pip, not by the agent\n"
    expected = dict(before_files)
    expected.pop(".venv/lib.py")
    assert restored == expected
    assert not (repo / "new").exists()  # directories the agent made are gone again
    assert user_state(repo) == before_user
    with pytest.raises(AssistError, match="nothing to undo"):
        cp.undo()

    cp.redo()
    cp.redo()
    assert files(repo) == after2
    with pytest.raises(AssistError, match="nothing to redo"):
        cp.redo()
    assert git(repo, "rev-parse", "HEAD") == before_user[0]
    assert git(repo, "symbolic-ref", "HEAD") == before_user[1]


def test_refs_live_under_refs_assist_only(repo: Path) -> None:
    cp = Checkpoints(repo)
    cp.begin("task")
    (repo / "src" / "app.py").write_text("changed\n")
    cp.record("edit")
    refs = git(repo, "for-each-ref", "--format=%(refname)").split()
    assert CURRENT_REF in refs and HEAD_REF in refs
    assert [r for r in refs if not r.startswith("refs/assist/")] == ["refs/heads/main"]
    assert git(repo, "log", "--format=%s", "main").strip() == "init"


def test_a_step_that_changes_nothing_makes_no_checkpoint(repo: Path) -> None:
    cp = Checkpoints(repo)
    start = cp.begin("task")
    assert cp.record("read only") is None
    assert cp.current() == start
    assert cp.begin("next task") == start  # same files: the chain continues


def test_undo_refuses_to_clobber_changes_made_since(repo: Path) -> None:
    cp = Checkpoints(repo)
    cp.begin("task")
    (repo / "src" / "app.py").write_text("agent\n")
    cp.record("agent edit")
    (repo / "src" / "app.py").write_text("the user typed this afterwards\n")
    with pytest.raises(AssistError, match="changed since") as err:
        cp.undo()
    assert "src/app.py" in err.value.message
    assert (repo / "src" / "app.py").read_text() == "the user typed this afterwards\n"
    restored = cp.undo(force=True)
    saved = git(repo, "for-each-ref", "--format=%(objectname)", "refs/assist/agent/saved/")
    assert saved.strip()  # the user's version is kept and reachable
    assert git(repo, "show", f"{saved.strip()}:src/app.py") == "the user typed this afterwards\n"
    assert restored.written == ("src/app.py",)


def test_changes_the_undo_does_not_touch_are_kept_and_forcing_succeeds(repo: Path) -> None:
    # Regression: a forced undo used to raise "the files do not match" after restoring, because
    # it compared the user's unrelated new file with the checkpoint too.
    cp = Checkpoints(repo)
    cp.begin("task")
    (repo / "a.txt").write_text("agent\n")
    cp.record("agent writes a.txt")
    (repo / "notes.txt").write_text("the user's own notes\n")
    restored = cp.undo()  # notes.txt is not the undo's business: it goes ahead and keeps it
    assert restored.deleted == ("a.txt",) and restored.kept == ("notes.txt",)
    assert not (repo / "a.txt").exists()
    assert (repo / "notes.txt").read_text() == "the user's own notes\n"
    assert not git(repo, "for-each-ref", "refs/assist/agent/saved/")  # nothing was overwritten
    cp.redo()
    assert (repo / "a.txt").read_text() == "agent\n"

    (repo / "a.txt").write_text("the user edited the agent's file\n")
    with pytest.raises(AssistError, match="changed since") as err:
        cp.undo()  # that would lose the user's edit: refused, naming only the clashing file
    assert "a.txt" in err.value.message and "notes.txt" not in err.value.message
    restored = cp.undo(force=True)  # does not raise
    assert restored.deleted == ("a.txt",) and restored.kept == ("notes.txt",)
    assert not (repo / "a.txt").exists()
    assert (repo / "notes.txt").read_text() == "the user's own notes\n"
    saved = git(repo, "for-each-ref", "--format=%(objectname)", "refs/assist/agent/saved/")
    assert git(repo, "show", f"{saved.strip()}:a.txt") == "the user edited the agent's file\n"
    assert cp.current() is not None and cp.current().kind == "start"  # type: ignore[union-attr]
    cp.redo(force=True)
    assert (repo / "a.txt").read_text() == "agent\n"
    assert (repo / "notes.txt").read_text() == "the user's own notes\n"


def test_a_file_in_the_way_of_a_directory_counts_as_a_clash(repo: Path) -> None:
    cp = Checkpoints(repo)
    cp.begin("task")
    (repo / "gen").mkdir()
    (repo / "gen" / "x.py").write_text("x = 1\n")
    cp.record("agent makes gen/x.py")
    cp.undo()
    (repo / "gen").write_text("the user's file named gen\n")
    with pytest.raises(AssistError, match=r"changed since.*gen"):
        cp.redo()
    assert (repo / "gen").read_text() == "the user's file named gen\n"


def test_undo_stops_where_the_task_began(repo: Path) -> None:
    cp = Checkpoints(repo)
    cp.begin("first")
    (repo / "a.txt").write_text("first task\n")
    cp.record("a")
    (repo / "notes.md").write_text("user edit between tasks\n")
    cp.begin("second")
    (repo / "b.txt").write_text("second task\n")
    cp.record("b")
    cp.undo()
    with pytest.raises(AssistError, match="nothing to undo"):
        cp.undo()
    assert (repo / "notes.md").read_text() == "user edit between tasks\n"
    assert (repo / "a.txt").exists() and not (repo / "b.txt").exists()


def test_a_new_step_after_undo_drops_the_redo(repo: Path) -> None:
    cp = Checkpoints(repo)
    cp.begin("task")
    (repo / "a.txt").write_text("1\n")
    cp.record("one")
    cp.undo()
    (repo / "b.txt").write_text("2\n")
    cp.record("two")
    with pytest.raises(AssistError, match="nothing to redo"):
        cp.redo()


def test_undo_never_deletes_a_file_that_is_ignored_again(repo: Path) -> None:
    """The agent un-ignores .venv; undo brings .gitignore back and leaves .venv alone."""
    cp = Checkpoints(repo)
    cp.begin("task")
    (repo / ".gitignore").write_text("*.log\n")
    cp.record("un-ignore .venv")
    cp.undo()
    assert (repo / ".gitignore").read_text() == ".venv/\n*.log\n"
    assert (repo / ".venv" / "lib.py").read_text() == "ignored\n"


def test_works_in_a_repository_without_commits(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.txt").write_text("a\n")
    cp = Checkpoints(root)
    cp.begin("task")
    (root / "a.txt").write_text("b\n")
    cp.record("edit")
    cp.undo()
    assert (root / "a.txt").read_text() == "a\n"
    assert git(root, "status", "--porcelain") == "?? a.txt\n"


def test_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AssistError, match="not a git repository") as err:
        Checkpoints(tmp_path)
    assert "git init" in err.value.hint


def test_write_atomic_keeps_mode_bits(tmp_path: Path) -> None:
    target = tmp_path / "tool.sh"
    target.write_text("old\n")
    target.chmod(0o750)
    write_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o777 == 0o750
    assert [p.name for p in tmp_path.iterdir()] == ["tool.sh"]
