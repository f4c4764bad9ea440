"""Prompt templates are files in `prompts/`, rendered with `string.Template`.

`$var` rather than `{var}` because code is full of braces. A missing variable is an error, never a
silently empty hole in a prompt. Every value is `Vetted` (repo/vetted.py), and so is the result:
raw file text cannot be rendered into a prompt.
"""

from __future__ import annotations

import string
import sys
from functools import cache
from pathlib import Path

from assistant.errors import AssistError
from assistant.repo.vetted import Vetted, fill


def prompts_dir() -> Path:
    """`prompts/` beside the package (editable install, source tree) or in the wheel's data."""
    candidates = [
        Path(__file__).resolve().parents[2] / "prompts",
        Path(sys.prefix) / "share" / "assist" / "prompts",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise AssistError("prompt templates not found", "reinstall assist: pip install -e .")


@cache
def _template(name: str) -> string.Template:
    path = prompts_dir() / f"{name}.txt"
    try:
        return string.Template(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssistError(f"no prompt template named {name!r}", f"expected {path}") from None


def template_names() -> list[str]:
    return sorted(p.stem for p in prompts_dir().glob("*.txt"))


def render(name: str, **values: Vetted) -> Vetted:
    try:
        return fill(_template(name), values)
    except KeyError as exc:
        raise AssistError(
            f"prompt {name!r} needs a value for ${exc.args[0]}", "this is a bug in assist"
        ) from None
