"""Another local process swaps a directory for a symlink to outside the workspace, over and over,
while the agent reads and writes there: the check (confine) and the use (the open) are separate
moments, so only access that follows no link can hold. At least 1,000 reads and 1,000 writes
race it; refusals are fine (and must happen: the race is real), an escape is not."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path

from assistant.agent.calls import ToolCall
from assistant.agent.confine import ToolError
from assistant.agent.toolbox import Toolbox
from assistant.workspace import Workspace

ROUNDS = 1000
MAX_ROUNDS = 10 * ROUNDS  # a loaded machine may need more to meet both states


def swap_forever(root: Path, outside: Path, stop: threading.Event) -> None:
    """`d` is the real folder, then a link to `outside`, then the real folder again…"""
    real, link = root / "d_real", root / "d"
    while not stop.is_set():
        try:
            os.rename(link, real)
            os.symlink(outside, link)
            time.sleep(0.0002)  # each state lasts a moment, so both are met by the agent
            os.unlink(link)
            os.rename(real, link)
            time.sleep(0.0002)
        except OSError:
            with contextlib.suppress(OSError):
                settle(real, link)


def settle(real: Path, link: Path) -> None:
    """create_file makes missing folders: while the real `d` was set aside, the agent may have
    made a new `d`. Its files join the real folder, which takes its place again, so the swap
    goes on (without this the race stops, and with it every read)."""
    if not real.is_dir():
        return
    if link.is_symlink():
        link.unlink()
    elif link.is_dir():
        for entry in link.iterdir():
            os.rename(entry, real / entry.name)
        link.rmdir()
    os.rename(real, link)


def test_a_symlink_swapped_in_between_check_and_use_never_escapes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "d").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "d" / "f.txt").write_text("inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("OUTSIDE SECRET\n")
    tools = Toolbox(Workspace.open(root), output_limit=10_000, command_timeout=5)
    stop = threading.Event()
    racer = threading.Thread(target=swap_forever, args=(root, outside, stop), daemon=True)
    racer.start()
    reads = writes = refused = 0
    try:
        for i in range(MAX_ROUNDS):
            if i >= ROUNDS and reads and writes and refused:
                break
            try:
                call = ToolCall("read_file", {"path": "d/f.txt", "start": 0, "end": 0})
                out = tools.prepare(call).run(stop)
                assert "OUTSIDE" not in out and "inside" in out, out
                reads += 1
            except ToolError:
                refused += 1
            except OSError:
                refused += 1  # the folder was being renamed at that moment
            try:
                call = ToolCall("create_file", {"path": f"d/new_{i}.txt", "content": "x\n"})
                tools.prepare(call).run(stop)
                writes += 1
            except (ToolError, OSError):
                refused += 1
    finally:
        stop.set()
        racer.join(10)
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]  # nothing written outside
    assert (outside / "f.txt").read_text() == "OUTSIDE SECRET\n"
    # How many got through depends on the scheduler; each kind must have happened, or the race
    # (or the agent) was not exercised.
    assert reads > 0 and writes > 0, (reads, writes)
    assert refused > 0, "no access was refused: the swap never met the agent"
    # Every write that reported success is in the workspace (in whichever real folder `d` was).
    made = [n for _, _, files in os.walk(root) for n in files if n.startswith("new_")]
    assert len(made) == writes, (len(made), writes)
