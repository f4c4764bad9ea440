"""The git pre-commit hook front-end: install, uninstall, and the run git starts.

`assist hook run` documents the changed symbols of a commit (`docstrings/staged.py` does the
work); this module only installs the script git calls and turns the result into lines and an
exit status.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from assistant.docstrings.generate import Outcome
from assistant.docstrings.staged import HookResult
from assistant.errors import AssistError
from assistant.repo.atomic import write_atomic
from assistant.repo.git import hooks_dir
from assistant.repo.own_files import LinkRefused

MARKER = "# assist-docstring-hook"


def hook_path(start: Path) -> Path:
    """Where git looks for the pre-commit hook of the repository around `start`."""
    return hooks_dir(start) / "pre-commit"


def hook_script(python: str | None = None) -> str:
    exe = shlex.quote(python or sys.executable)
    return (
        "#!/bin/sh\n"
        f"{MARKER}: installed by `assist hook install`; `assist hook uninstall` removes it.\n"
        f"exec {exe} -m assistant hook run\n"
    )


def install(start: Path, *, force: bool = False) -> Path:
    path = hook_path(start)
    if path.exists() and not _ours(path) and not force:
        raise AssistError(
            f"{path} exists and was not written by assist",
            "keep it, or replace it with `assist hook install --force`",
        )
    for place in (path.parent, path):
        if place.is_symlink():  # a hooks folder the repository committed as a link
            raise LinkRefused(
                f"{place} is a symbolic link; assist never writes through one",
                "install the hook by hand if you trust where it leads",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, hook_script(), mode=0o755)
    return path


def uninstall(start: Path, *, force: bool = False) -> Path | None:
    """Remove our hook; a hook someone else wrote stays unless `force`."""
    path = hook_path(start)
    if not path.exists():
        return None
    if not _ours(path) and not force:
        raise AssistError(
            f"{path} was not written by assist; left alone", "remove it yourself, or use --force"
        )
    path.unlink()
    return path


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def run(start: Path, files: list[str] | None = None) -> int:
    """The hook itself: document, report on stderr, and the exit status for git."""
    from assistant.docstrings.staged import document_staged

    result = document_staged(start, files)
    for line in summary_lines(result):
        print(f"assist: {line}", file=sys.stderr)
    if not result.changed_files:
        return 0
    names = ", ".join(result.changed_files)
    # Under the pre-commit framework only the work tree is written (it re-stages itself).
    framework = os.environ.get("PRE_COMMIT") == "1"
    # `commit -a`, `-i` and PATHS commit from an index git builds (`index.lock`,
    # `next-index-*.lock`) and throws away when the hook fails: the docs then survive only in
    # the work tree, and running the same command again stages and commits them.
    discarded = os.environ.get("GIT_INDEX_FILE", "").endswith(".lock") and result.fail_on_change
    if framework:
        where, review = "in the work tree; `git add` them", "git diff"
    elif discarded:
        where = "in the work tree: git discarded the index it built for this commit"
        review = "git diff"
    else:
        where, review = "staged and in the work tree", "git diff --cached"
    print(f"assist: wrote docstrings into {names} ({where})", file=sys.stderr)
    if result.fail_on_change:
        again = "run the same commit command again" if discarded else "commit again"
        print(f"assist: review them ({review}) and {again}", file=sys.stderr)
        return 1
    return 0


def summary_lines(result: HookResult) -> list[str]:
    out: list[str] = list(result.notes)
    for report in result.reports:
        for o in report.outcomes:
            out.append(_describe(o))
    return out


def _describe(o: Outcome) -> str:
    where = f"{o.path}:{o.line} {o.kind} {o.name}"
    return f"{o.status:10} {where}" + (f" ({o.reason})" if o.reason else "")
