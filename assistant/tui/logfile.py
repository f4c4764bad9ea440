"""Where the TUI logs while it owns the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from assistant.workspace import find_root


def log_file_for(path: str | None) -> Path:
    """Where the TUI logs: `<repo>/.assist/tui.log`, or the XDG state dir outside a repo."""
    root = find_root(Path(path).expanduser() if path else Path.cwd())
    if root is not None:
        return root / ".assist" / "tui.log"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "assist" / "tui.log"


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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for h in streams:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield log_path
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in streams:
            root.addHandler(h)
