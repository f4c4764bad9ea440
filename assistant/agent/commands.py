"""Runs one approved shell command in the repository root, with a timeout and an output cap.

The command is the exact string the user approved, handed to `bash -c` unchanged: there is no
allowlist to parse around. It runs in its own process group, so a timeout (or the stop key) kills
everything it started, and its output is read as it comes so that a chatty command cannot fill
memory: the head and the tail are kept, the middle is counted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None
    """None when it was killed (timeout or cancel)."""
    output: str
    """stdout and stderr interleaved, capped at the limit (head and tail)."""
    omitted_bytes: int
    timed_out: bool
    cancelled: bool
    seconds: float

    def report(self) -> str:
        """The result as the model reads it."""
        if self.timed_out:
            status = f"killed after {self.seconds:.0f} s (timeout)"
        elif self.cancelled:
            status = "stopped by the user"
        else:
            status = f"exit code {self.exit_code}"
        note = f"\n[{self.omitted_bytes} bytes of output omitted]" if self.omitted_bytes else ""
        return f"{status}\n{self.output}{note}".rstrip() + "\n"


def shell() -> list[str]:
    found = shutil.which("bash")
    return [found, "-c"] if found else ["/bin/sh", "-c"]


def run_command(
    command: str,
    cwd: Path,
    *,
    timeout: float,
    limit: int,
    cancel: threading.Event | None = None,
) -> CommandResult:
    env = {**os.environ, "PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
    start = time.monotonic()
    proc = subprocess.Popen(
        [*shell(), command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    capture = _Capture(max(limit, 2) // 2)
    reader = threading.Thread(target=capture.read, args=(proc.stdout,), daemon=True)
    reader.start()
    timed_out = cancelled = False
    while True:
        try:
            proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                cancelled = True
            elif time.monotonic() - start > timeout:
                timed_out = True
            else:
                continue
            _kill_group(proc)
    # A background child that kept the pipe open would block the reader forever.
    reader.join(timeout=2)
    if reader.is_alive():
        _kill_group(proc)
        reader.join(timeout=2)
    return CommandResult(
        command=command,
        exit_code=None if (timed_out or cancelled) else proc.returncode,
        output=capture.text(),
        omitted_bytes=capture.omitted,
        timed_out=timed_out,
        cancelled=cancelled,
        seconds=time.monotonic() - start,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _Capture:
    def __init__(self, half: int) -> None:
        self.half = half
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.omitted = 0

    def read(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):  # whatever is there, not a full buffer
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail.append(chunk)
                self.tail_size += len(chunk)
                while self.tail_size - len(self.tail[0]) >= self.half:
                    self.omitted += len(self.tail[0])
                    self.tail_size -= len(self.tail.popleft())
        stream.close()

    def text(self) -> str:
        tail = b"".join(self.tail)
        if len(tail) > self.half:
            self.omitted += len(tail) - self.half
            tail = tail[-self.half :]
        head = self.head.decode("utf-8", "replace")
        if self.omitted:
            return head + "\n[…]\n" + tail.decode("utf-8", "replace")
        return head + tail.decode("utf-8", "replace")
