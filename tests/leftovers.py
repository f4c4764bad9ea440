"""What assist's atomic writer (assistant/repo/atomic.py) leaves behind when a write is cut
short: its temp files, `.<name>.<hex>.assist-tmp` beside the file being replaced."""

from __future__ import annotations

import os
from pathlib import Path

SUFFIX = ".assist-tmp"


def temp_files(folder: Path) -> list[Path]:
    """Every atomic-writer temp file under `folder`, hidden ones included (links not followed)."""
    return sorted(
        Path(top) / name for top, _, names in os.walk(folder) for name in names
        if name.endswith(SUFFIX)
    )  # fmt: skip
