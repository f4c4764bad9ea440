"""Which lines git says changed: `git diff -U0` hunks as sets of line numbers per file.

Every command inherits the environment, so a `GIT_INDEX_FILE` set by git for a hook is honoured.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from assistant.errors import AssistError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's id of the empty tree

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.M)


def diff_lines(diff: str) -> dict[str, set[int]]:
    """New-side line numbers touched by each file of a `git diff -U0` (deletions mark both
    neighbours)."""
    found: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.split("\n"):
        if line.startswith("+++ "):
            name = line[4:]
            current = None if name == "/dev/null" else found.setdefault(name[2:], set())
        elif line.startswith("@@") and current is not None:
            m = _HUNK.match(line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or "1")
                current.update(range(start, start + count) if count else (start, start + 1))
    return found


def git(
    root: Path, *args: str, env: dict[str, str] | None = None, data: bytes | None = None
) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            input=data,
            capture_output=True,
            check=True,
            env=env,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise AssistError(
            f"git {args[0]} failed: {detail.decode(errors='replace').strip() or exc}",
            "run it inside a git repository with git installed",
        ) from None
    return done.stdout.decode("utf-8", "surrogateescape")


def has_head(root: Path, env: dict[str, str] | None = None) -> bool:
    try:
        git(root, "rev-parse", "--verify", "-q", "HEAD", env=env)
        return True
    except AssistError:
        return False


def changed_lines(root: Path) -> dict[str, set[int]]:
    """Lines of the work tree that differ from HEAD (staged or not); untracked files wholly."""
    base = "HEAD" if has_head(root) else EMPTY_TREE
    found = diff_lines(git(root, "diff", "-U0", "--no-color", "--no-ext-diff", base, "--"))
    for rel in git(root, "ls-files", "-z", "-o", "--exclude-standard").split("\0"):
        if rel:
            found[rel] = set(range(1, 1_000_000))
    return found
