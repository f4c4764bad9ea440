"""The one way assist talks to git: the `git` command, with every failure as an `AssistError`.

Plumbing through the command line does exactly what git itself does (hooks paths, worktrees,
split indexes, `GIT_INDEX_FILE` set by git for a hook: every command here inherits the
environment), so there is no second implementation of git's formats to drift from it. Paths are
read NUL-separated with `core.quotepath=off` and kept as bytes-safe text (surrogateescape).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from assistant.errors import AssistError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's id of the empty tree
ENCODING = ("utf-8", "surrogateescape")


class GitError(AssistError):
    def __init__(self, message: str, hint: str, returncode: int | None) -> None:
        super().__init__(message, hint)
        self.returncode = returncode


def git(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 300,
    ok: tuple[int, ...] = (0,),
) -> bytes:
    """Run `git -C root ARGS` and return its stdout; `env` adds to (or overrides) ours."""
    try:
        done = subprocess.run(
            ["git", "-c", "core.quotepath=off", "-C", str(root), *args],
            input=data,
            capture_output=True,
            env={**os.environ, **env} if env else None,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise GitError("git is not installed", "install git and try again", None) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} failed: {exc}", "check the repository", None) from None
    if done.returncode not in ok:
        err = done.stderr.decode(*ENCODING).strip().splitlines()
        raise GitError(
            f"git {args[0]} failed: {err[-1] if err else f'exit {done.returncode}'}",
            "check the repository (git status, git fsck)",
            done.returncode,
        )
    return done.stdout


def text(root: Path, *args: str, env: dict[str, str] | None = None, **kw: object) -> str:
    """`git` with its output decoded (undecodable bytes survive as surrogates)."""
    return git(root, *args, env=env, **kw).decode(*ENCODING)  # type: ignore[arg-type]


def nul_list(out: bytes | str) -> list[str]:
    raw = out.decode(*ENCODING) if isinstance(out, bytes) else out
    return [p for p in raw.split("\0") if p]


def rev(root: Path, name: str, env: dict[str, str] | None = None) -> str | None:
    """The commit `name` points at, or None."""
    try:
        out = git(root, "rev-parse", "--verify", "--quiet", name + "^{commit}", env=env)
    except GitError:
        return None
    return out.decode().strip() or None


def has_head(root: Path, env: dict[str, str] | None = None) -> bool:
    return rev(root, "HEAD", env) is not None


def toplevel(start: Path) -> Path:
    """The top of the work tree around `start`."""
    try:
        return Path(text(start, "rev-parse", "--show-toplevel").strip())
    except GitError:
        raise AssistError(f"{start}: not inside a git work tree", "run it inside one") from None


def git_dir(root: Path, env: dict[str, str] | None = None) -> Path:
    found = Path(text(root, "rev-parse", "--git-dir", env=env).strip())
    return found if found.is_absolute() else root / found


def hooks_dir(start: Path) -> Path:
    """Where git runs hooks from (honours `core.hooksPath` and worktrees)."""
    top = toplevel(start)
    found = Path(text(top, "rev-parse", "--git-path", "hooks").strip())
    return found if found.is_absolute() else top / found


def ls_files(root: Path, only: set[str] | None = None) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files (of `only`, when given), or None when
    `root` is not a git work tree."""
    if only is not None and not only:
        return []
    pathspecs = ["--", *(f":(literal){p}" for p in sorted(only))] if only is not None else []
    try:
        out = git(root, "ls-files", "-z", "-co", "--exclude-standard", *pathspecs, timeout=120)
    except GitError:
        return None
    return sorted(set(nul_list(out)))


def ignored(root: Path, paths: list[str]) -> set[str]:
    """Those of `paths` that git's ignore rules (as on disk now) match."""
    if not paths:
        return set()
    data = "".join(p + "\0" for p in paths).encode(*ENCODING)
    out = git(root, "check-ignore", "-z", "--no-index", "--stdin", data=data, ok=(0, 1))
    return set(nul_list(out))


# -- changed lines ---------------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.M)
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def diff_lines(diff: str) -> dict[str, set[int]]:
    """New-side line numbers touched by each file of a `git diff -U0` (deletions mark both
    neighbours)."""
    found: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.split("\n"):
        if line.startswith("+++ "):
            name = unquote_path(line[4:])
            current = None if name == "/dev/null" else found.setdefault(name[2:], set())
        elif line.startswith("@@") and current is not None:
            m = _HUNK.match(line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or "1")
                current.update(range(start, start + count) if count else (start, start + 1))
    return found


def unquote_path(name: str) -> str:
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
            out += ch.encode(*ENCODING)
            i += 1
    return out.decode(*ENCODING)


def changed_lines(root: Path) -> dict[str, set[int]]:
    """Lines of the work tree that differ from HEAD (staged or not); untracked files wholly."""
    base = "HEAD" if has_head(root) else EMPTY_TREE
    found = diff_lines(text(root, "diff", "-U0", "--no-color", "--no-ext-diff", base, "--"))
    for rel in nul_list(git(root, "ls-files", "-z", "-o", "--exclude-standard")):
        found[rel] = set(range(1, 1_000_000))
    return found
