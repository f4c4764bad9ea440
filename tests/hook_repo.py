"""Shared by the hook tests: a git environment with the tiny model, git itself, and the
pre-commit framework set up on a repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

VENV_BIN = str(Path(sys.executable).parent)
UNDOCUMENTED = "def add(a, b):\n    return a + b\n"


def git_env(tmp_path: Path, make_gguf: Callable[..., Path]) -> dict[str, str]:
    """A git-and-assist environment: no user config, a tiny FIM model, fixed identities."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ASSIST_", "GIT_"))}
    return {
        **clean,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": VENV_BIN + os.pathsep + clean.get("PATH", ""),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "ASSIST_MODEL": str(make_gguf(family="qwen", metadata=True, favorite="a")),
        "ASSIST_DOCSTRING_MAX_TOKENS": "8",
    }


def run_git(root: Path, env: dict[str, str], *args: str, check: bool = True) -> str:
    """git's stdout (stderr only in the failure message)."""
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {args} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def use_pre_commit(repo: Path, env: dict[str, str], where: Path, *, install: bool = True) -> None:
    """A committed `.pre-commit-config.yaml` naming a hook repository (under `where`) that
    holds our manifest, and `pre-commit install` when `install`."""
    hooks_repo = where / "hooks-repo"
    if not hooks_repo.exists():
        hooks_repo.mkdir(parents=True)
        manifest = Path(__file__).parent.parent / ".pre-commit-hooks.yaml"
        shutil.copy(manifest, hooks_repo / ".pre-commit-hooks.yaml")
        run_git(hooks_repo, env, "init", "-q")
        run_git(hooks_repo, env, "add", ".")
        run_git(hooks_repo, env, "commit", "-q", "-m", "hooks")
    rev = run_git(hooks_repo, env, "rev-parse", "HEAD").strip()
    # The manifest's `language: python` would pip-install assist into a fresh venv; only the
    # language is overridden, so its entry, file types and id run for real.
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hooks_repo}\n  rev: {rev}\n  hooks:\n"
        "  - id: assist-docstring\n    language: unsupported\n"
    )
    run_git(repo, env, "add", ".pre-commit-config.yaml")
    run_git(repo, env, "commit", "-q", "-m", "pre-commit config")
    if install:
        pre_commit = str(Path(VENV_BIN) / "pre-commit")
        subprocess.run([pre_commit, "install"], cwd=repo, env=env, check=True, capture_output=True)
