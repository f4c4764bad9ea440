"""Which folder is the repository, and where assist keeps its index for it.

A folder holding `.git` or `.assist` is a root only when it is the user's: on a shared machine
another user's `.assist/` above your checkout would hand you their config (and the model it
names) and take your index into their folder. The index lives in the repository's `.assist/`
when that is the user's own private folder; a `.assist/` the repository brought with it (tracked
by git, a link, someone else's) is never written in, and the index goes to the user's state
folder instead, said in one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import subprocess
from pathlib import Path

from assistant.repo.own_files import foreign_reason

INDEX_DIR = ".assist"
log = logging.getLogger(__name__)


def _refusal(candidate: Path, marker: str, uid: int | None) -> str | None:
    """None when `candidate/marker` is absent, "" when it makes `candidate` a root, else why
    not."""
    try:
        st = os.lstat(candidate / marker)
    except OSError:
        return None
    if marker == INDEX_DIR and not stat.S_ISDIR(st.st_mode):
        return None
    me = os.getuid() if uid is None else uid
    if st.st_uid != me:
        return f"{candidate / marker} is owned by another user (uid {st.st_uid})"
    try:
        here = os.stat(candidate)
    except OSError:
        return None
    if here.st_mode & 0o002:
        return f"{candidate} can be written by other users"
    return ""


def find_root(start: Path, *, uid: int | None = None) -> Path | None:
    """The repository around `start`: the nearest folder holding `.git` or `.assist` that is
    the user's (`uid`, the current user's by default) in a folder others cannot write."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        for marker in (".git", INDEX_DIR):
            why = _refusal(candidate, marker, uid)
            if why is None:
                continue
            if not why:
                return candidate
            log.warning("not using %s as the repository: %s", candidate, why)
            break
    return None


def _tracked(root: Path) -> bool:
    """Whether git tracks anything under `root/.assist` (a repository that committed it)."""
    if not (root / ".git").exists():
        return False
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--", INDEX_DIR],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.stdout.strip(b"\0"))


def state_home(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "assist"


def index_dir_for(root: Path) -> Path:
    """`root/.assist` when it is missing or the user's own and untracked; otherwise a private
    folder for this repository under the user's state folder (said once, with why)."""
    local = root / INDEX_DIR
    why = ""
    try:
        st = os.lstat(local)
        why = foreign_reason(st)
        if why == "can be written by other users":
            why = ""  # ours: private_dir tightens it
    except FileNotFoundError:
        return local
    if not why and _tracked(root):
        why = "is committed to the repository"
    if not why:
        return local
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    elsewhere = state_home() / "repos" / f"{root.name or 'root'}-{digest}"
    log.warning("%s %s; keeping assist's index and history in %s instead", local, why, elsewhere)
    return elsewhere
