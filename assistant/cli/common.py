"""What every command shares: the settings, the workspace, a progress line, the model flag."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.index.progress import Progress
    from assistant.workspace import Workspace


def settings_for(args: argparse.Namespace) -> Settings:
    from assistant.config import load_settings
    from assistant.workspace import find_root

    repo = getattr(args, "repo", None)
    root = Path(repo).resolve() if repo else find_root(Path.cwd())
    overrides = {"model": {"path": getattr(args, "model", None)}}
    return load_settings(root, overrides=overrides)


def workspace_for(
    args: argparse.Namespace, path: str | None, overrides: dict[str, dict[str, Any]] | None = None
) -> Workspace:
    """The workspace at `path`, with the command line's settings (`--model`, and `overrides`)."""
    from assistant.workspace import Workspace

    return Workspace.open(
        path, overrides={"model": {"path": getattr(args, "model", None)}, **(overrides or {})}
    )


class ProgressLine:
    """One self-rewriting progress line on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.phase = ""

    def note(self, text: str) -> None:
        """A line of its own between progress updates (a phase that finished)."""
        sys.stderr.write(("\r\033[K" if self.tty else "") + text + "\n")
        sys.stderr.flush()

    def show(self, item: Progress) -> None:
        self.text(item.phase, item.describe(), item.done, item.total)

    def text(self, phase: str, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        changed = phase != self.phase
        if not changed and now - self.last < (0.1 if self.tty else 5.0) and done != total:
            return
        self.last, self.phase = now, phase
        if total:
            width = 24
            filled = int(width * done / total)
            text = f"[{'#' * filled}{'-' * (width - filled)}] {label}"
        else:
            text = label
        if self.tty:
            sys.stderr.write("\r\033[K" + text + ("\n" if done == total and total else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


class StatusLine:
    """What the model is doing, on stderr, rewritten in place, on a terminal only (a pipe or a
    file gets only the answer)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


def add_model_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PATH", help="GGUF file to use (overrides config)")
    p.add_argument("--repo", metavar="PATH", help="repository (default: the one around cwd)")
