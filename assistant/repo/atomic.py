"""The one way assist replaces a file: a temp file beside it, fsynced, renamed over, and the
directory fsynced, so a crash leaves the old file or the new one, never half of either.

The rename happens inside an open directory handle, so a directory swapped for a symlink between
the caller's checks and the write cannot redirect it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path | int) -> None:
    """Make a rename or a new entry in a directory durable."""
    fd = path if isinstance(path, int) else os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (network, FUSE) refuse fsync on directories
    finally:
        if not isinstance(path, int):
            os.close(fd)


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int | None = None,
    expected: bytes | None = None,
    executable: bool | None = None,
    dir_fd: int | None = None,
) -> bool:
    """Replace `path` with `data` (str is written as UTF-8, line endings untouched).

    `mode`: permission bits of the new file; by default those of the file replaced (0o644 for a
    new one, less the umask). `expected`: the bytes the caller read and edited; when the file no
    longer holds them nothing is written and the result is False (an edit saved meanwhile is
    never overwritten). `executable` sets or clears the x bits (git's 100755 and 100644).
    `dir_fd`: an open handle of the directory to write in (`path.name` is
    then taken relative to it).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    own_fd = dir_fd is None
    fd_dir = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY) if own_fd else dir_fd
    assert fd_dir is not None
    name = path.name
    tmp = f".{name}.{secrets.token_hex(4)}.assist-tmp"
    try:
        if mode is None:
            mode = _current_mode(name, fd_dir)
        if executable is True:
            mode |= (mode & 0o444) >> 2
        elif executable is False:
            mode &= ~0o111
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode, dir_fd=fd_dir)
            if expected is not None and _read(name, fd_dir) != expected:
                return False
            os.rename(tmp, name, src_dir_fd=fd_dir, dst_dir_fd=fd_dir)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd_dir)
        fsync_dir(fd_dir)
        return True
    finally:
        if own_fd:
            os.close(fd_dir)


def _current_mode(name: str, dir_fd: int) -> int:
    """The permission bits of the regular file replaced, or the umask's default."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except FileNotFoundError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _read(name: str, dir_fd: int) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temp path beside `path` for a library that writes files itself (hnswlib, GGUFWriter);
    on a clean exit it is fsynced and renamed over `path`, on an error removed."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.assist-tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o600)  # an index or a model cache: the user's alone
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
