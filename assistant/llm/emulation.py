"""Fill-in-the-middle for models without FIM tokens: a chat prompt that shows the hole, and the
trimming that cuts the answer down to what belongs in it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from assistant.llm import prompts
from assistant.llm.chat_templates import Message
from assistant.llm.fim import Hole, path_comment
from assistant.repo.vetted import EMPTY, Vetted

if TYPE_CHECKING:
    from assistant.llm.protocol import Model, Request

_OTHER_FILES = Vetted.label("Other files of the repository:\n\n")


def emulation_messages(hole: Hole) -> list[Message]:
    """The chat prompt that asks a model without FIM tokens to fill the hole.

    Repository context comes first, as path-comment blocks, so it stays a stable prompt prefix.
    """
    shown = EMPTY.joined(path_comment(c.path, c.text) for c in hole.context)
    return [
        Message("system", prompts.render("fim_emulation_system")),
        Message(
            "user",
            prompts.render(
                "fim_emulation_user",
                context=_OTHER_FILES + shown if shown else EMPTY,
                path=Vetted.label(hole.path or "untitled"),
                prefix=hole.before,
                suffix=hole.suffix,
            ),
        ),
    ]


def emulated_infill(model: Model, hole: Hole, request: Request | None = None) -> Iterator[str]:
    """Infill through `model.chat`; the whole answer is needed before it can be trimmed to the
    hole, so this yields once."""
    text = "".join(model.chat(emulation_messages(hole), request))
    trimmed = trim_emulated(text, hole.before, hole.suffix)
    if trimmed:
        yield trimmed


_FENCE = re.compile(r"^```[\w+-]*\n(.*?)(?:\n```.*)?$", re.S)


def trim_emulated(output: str, prefix: str, suffix: str) -> str:
    """Cut a chat model's answer down to the text that belongs in the hole.

    Chat models wrap code in fences, repeat the line before the cursor and run on into the
    suffix; each of those is removed here.
    """
    text = output.replace("\r\n", "\n")
    text = text.replace("<HOLE>", "").replace("<FILL>", "")
    m = _FENCE.match(text.strip("\n"))
    if m:
        text = m.group(1)
    # Drop lines of the prefix that the answer repeats (whole lines, ending at the cursor).
    for k in range(min(len(prefix), len(text)), 0, -1):
        starts_line = k == len(prefix) or prefix[-k - 1] == "\n"
        if starts_line and "\n" in text[:k] and prefix.endswith(text[:k]):
            text = text[k:]
            break
    # Drop a repeated copy of the current line's beginning.
    line_start = prefix.rsplit("\n", 1)[-1]
    if line_start and text.startswith(line_start):
        text = text[len(line_start) :]
    elif line_start.strip() and text.lstrip().startswith(line_start.strip()):
        text = text.lstrip()[len(line_start.strip()) :]
    # Stop where the answer starts repeating the suffix.
    first = next((ln.strip() for ln in suffix.splitlines() if ln.strip()), "")
    if first:
        cut = _find_line(text, first)
        if cut is not None:
            text = text[:cut]
    # At the end of a line, trailing blank space is noise; mid-line it may be meant.
    return text.rstrip() if not suffix or suffix.startswith("\n") else text.rstrip("\n")


def _find_line(text: str, line: str) -> int | None:
    pos = 0
    for piece in text.splitlines(keepends=True):
        if piece.strip() == line or (len(line) > 8 and piece.strip().startswith(line)):
            return pos
        pos += len(piece)
    idx = text.find(line) if len(line) > 8 else -1
    return idx if idx > 0 else None
