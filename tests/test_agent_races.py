"""Another local process swaps a directory for a symlink to outside the workspace, over and over,
while the agent reads and writes there: the check (confine) and the use (the open) are separate
moments, so only access that follows no link can hold. 1,000 reads and 1,000 writes race it;
errors are fine, an escape is not."""

from __future__ import annotations

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
            pass


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
        for i in range(ROUNDS):
            try:
                call = ToolCall("read_file", {"path": "d/f.txt", "start": 0, "end": 0})
                out = tools.prepare(call).run(stop)
                assert "OUTSIDE" not in out
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
    # How many got through depends on the scheduler (reported, not asserted); none escaped.
    print(f"{reads} reads and {writes} writes done, {refused} refused, 0 escapes")
