"""Files assist keeps for itself (index, locks, history, logs), never written through a link.

A repository is untrusted: it may commit `.assist/` with `writer.lock -> ~/.bashrc` in it, and
on a shared machine another user may own the folder a path leads through. So every file assist
creates or rewrites for itself is opened here: in a directory that is a real directory owned by
the user and closed to others (0700), with `O_NOFOLLOW` on the last name, files 0600. A link in
the way is refused with one line, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import AssistError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class LinkRefused(AssistError):
    """A symlink (or something else that is not ours) where assist would write."""


def _refuse(path: Path, why: str) -> LinkRefused:
    return LinkRefused(
        f"{path}: {why}; assist never writes through a link or into another user's folder",
        "remove it (it may have come with the repository)",
    )


def foreign_reason(st: os.stat_result, uid: int | None = None) -> str:
    """Why a folder with this `lstat` is not one the user alone controls, or ""."""
    me = os.getuid() if uid is None else uid
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != me:
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != os.getgid()):
        return "can be written by other users"
    return ""


def private_dir(path: Path) -> Path:
    """`path` as a directory only the user can enter (made 0700 if missing, tightened if it is
    the user's own); refused when it is a link or belongs to someone else."""
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        pass
    except FileNotFoundError:
        private_dir(path.parent)
        return private_dir(path)
    st = os.lstat(path)
    why = foreign_reason(st)
    if why and why != "can be written by other users":
        raise _refuse(path, why)
    if stat.S_IMODE(st.st_mode) != PRIVATE_DIR:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, PRIVATE_DIR)
        finally:
            os.close(fd)
    return path


def open_in(dir_fd: int, name: str, flags: int, *, shown: Path, mode: int = PRIVATE_FILE) -> int:
    """The regular file `name` of the user's, opened inside an open directory with
    `O_NOFOLLOW` (a link planted there is refused, never followed); created `mode` when
    `flags` say so, and a file of the user's with looser permissions tightened to `mode`.
    `shown` names it in the error."""
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode,
                     dir_fd=dir_fd)  # fmt: skip
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise _refuse(shown, "is a symbolic link") from None
        raise
    st = os.fstat(fd)
    why = "" if stat.S_ISREG(st.st_mode) else "is not a regular file"
    if not why and st.st_uid != os.getuid():
        why = f"belongs to another user (uid {st.st_uid})"
    if why:
        os.close(fd)
        raise _refuse(shown, why)
    if stat.S_IMODE(st.st_mode) & ~mode:
        os.fchmod(fd, mode)
    os.set_blocking(fd, True)
    return fd


def open_own(path: Path, flags: int = os.O_RDWR | os.O_CREAT, mode: int = PRIVATE_FILE) -> int:
    """A descriptor of `path` (in a folder from `private_dir`), through no link: see
    `open_in`."""
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(path.parent, "is a symbolic link or not a directory") from None
        raise
    try:
        return open_in(dir_fd, path.name, flags, shown=path, mode=mode)
    finally:
        os.close(dir_fd)


def check_own(path: Path, *, create: bool = True) -> None:
    """Before a library opens `path` by name (SQLite): refuse a link or a non-file there,
    tighten a file of the user's to 0600, and (with `create`) make a missing one 0600 first,
    so what the library writes is private."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if create:
            with contextlib.suppress(FileExistsError):
                os.close(open_own(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        return
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "is not a regular file")
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~PRIVATE_FILE:
        os.close(open_own(path, os.O_RDONLY))  # tightens it, through no link


def write_new(path: Path, text: str) -> None:
    """Create `path` with `text` unless something is already there (a `.gitignore`)."""
    try:
        fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise _refuse(path, "is a symbolic link") from None
        return
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


@contextlib.contextmanager
def directory(root: Path, rel_dir: str, *, create: bool = False) -> Iterator[int]:
    """An open handle of `root/rel_dir`, reached without following any symlink; with `create`,
    missing directories are made on the way. A link on the way raises `LinkRefused`."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in [p for p in rel_dir.split("/") if p not in ("", ".")]:
            if part == "..":
                raise LinkRefused(f"{rel_dir}: leads upwards", "use a path inside the repository")
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o777, dir_fd=fd)
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise LinkRefused(
                        f"{rel_dir}: a link or a file is in the way", "assist never follows it"
                    ) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


_HELD_LOCKS: set[int] = set()
"""Descriptors of writer locks this process holds. A forked child (the indexer's parser
workers) closes its copies at once: an `flock` lives as long as any descriptor of it, so a
worker orphaned by a killed indexer would otherwise keep the repository locked."""

_HOOKED: list[bool] = []
"""Whether the fork hook is registered (once per process, at the first lock)."""


def _drop_inherited_locks() -> None:
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


class WriterLock:
    """One indexing process per repository; the kernel drops the lock if its holder dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.fd = open_own(self.path)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise AssistError(
                "another assist process is indexing this repository",
                "wait for it to finish; its results are visible to searches meanwhile",
            ) from None
        if not _HELD_LOCKS and not _HOOKED:
            os.register_at_fork(after_in_child=_drop_inherited_locks)
            _HOOKED.append(True)
        _HELD_LOCKS.add(self.fd)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            _HELD_LOCKS.discard(self.fd)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
