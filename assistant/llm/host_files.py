"""The model host's files: a private runtime directory, files opened in it so that nothing is
written through a symlink, and the lock that says a host is alive.

A host holds an exclusive `flock` on `model-<key>.lock` for its whole life (its starter takes
it and hands the open file to the host, so there is no gap between them). The kernel drops the
lock when the process dies, however it dies. So "is a host alive?" is "is the lock held?", not
"did it answer in time?": a paused, busy or swamped host is never mistaken for a dead one, and
only a process holding the lock may remove a socket or start a host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from assistant.errors import AssistError
from assistant.repo.own_files import LinkRefused, open_in


class HostingUnavailable(AssistError):
    """The runtime directory cannot hold a host's socket: models load in-process instead."""


def runtime_dir() -> Path:
    """The per-user directory of host sockets, made owner-only if new, refused if unsafe."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        where = Path(base) / "assist"
    else:
        where = Path(tempfile.gettempdir()) / f"assist-{os.getuid()}"
    try:
        where.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise HostingUnavailable(
            f"cannot make the model hosts' directory {where}: {exc.strerror}",
            "set XDG_RUNTIME_DIR to a directory of yours, or set model.host = false",
        ) from None
    with open_dir(where):
        pass
    return where


@contextlib.contextmanager
def open_dir(where: Path) -> Iterator[int]:
    """`where` opened as a directory, not through a symlink, and checked to be this user's
    and closed to everyone else (another user could have made it to catch our prompts)."""
    try:
        fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _unsafe(where, exc.strerror or "cannot open it") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise _unsafe(where, f"owned by user {info.st_uid}")
        if info.st_mode & 0o077:
            raise _unsafe(where, f"mode {stat.S_IMODE(info.st_mode):o}, open to others")
        yield fd
    finally:
        os.close(fd)


def _unsafe(where: Path, why: str) -> HostingUnavailable:
    return HostingUnavailable(
        f"{where} is not a private directory of this user ({why}; a symlink, another owner, "
        "or open to others): a model host will not put its socket there",
        "remove it (or `chmod 700` it if it is yours), or set model.host = false",
    )


def open_private(folder: Path, name: str, flags: int, *, create: bool = True) -> int:
    """The regular file `name` in `folder`, opened through the directory's descriptor with
    O_NOFOLLOW (a symlink planted there is refused, never written through); owner-only if
    new. FileNotFoundError when it is missing and `create` is off."""
    flags |= os.O_CREAT if create else 0
    with open_dir(folder) as dir_fd:
        try:
            return open_in(dir_fd, name, flags, shown=folder / name)
        except LinkRefused as exc:
            raise _unsafe(folder / name, exc.message.split(": ", 1)[-1].split(";")[0]) from None


def try_lock(fd: int) -> bool:
    """Take the host lock on `fd` without waiting; False when a live process holds it."""
    import fcntl  # POSIX only, as hosting is (`hosting_supported`)

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_pid(fd: int) -> None:
    """The lock holder says who it is, so a host that does not answer can still be stopped."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def lock_holder(folder: Path, name: str) -> int | None:
    """The pid of the live host holding the lock `name` (0 when it has not said yet); None
    when no process holds it. Creates nothing."""
    try:
        fd = open_private(folder, name, os.O_RDONLY, create=False)
    except FileNotFoundError:
        return None
    try:
        if try_lock(fd):
            return None  # taken at once: nobody holds it (and closing gives it back)
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        return int(text) if text.isdigit() else 0
    finally:
        os.close(fd)


def is_host_process(pid: int) -> bool:
    """`pid` runs a model host (where /proc can say; elsewhere the lock's word is taken)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    return b"assistant.llm.host" in cmdline


def host_limit(name: str, default: float) -> float:
    """One of the host's limits, `ASSIST_HOST_<name>` in the environment (tests shorten them);
    the default where it is unset or not a positive number."""
    try:
        value = float(os.environ.get(f"ASSIST_HOST_{name}", ""))
    except ValueError:
        return default
    return value if 0 < value < 1e9 else default


def open_log(folder: Path, name: str) -> int:
    """The host's log, for appending; emptied first if a past host left it past its cap."""
    fd = open_private(folder, name, os.O_WRONLY | os.O_APPEND)
    if os.fstat(fd).st_size > host_limit("LOG_BYTES", 1 << 20):
        os.ftruncate(fd, 0)
    return fd


class CappedLog(logging.StreamHandler[TextIO]):
    """Logs to the host's log file (its stderr), emptied whenever it reaches `cap` bytes: a
    client sending junk all day cannot fill the disk."""

    def __init__(self, stream: TextIO, cap: int) -> None:
        super().__init__(stream)
        self.cap = cap

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError, ValueError):  # not a file (a terminal): no cap
            self.stream.flush()
            fd = self.stream.fileno()
            if os.fstat(fd).st_size >= self.cap and stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, 0)
                self.stream.write(f"(the log reached {self.cap} bytes and was emptied)\n")
        super().emit(record)
