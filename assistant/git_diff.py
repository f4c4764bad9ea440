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
            name = _unquote(line[4:])
            current = None if name == "/dev/null" else found.setdefault(name[2:], set())
        elif line.startswith("@@") and current is not None:
            m = _HUNK.match(line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or "1")
                current.update(range(start, start + count) if count else (start, start + 1))
    return found


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(name: str) -> str:
    """A `+++` file name as git wrote it: a tab after names with spaces, C-style quotes around
    names with unusual bytes (octal escapes of the UTF-8 bytes when core.quotepath is on)."""
    if name.endswith("\t"):
        name = name[:-1]
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    out, i, inner = bytearray(), 0, name[1:-1]
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and re.match(r"[0-3][0-7]{2}", inner[i + 1 : i + 4]):
            out.append(int(inner[i + 1 : i + 4], 8))
            i += 4
        elif ch == "\\" and inner[i + 1 : i + 2] in _ESCAPES:
            out.append(_ESCAPES[inner[i + 1]])
            i += 2
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


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
