"""The pre-commit hook on real git repositories: real `git commit`, real `pre-commit`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hook_repo import UNDOCUMENTED, git_env, use_pre_commit

from assistant import git_hook
from assistant.docstrings import generate, staged
from assistant.errors import AssistError


@pytest.fixture
def env(tmp_path: Path, make_gguf: Callable[..., Path]) -> dict[str, str]:
    return git_env(tmp_path, make_gguf)


def git(root: Path, env: dict[str, str], *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {args} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def commit(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), "commit", "-q", "-m", "change", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, env, "init", "-q")
    (root / "calc.py").write_text(
        '"""Calculator."""\n\n\ndef one():\n    """One."""\n    return 1\n'
    )
    git(root, env, "add", ".")
    git(root, env, "commit", "-q", "-m", "init")
    return root


def install(root: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "hook", "install"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_install_refuses_a_foreign_hook_and_uninstall_keeps_it(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho theirs\n")
    with pytest.raises(AssistError, match="not written by assist"):
        git_hook.install(repo)
    with pytest.raises(AssistError, match="not written by assist"):
        git_hook.uninstall(repo)
    assert hook.read_text() == "#!/bin/sh\necho theirs\n"
    assert git_hook.install(repo, force=True) == hook
    assert git_hook.MARKER in hook.read_text() and os.access(hook, os.X_OK)
    assert git_hook.install(repo) == hook  # ours: reinstalling is fine
    assert git_hook.uninstall(repo) == hook and not hook.exists()
    assert git_hook.uninstall(repo) is None


def test_hook_documents_staged_symbols_and_fails_the_commit_once(
    repo: Path, env: dict[str, str]
) -> None:
    install(repo, env)
    (repo / "calc.py").write_text((repo / "calc.py").read_text() + "\n\n" + UNDOCUMENTED)
    git(repo, env, "add", "calc.py")
    first = commit(repo, env)
    assert first.returncode == 1, first.stderr
    assert "wrote docstrings into calc.py" in first.stderr
    expected = '\n\ndef add(a, b):\n    """Aaaaaaaa."""\n    return a + b\n'
    assert git(repo, env, "show", ":calc.py").endswith(expected)  # staged
    assert (repo / "calc.py").read_text().endswith(expected)  # and in the work tree
    assert "docstring" not in git(repo, env, "log", "--format=%s")
    second = commit(repo, env)  # the second run finds nothing to do
    assert second.returncode == 0, second.stderr
    assert git(repo, env, "show", "HEAD:calc.py").endswith(expected)
    assert git(repo, env, "status", "--porcelain") == ""


def test_partially_staged_file_keeps_its_unstaged_hunk(repo: Path, env: dict[str, str]) -> None:
    env = {**env, "ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE": "false"}
    install(repo, env)
    calc = repo / "calc.py"
    staged = calc.read_text() + "\n\n" + UNDOCUMENTED
    calc.write_text(staged)
    git(repo, env, "add", "calc.py")
    # An unstaged change away from `add`.
    worktree = staged.replace('"""Calculator."""', '"""Calculator, unstaged."""')
    calc.write_text(worktree)
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    committed = git(repo, env, "show", "HEAD:calc.py")
    assert '    """Aaaaaaaa."""\n    return a + b' in committed
    assert "unstaged" not in committed  # never committed
    now = calc.read_text()
    assert "Calculator, unstaged." in now  # never lost
    assert '    """Aaaaaaaa."""\n    return a + b' in now  # the doc is in the work tree too
    added = [ln for ln in git(repo, env, "diff").splitlines() if ln.startswith("+")]
    assert added == ["+++ b/calc.py", '+"""Calculator, unstaged."""']  # only the unstaged line


def test_a_symbol_next_to_an_unstaged_hunk_is_left_alone(repo: Path, env: dict[str, str]) -> None:
    env = {**env, "ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE": "false"}
    install(repo, env)
    calc = repo / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    git(repo, env, "add", "calc.py")
    calc.write_text(calc.read_text().replace("    return a + b", "    return a + b  # sum"))
    before = calc.read_text()
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert "unstaged changes next to it" in done.stderr
    assert calc.read_text() == before
    assert git(repo, env, "show", "HEAD:calc.py").endswith(UNDOCUMENTED)


@pytest.mark.parametrize("how", [["-a"], ["calc.py"]])
def test_commit_all_and_commit_paths_use_the_temporary_index(
    repo: Path, env: dict[str, str], how: list[str]
) -> None:
    env = {**env, "ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE": "false"}
    install(repo, env)
    (repo / "calc.py").write_text((repo / "calc.py").read_text() + "\n\n" + UNDOCUMENTED)
    done = commit(repo, env, *how)  # nothing staged in .git/index: git builds a temporary one
    assert done.returncode == 0, done.stderr
    assert '    """Aaaaaaaa."""\n    return a + b' in git(repo, env, "show", "HEAD:calc.py")
    assert '    """Aaaaaaaa."""' in (repo / "calc.py").read_text()
    assert git(repo, env, "status", "--porcelain") == ""  # the real index has the docs too


@pytest.mark.parametrize("how", [["-a"], ["calc.py"], ["-i", "calc.py"]])
def test_a_failed_commit_with_a_temporary_index_says_so_and_the_retry_commits_the_doc(
    repo: Path, env: dict[str, str], how: list[str]
) -> None:
    # With the hook failing, git throws away the index it built for `-a`, `-i` and PATHS:
    # the docs are then only in the work tree, and the same command again commits them.
    install(repo, env)
    calc = repo / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    first = commit(repo, env, *how)
    assert first.returncode == 1, first.stderr
    assert "git diff --cached" not in first.stderr
    assert "git discarded the index it built for this commit" in first.stderr
    assert '    """Aaaaaaaa."""' in calc.read_text()
    assert '    """Aaaaaaaa."""' not in git(repo, env, "show", ":calc.py")  # rolled back
    second = commit(repo, env, *how)
    assert second.returncode == 0, second.stderr
    assert '    """Aaaaaaaa."""\n    return a + b' in git(repo, env, "show", "HEAD:calc.py")
    assert git(repo, env, "status", "--porcelain") == ""


def test_a_staged_file_now_a_symlink_in_the_work_tree_is_not_written_through(
    repo: Path, env: dict[str, str]
) -> None:
    env = {**env, "ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE": "false"}
    install(repo, env)
    calc = repo / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    git(repo, env, "add", "calc.py")
    target = repo / "elsewhere.txt"
    target.write_text("the user's own text\n")
    calc.unlink()
    calc.symlink_to("elsewhere.txt")  # an unstaged type change
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert "is a symlink in the work tree" in done.stderr
    assert calc.is_symlink() and target.read_text() == "the user's own text\n"
    assert git(repo, env, "show", "HEAD:calc.py").endswith(UNDOCUMENTED)


def test_a_renamed_file_is_compared_with_its_old_self(repo: Path, env: dict[str, str]) -> None:
    calc = repo / "calc.py"
    calc.write_text(
        calc.read_text() + "\n\n" + UNDOCUMENTED + "\n\ndef sub(a, b):\n    return a - b\n"
    )
    git(repo, env, "add", "calc.py")
    git(repo, env, "commit", "-q", "--no-verify", "-m", "undocumented")
    install(repo, env)
    git(repo, env, "mv", "calc.py", "maths.py")
    pure = commit(repo, env)  # a pure rename changes no symbol: nothing to write
    assert pure.returncode == 0, pure.stderr
    assert "wrote" not in pure.stderr
    maths = repo / "maths.py"
    git(repo, env, "mv", "maths.py", "arith.py")
    arith = repo / "arith.py"
    arith.write_text(arith.read_text().replace("return a - b", "return b - a"))
    git(repo, env, "add", "arith.py")
    edited = commit(repo, env)  # renamed and one function edited: only that one
    assert edited.returncode == 1, edited.stderr
    staged_now = git(repo, env, "show", ":arith.py")
    assert 'def sub(a, b):\n    """Aaaaaaaa."""' in staged_now
    assert "def add(a, b):\n    return a + b" in staged_now
    assert not maths.exists()


def test_a_latin_1_file_is_committed_untouched_and_said_so(repo: Path, env: dict[str, str]) -> None:
    install(repo, env)
    data = "# caf\u00e9\n\ndef add(a, b):\n    return a + b\n".encode("latin-1")
    (repo / "legacy.py").write_bytes(data)
    git(repo, env, "add", "legacy.py")
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert "legacy.py: the staged file is not UTF-8 text; not documented" in done.stderr
    assert (repo / "legacy.py").read_bytes() == data


def test_a_staged_file_that_does_not_parse_is_committed_untouched(
    repo: Path, env: dict[str, str]
) -> None:
    install(repo, env)
    broken = "def add(a, b):\n    return a +\n"
    (repo / "bad.py").write_text(broken)
    git(repo, env, "add", "bad.py")
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert "does not parse" in done.stderr
    assert git(repo, env, "show", "HEAD:bad.py") == broken


def test_nothing_to_document_loads_no_model_and_is_quick(repo: Path, env: dict[str, str]) -> None:
    env = {**env, "ASSIST_MODEL": str(repo / "no-such-model.gguf")}  # loading it would fail
    install(repo, env)
    (repo / "calc.py").write_text((repo / "calc.py").read_text() + "\n# a comment\n")
    git(repo, env, "add", "calc.py")
    start = time.perf_counter()
    done = commit(repo, env)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    print(f"commit with the hook: {elapsed:.2f} s")  # measured in bench/, not asserted here


def test_the_pre_commit_framework_runs_the_shipped_manifest(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # The hook repository holds the real .pre-commit-hooks.yaml of this project. Its
    # `language: python` would pip-install assist (and compile llama-cpp-python) into a fresh
    # venv; the config overrides only the language, so the manifest's entry, file types and
    # id run for real with the `assist` already on PATH.
    use_pre_commit(repo, env, tmp_path)
    (repo / "calc.py").write_text((repo / "calc.py").read_text() + "\n\n" + UNDOCUMENTED)
    (repo / "notes.txt").write_text("not code\n")
    git(repo, env, "add", "calc.py", "notes.txt")
    first = commit(repo, env)
    assert first.returncode == 1, first.stdout + first.stderr
    output = first.stdout + first.stderr  # git hands the hook's stdout on to stderr
    assert "assist docstring" in output and "Failed" in output
    assert "wrote docstrings into calc.py" in output
    assert '    """Aaaaaaaa."""' in (repo / "calc.py").read_text()
    assert '    """Aaaaaaaa."""' not in git(repo, env, "show", ":calc.py")  # pre-commit stages
    git(repo, env, "add", "calc.py")  # the review step pre-commit asks for
    second = commit(repo, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert '    """Aaaaaaaa."""' in git(repo, env, "show", "HEAD:calc.py")


def test_pre_commit_framework_never_loses_an_unstaged_edit(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # pre-commit stashes the unstaged hunk, runs the hook, and re-applies it; the hook must not
    # touch the index there, or pre-commit's rollback fails and the edit is left in its cache.
    use_pre_commit(repo, env, tmp_path)
    calc = repo / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    git(repo, env, "add", "calc.py")
    unstaged = calc.read_text().replace("return a + b", "return a + b  # MY UNSTAGED WORK")
    calc.write_text(unstaged)
    done = commit(repo, env)
    output = done.stdout + done.stderr
    assert "CalledProcessError" not in output and "Rolling back" not in output
    # The doc would sit inside the stashed hunk's context, so pre-commit would roll it back
    # on every try: the symbol is left for later and the commit goes through.
    assert done.returncode == 0, output
    assert "Passed" in output  # (pre-commit shows a passing hook's notes only when verbose)
    assert calc.read_text() == unstaged  # the edit is here
    assert git(repo, env, "show", "HEAD:calc.py").endswith(UNDOCUMENTED)


def test_pre_commit_stash_hunks_are_read_from_its_patch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "pc"
    home.mkdir()
    (home / f"patch1700000000-{os.getppid()}").write_text(
        'diff --git "a/caf\\303\\251.py" "b/caf\\303\\251.py"\n'
        '--- "a/caf\\303\\251.py"\n+++ "b/caf\\303\\251.py"\n'
        "@@ -1,2 +1,6 @@\n def a():\n     return 1\n+\n+\n+def b():\n+    return 2\n"
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -10,7 +10,7 @@\n@@ -40 +40 @@\n"
    )
    stash = staged._pre_commit_stash({"PRE_COMMIT_HOME": str(home)})
    assert stash == {"caf\u00e9.py": [(1, 2)], "x.py": [(10, 7), (40, 1)]}
    assert list(staged._inside((1, 2), 2)) == [0, 1, 2]  # anchored at both ends of the file
    assert list(staged._inside((10, 7), 100)) == [10, 11, 12, 13, 14, 15]


def test_safe_rows_need_the_neighbours_to_stay_adjacent() -> None:
    rows, mapping = staged._safe_rows(
        "def f(x):\n    return x\n", "def f(x):\n    x += 1\n    return x\n"
    )
    assert rows is not None and 1 not in rows and 0 in rows and mapping[0] == 0
    rows, _ = staged._safe_rows("def f(x):\n    return x\n", "# new\ndef f(x):\n    return x\n")
    assert rows is not None and 0 not in rows and 1 in rows


def test_no_doc_lands_under_an_unstaged_line(repo: Path, env: dict[str, str]) -> None:
    env = {**env, "ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE": "false"}
    install(repo, env)
    (repo / "f.py").write_text("def f(x):\n    return x\n")
    git(repo, env, "add", "f.py")
    worktree = "def f(x):\n    x += 1\n    return x\n"
    (repo / "f.py").write_text(worktree)
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert "unstaged changes next to it" in done.stderr
    assert (repo / "f.py").read_text() == worktree
    assert git(repo, env, "show", "HEAD:f.py") == "def f(x):\n    return x\n"


@pytest.mark.parametrize("name", ["my file.py", "é.py"])
def test_names_with_spaces_and_non_ascii_are_documented(
    repo: Path, env: dict[str, str], name: str
) -> None:
    env = {**env, "ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE": "false"}
    install(repo, env)
    (repo / name).write_text(UNDOCUMENTED)
    git(repo, env, "add", name)
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert '    """Aaaaaaaa."""' in git(repo, env, "show", f"HEAD:{name}")
    assert '    """Aaaaaaaa."""' in (repo / name).read_text()


@pytest.fixture
def in_process(repo: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hook run in this process, with the test's environment, on `repo`."""
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(repo)
    return repo


