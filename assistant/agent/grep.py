"""The agent's grep, run in a child process that the Stop key kills.

A regular expression cannot be interrupted inside the process: a match runs in C, holding the
thread, until it ends. So the matching (the `regex` engine, which answers `(a+)+$` at once where
Python's `re` ran over 30 s) runs in a child Python fed the files through a pipe; Stop or the
time limit kills it at once. The child also caps its memory: `regex` unrolls counted repeats when
it compiles, and `(?:a{1000}){30000}` would take gigabytes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from assistant.agent.confine import ToolError

GREP_SECONDS = 10.0
"""The most one grep may take: a pattern like `(a|aa)+c` backtracks for ever in any engine."""
MEMORY_BYTES = 1 << 30
"""Address space the child may use (where the platform can limit it)."""
_POLL_S = 0.01

# In the child: the first line is {pattern, limit, seconds}, then one [path, text] a line; each
# output line is a match (a string) or how it ended ({"end": ...}). All JSON, so all ASCII.
_CHILD = r"""
import json, sys, time
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
except (ImportError, ValueError, OSError):
    pass
import regex

def say(item):
    sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()

head = json.loads(sys.stdin.readline())
deadline = time.monotonic() + head["seconds"]
try:
    compiled = regex.compile(head["pattern"])
except (regex.error, OverflowError, RecursionError) as exc:
    say({"end": "error", "why": str(exc)})
    sys.exit(0)
except MemoryError:
    say({"end": "error", "why": "it needs too much memory (make counted repeats smaller)"})
    sys.exit(0)
size = 0
try:
    for raw in sys.stdin:
        path, text = json.loads(raw)
        for n, line in enumerate(text.splitlines(), 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not compiled.search(line, timeout=left):
                continue
            found = f"{path}:{n}: {line.strip()[:200]}"
            say(found)
            size += len(found) + 1
            if size > head["limit"]:
                say({"end": "limit"})
                sys.exit(0)
except TimeoutError:
    say({"end": "timeout"})
    sys.exit(0)
except MemoryError:
    say({"end": "error", "why": "it needs too much memory"})
    sys.exit(0)
say({"end": "done"})
""".replace("MEMORY", str(MEMORY_BYTES))


def bounded_grep(
    pattern: str,
    files: Iterable[tuple[str, str]],
    *,
    limit: int,
    cancel: threading.Event,
    seconds: float = GREP_SECONDS,
) -> list[str]:
    """`path:line: text` for each matching line, stopping at `limit` characters of output, at
    the Stop key (within a few hundredths of a second, whatever the pattern), or after
    `seconds`. `files` is read lazily, on another thread, so reading is stopped too."""
    if cancel.is_set():
        return ["[stopped]"]
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    found: list[Any] = []
    failed: list[ToolError] = []
    head = {"pattern": pattern, "limit": limit, "seconds": seconds}
    threading.Thread(target=_feed, args=(proc, head, files, cancel, failed), daemon=True,
                     name="assist-grep-feed").start()  # fmt: skip
    reader = threading.Thread(target=_read, args=(proc, found), daemon=True,
                              name="assist-grep-read")  # fmt: skip
    reader.start()
    # The child stops itself at `seconds`; this is for one that cannot (starved, swapping).
    hard = time.monotonic() + seconds + 2.0
    try:
        while reader.is_alive():
            reader.join(_POLL_S)
            if cancel.is_set():
                return [*_matches(found), "[stopped]"]
            if time.monotonic() > hard:
                return [*_matches(found), _late(seconds)]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(1.0)  # at the end of its pipe now
        if proc.stdout is not None:
            proc.stdout.close()
    if failed:
        raise failed[0]
    end = found[-1] if found and isinstance(found[-1], dict) else {"end": "crashed"}
    if end["end"] == "error":
        raise ToolError(f"bad regular expression: {end.get('why')}")
    if end["end"] == "timeout":
        return [*_matches(found), _late(seconds)]
    if end["end"] == "crashed":
        raise ToolError(f"grep failed (its process ended with status {proc.returncode})")
    return _matches(found)


def _late(seconds: float) -> str:
    return f"[grep stopped after {seconds:g} s: simplify the pattern]"


def _matches(found: list[Any]) -> list[str]:
    return [item for item in list(found) if isinstance(item, str)]


def _feed(
    proc: subprocess.Popen[bytes],
    head: dict[str, Any],
    files: Iterable[tuple[str, str]],
    cancel: threading.Event,
    failed: list[ToolError],
) -> None:
    """Writes the files to the child, one JSON line each, until they end, Stop, or the child
    does (it has enough matches, ran out of time, or was killed)."""
    pipe = proc.stdin
    assert pipe is not None
    try:
        pipe.write((json.dumps(head) + "\n").encode())
        for path, text in files:
            if cancel.is_set():
                break
            pipe.write((json.dumps([path, text]) + "\n").encode())
    except ToolError as exc:  # the place to search is gone
        failed.append(exc)  # before the pipe closes: the caller reads it once the child ends
    except OSError:  # the child ended first: a broken pipe
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _read(proc: subprocess.Popen[bytes], found: list[Any]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        try:
            found.append(json.loads(raw))
        except ValueError:
            break
