"""Saved conversations: one JSON file per conversation in `.assist/chat/`, written atomically.

A front-end lists them (`summaries`), resumes one by id, or the latest; a file that cannot be read
is reported with its name and leaves the others usable.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.chat.citations import Citation, Grounding, Source
from assistant.errors import AssistError
from assistant.repo.atomic import write_atomic
from assistant.repo.own_files import PRIVATE_FILE, LinkRefused, private_dir, write_new

HISTORY_VERSION = 2
"""Written into every file; a file from a newer assist is refused rather than misread.
2: turns carry their `grounding`, citations the text they were `written` as."""


@dataclass
class Turn:
    question: str
    answer: str
    sources: list[Source]
    citations: list[Citation]
    model: str = ""
    stopped_by: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    tokens_per_second: float = 0.0
    created: float = field(default_factory=time.time)
    grounding: Grounding | None = None
    """None for a turn saved before answers were checked."""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.grounding is not None:
            data["grounding"].update(
                grounded=self.grounding.grounded, verdict=self.grounding.describe()
            )
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Turn:
        sources = [Source(**s) for s in data.get("sources", [])]
        citations = [Citation(**c) for c in data.get("citations", [])]
        found = data.get("grounding")
        grounding = Grounding(found["valid"], found["invalid"], found["unknown"]) if found else None
        skip = ("sources", "citations", "grounding")
        fields_ = {k: v for k, v in data.items() if k not in skip}
        return cls(sources=sources, citations=citations, grounding=grounding, **fields_)


@dataclass(frozen=True)
class Summary:
    """One saved conversation, for a history list."""

    id: str
    turns: int
    first_question: str
    modified: float
    readable: bool = True


class History:
    """The saved conversations of one repository (`<index dir>/chat/`)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.folder = index_dir / "chat"

    def path(self, session_id: str) -> Path:
        if not re.fullmatch(r"[\w-]+", session_id):
            raise AssistError(f"{session_id!r} is not a conversation id", "see .assist/chat/")
        return self.folder / f"{session_id}.json"

    def files(self) -> list[Path]:
        """Saved conversations, newest last."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))

    def summaries(self) -> list[Summary]:
        """Every saved conversation, newest first; unreadable ones are listed as such."""
        out = []
        for path in reversed(self.files()):
            modified = path.stat().st_mtime
            try:
                turns = self.load(path.stem)
            except AssistError:
                out.append(Summary(path.stem, 0, "(unreadable)", modified, readable=False))
                continue
            first = turns[0].question if turns else ""
            out.append(Summary(path.stem, len(turns), first, modified))
        return out

    def latest(self) -> str | None:
        files = self.files()
        return files[-1].stem if files else None

    def load(self, session_id: str) -> list[Turn]:
        path = self.path(session_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            version = data.get("version", 1)
            if not isinstance(version, int) or version > HISTORY_VERSION:
                raise AssistError(
                    f"{path}: written by a newer assist (format {version})",
                    "upgrade assist to resume it; other conversations are unaffected",
                )
            return [Turn.from_json(t) for t in data["turns"]]
        except FileNotFoundError:
            raise AssistError(
                f"no saved conversation {session_id!r}", "omit the id to resume the latest one"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AssistError(
                f"{path}: the saved conversation cannot be read ({exc.__class__.__name__})",
                "delete the file to start over; other conversations are unaffected",
            ) from None

    def save(self, session_id: str, root: Path, turns: list[Turn]) -> None:
        """Write the conversation atomically, never half a file."""
        try:
            private_dir(self.index_dir)
            write_new(self.index_dir / ".gitignore", "*\n")  # out of `git status`, like the index
            private_dir(self.folder)  # conversations hold code: the user's eyes only
            payload = {
                "version": HISTORY_VERSION,
                "id": session_id,
                "root": str(root),
                "turns": [t.as_json() for t in turns],
            }
            data = json.dumps(payload, indent=1).encode("utf-8")
            write_atomic(self.path(session_id), data, mode=PRIVATE_FILE)
        except LinkRefused as exc:
            raise AssistError(
                f"cannot save the conversation: {exc.message}", f"remove or fix {self.folder}/"
            ) from None
        except OSError as exc:
            raise AssistError(
                f"cannot save the conversation: {exc.strerror or exc}", "check .assist/chat/"
            ) from exc

    def delete(self, session_id: str) -> None:
        try:
            self.path(session_id).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise AssistError(
                f"cannot delete conversation {session_id}: {exc.strerror}", "check .assist/chat/"
            ) from None


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.urandom(2).hex()}"