def test_a_file_saved_during_the_run_is_neither_overwritten_nor_staged(
    in_process: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calc = in_process / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    git(in_process, env, "add", "calc.py")
    saved = calc.read_text() + "# saved by the editor meanwhile\n"
    real = generate.document_text

    def then_save(*args: object, **kw: object) -> generate.FileReport:
        report = real(*args, **kw)  # type: ignore[arg-type]
        calc.write_text(saved)  # a real save while the model was busy
        return report

    monkeypatch.setattr(generate, "document_text", then_save)
    result = staged.document_staged(in_process)
    assert result.changed_files == []
    assert calc.read_text() == saved
    assert '"""Aaaa' not in git(in_process, env, "show", ":calc.py")
    reasons = [o.reason for o in result.reports[0].outcomes]
    assert reasons == ["the file changed during the run; not written"]


def test_an_unreadable_work_tree_file_is_skipped(in_process: Path, env: dict[str, str]) -> None:
    calc = in_process / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    git(in_process, env, "add", "calc.py")
    broken = calc.read_bytes() + b"# caf\xe9 (latin-1, unstaged)\n"
    calc.write_bytes(broken)
    result = staged.document_staged(in_process)
    assert result.changed_files == [] and result.reports == []
    assert any("cannot be read as UTF-8" in n for n in result.notes)
    assert calc.read_bytes() == broken
    assert '"""Aaaa' not in git(in_process, env, "show", ":calc.py")


def test_a_failed_index_update_puts_the_work_tree_back(
    in_process: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calc = in_process / "calc.py"
    calc.write_text(calc.read_text() + "\n\n" + UNDOCUMENTED)
    git(in_process, env, "add", "calc.py")
    before = calc.read_text()
    real = staged.write_atomic
    lock = in_process / ".git" / "index.lock"

    def then_lock(*args: object, **kw: object) -> bool:
        done = real(*args, **kw)  # type: ignore[arg-type]
        assert isinstance(done, bool)
        lock.touch(exist_ok=True)  # another git process holds the index: update-index fails
        return done

    monkeypatch.setattr(staged, "write_atomic", then_lock)
    with pytest.raises(AssistError, match="update-index"):
        staged.document_staged(in_process)
    lock.unlink()
    assert calc.read_text() == before
    assert git(in_process, env, "show", ":calc.py") == before
