"""Where the TUI logs while it owns the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from assistant.repo.own_files import open_own, private_dir
from assistant.repo.roots import find_root, index_dir_for, state_home


def log_file_for(path: str | None) -> Path:
    """Where the TUI logs: the repository's index folder (`.assist/tui.log`), or the XDG state
    dir outside a repo."""
    root = find_root(Path(path).expanduser() if path else Path.cwd())
    if root is not None:
        return index_dir_for(root) / "tui.log"
    return state_home() / "tui.log"


@contextlib.contextmanager
def logging_to_file(log_path: Path) -> Iterator[Path]:
    """For the app's lifetime, root logging goes to a file: a handler holding the terminal's
    stderr (`logging.basicConfig` in the CLI) would paint over the screen."""
    root = logging.getLogger()
    streams = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    private_dir(log_path.parent)
    fd = open_own(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # never through a link
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for h in streams:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield log_path
    finally:
        root.removeHandler(handler)
        handler.close()
        handler.stream.close()
        for h in streams:
            root.addHandler(h)
