"""The atomic writer cleans up after itself, and tests/leftovers.py sees what it would leave."""

from __future__ import annotations

from pathlib import Path

import pytest
from leftovers import temp_files

from assistant.repo import atomic


def refuse(*args: object, **kwargs: object) -> None:
    raise OSError("refused")


def test_a_failed_rename_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "data.json"
    atomic.write_atomic(target, "{}")
    monkeypatch.setattr(atomic.os, "rename", refuse)
    with pytest.raises(OSError, match="refused"):
        atomic.write_atomic(target, "[]")
    assert target.read_text() == "{}"
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("how", ["write_atomic", "replacing"])
def test_leftovers_are_found_where_the_writer_makes_them(
    tmp_path: Path, monkeypatch, how: str
) -> None:
    """With its cleanup refused too, the writer leaves its temp file (hidden, in a subfolder):
    the helper the other tests rely on must list it."""
    target = tmp_path / "sub" / "data.json"
    target.parent.mkdir()
    monkeypatch.setattr(atomic.os, "rename", refuse)
    monkeypatch.setattr(atomic.os, "replace", refuse)
    monkeypatch.setattr(atomic.os, "unlink", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(OSError, match="refused"):
        if how == "write_atomic":
            atomic.write_atomic(target, "[]")
        else:
            with atomic.replacing(target) as tmp:
                tmp.write_text("[]")
    [left] = temp_files(tmp_path)
    assert left.parent == target.parent and left.name.startswith(".data.json.")
    assert left.read_text() == "[]"
