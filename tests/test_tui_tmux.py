"""`assist` in a real terminal: tmux runs it, types into it, and reads the screen back.

This is what a person sees, through the installed `assist` command: the first index built on
start, a typed question answered by a tiny real model, the sources listed and the answer marked
not grounded, F7 then 1 opening a source, F6 the saved conversations, and Ctrl+Q quitting.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_chat import FILES, make_repo
from tiny_gguf import CHATML


@pytest.fixture(autouse=True)
def tmux_is_installed() -> None:
    assert shutil.which("tmux"), (
        "these tests drive the real TUI in tmux: install it (apt-get install tmux)"
    )


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        # COLUMNS and LINES (pytest may set them) would override the pane's real size.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20, env=env
        )
        return out.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "assist")

    def wait_for(self, cond: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if cond(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed what was expected:\n{screen}")


def test_assist_in_tmux(
    tmp_path: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    gguf = make_gguf(
        family="qwen", metadata=True, chat_template=CHATML, favorite="a", context_length=2048
    )
    # More than 8 files: the first index parses in a process pool (its resource tracker must
    # start before Textual captures stderr).
    extra = {f"pkg/mod{i}.py": f"def helper_{i}(x):\n    return x * {i}\n" for i in range(20)}
    repo = make_repo(tmp_path / "repo", {**FILES, **extra})
    env = {
        **isolated_env,
        "PATH": os.environ["PATH"],
        "TERM": "xterm-256color",
        "ASSIST_MODEL": str(gguf),
        "ASSIST_INDEX_VECTORS": "0",
        "ASSIST_CHAT_MAX_TOKENS": "8",
    }
    tmux = Tmux(f"assist-test-{os.getpid()}")
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g default-size 110x32\n")
    installed = Path(sys.executable).with_name("assist")  # the command `make setup` installs
    assert installed.exists(), f"{installed}: run `make setup`"
    tmux("-f", str(conf), "new-session", "-d", "-s", "assist", "-x", "110", "-y", "32",
         "-c", str(repo), *flags, str(installed))  # fmt: skip
    try:
        # No index yet: it is built on start, and the status bar counts the files.
        # (The "indexed" notification covers the status bar's right end for a few seconds.)
        tmux.wait_for(
            lambda s: "23 files" in s and "watcher on" in s and "loads at first question" in s
        )
        assert "Ask about the code" in tmux.screen()
        tmux("send-keys", "-t", "assist", "where is upload_file?", "Enter")
        screen = tmux.wait_for(lambda s: "[1] uploads/client.py:9-12" in s and "tok/s" in s)
        assert "› where is upload_file?" in screen
        assert "Sources sent to the model" in screen and "tok/s" in screen
        # The tiny model writes "aaaa": no citation, and the answer says so.
        assert "no citations: not grounded" in screen
        assert "Traceback" not in screen
        tmux("send-keys", "-t", "assist", "F7", "1")  # the sources list, then source [1]
        tmux.wait_for(lambda s: "uploads/client.py:9" in s and "(Esc to close)" in s)
        tmux("send-keys", "-t", "assist", "Escape")
        tmux.wait_for(lambda s: "(Esc to close)" not in s)
        tmux("send-keys", "-t", "assist", "F6")  # the saved conversation, browsable
        tmux.wait_for(lambda s: "Saved conversations" in s and "where is upload_file?" in s)
        tmux("send-keys", "-t", "assist", "Escape")
        tmux.wait_for(lambda s: "Saved conversations" not in s)
        tmux("send-keys", "-t", "assist", "C-q")
        deadline = time.monotonic() + 20
        while "assist" in tmux("list-sessions", "-F", "#{session_name}"):
            assert time.monotonic() < deadline, "Ctrl+Q did not quit"
            time.sleep(0.2)
    finally:
        tmux("kill-server")
    assert list((repo / ".assist" / "chat").glob("*.json"))  # the conversation was saved
