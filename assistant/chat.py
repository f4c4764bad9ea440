"""Grounded chat: retrieve code for a question, pack it into a budget, stream a cited answer.

One question goes: hybrid search plus the definitions the question names → every path through
the privacy rules → as many chunks as fit the token budget → messages from `prompts/chat_*` →
the model's stream (with a cancel event) → `path:line` citations mapped back to the chunks that
were sent. Conversations are kept per repository in `.assist/chat/<id>.json` so they can be
resumed; front-ends (CLI, TUI) only show what this module returns.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant import prompts
from assistant.chat_format import Message
from assistant.errors import AssistError
from assistant.identifiers import identifier_candidates
from assistant.languages import language_for_path

if TYPE_CHECKING:
    from assistant.model import Model
    from assistant.store import ChunkRow
    from assistant.workspace import Workspace

CHARS_PER_TOKEN = 3.5
"""Estimate for models without a local tokenizer (remote ones); code averages 3–4 a token."""
PROMPT_MARGIN = 32
"""Tokens kept free for the chat template's own markup around the messages."""
HISTORY_VERSION = 1

_CITATION = re.compile(
    r"(?<![\w./-])`?((?:[\w.-]+/)*[\w-][\w.-]*\.\w+):(\d+)(?:[-–](\d+))?`?",
)
"""`path/to/file.ext:12` or `file.ext:12-20`, optionally in backticks."""


@dataclass(frozen=True)
class Source:
    """A chunk of code that went into the prompt, exactly as it was sent."""

    n: int
    """1-based number shown to the model as `[n]`."""
    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    chunk_id: int
    reason: str
    """`named` (the question names this symbol) or `search` (hybrid search ranked it)."""
    tokens: int
    text: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start_line}"


@dataclass(frozen=True)
class Citation:
    """A `path:line` in an answer; `source` is the sent chunk that holds that line, if any."""

    path: str
    line: int
    end_line: int
    source: int | None
    """`Source.n` of the chunk the citation points into; None when it cites unsent code."""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


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

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Turn:
        sources = [Source(**s) for s in data.get("sources", [])]
        citations = [Citation(**c) for c in data.get("citations", [])]
        fields_ = {k: v for k, v in data.items() if k not in ("sources", "citations")}
        return cls(sources=sources, citations=citations, **fields_)


@dataclass(frozen=True)
class Prepared:
    """A question ready to send: the sources chosen and the exact messages."""

    question: str
    sources: list[Source]
    messages: list[Message]
    budget: int
    """Tokens the sources were allowed to use."""


def parse_citations(answer: str) -> list[tuple[str, int, int]]:
    """(path, line, end line) for every `path:line` in `answer`, first occurrence order."""
    out: list[tuple[str, int, int]] = []
    for m in _CITATION.finditer(answer):
        path = m.group(1).removeprefix("./")
        line = int(m.group(2))
        end = int(m.group(3)) if m.group(3) else line
        item = (path, line, max(line, end))
        if line > 0 and item not in out:
            out.append(item)
    return out


def map_citations(answer: str, sources: list[Source]) -> list[Citation]:
    """Citations in `answer`, each tied to the sent chunk that contains its line."""
    out: list[Citation] = []
    for path, line, end in parse_citations(answer):
        holder = next(
            (s.n for s in sources if s.path == path and s.start_line <= line <= s.end_line),
            None,
        )
        out.append(Citation(path, line, end, holder))
    return out


def question_names(question: str) -> set[str]:
    """Names the question mentions that may be definitions: code-like words, and the last
    part of dotted names (`Session.get` → `get` is what the store indexes)."""
    names = set(identifier_candidates(question))
    names |= {n.rsplit(".", 1)[-1] for n in names if "." in n}
    names |= {w.lower() for w in re.findall(r"`([A-Za-z_][\w.]*)`", question)}
    names |= {n.rsplit(".", 1)[-1] for n in names if "." in n}
    return {n for n in names if len(n) > 1}


class ChatSession:
    """One conversation in one repository; `ask` is the whole use case."""

    def __init__(self, ws: Workspace, session_id: str | None = None) -> None:
        self.ws = ws
        self.id = session_id or _new_id()
        self.turns: list[Turn] = []

    # -- history ---------------------------------------------------------------------------

    @staticmethod
    def history_dir(ws: Workspace) -> Path:
        return ws.index_dir / "chat"

    @property
    def path(self) -> Path:
        return self.history_dir(self.ws) / f"{self.id}.json"

    @classmethod
    def list_sessions(cls, ws: Workspace) -> list[Path]:
        """Saved conversations, newest last."""
        folder = cls.history_dir(ws)
        if not folder.is_dir():
            return []
        return sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))

    @classmethod
    def resume(cls, ws: Workspace, session_id: str | None = None) -> ChatSession:
        """The named conversation, or the latest one; a new one when there is none."""
        if session_id is None:
            saved = cls.list_sessions(ws)
            if not saved:
                return cls(ws)
            path = saved[-1]
        else:
            if not re.fullmatch(r"[\w-]+", session_id):
                raise AssistError(f"{session_id!r} is not a conversation id", "see .assist/chat/")
            path = cls.history_dir(ws) / f"{session_id}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            turns = [Turn.from_json(t) for t in data["turns"]]
        except FileNotFoundError:
            raise AssistError(
                f"no saved conversation {path.stem!r}", "omit the id to resume the latest one"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AssistError(
                f"{path}: the saved conversation cannot be read ({exc.__class__.__name__})",
                "delete the file to start over; other conversations are unaffected",
            ) from None
        session = cls(ws, path.stem)
        session.turns = turns
        return session

    def save(self) -> None:
        """Write the conversation atomically (temp file, fsync, rename), never half a file."""
        try:
            self._write()
        except OSError as exc:
            raise AssistError(
                f"cannot save the conversation: {exc.strerror or exc}", "check .assist/chat/"
            ) from exc

    def _write(self) -> None:
        folder = self.history_dir(self.ws)
        folder.mkdir(parents=True, exist_ok=True)
        ignore = self.ws.index_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")  # history stays out of `git status`, like the index
        payload = {
            "version": HISTORY_VERSION,
            "id": self.id,
            "root": str(self.ws.root),
            "turns": [t.as_json() for t in self.turns],
        }
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- retrieval and packing -------------------------------------------------------------

    def retrieve(self, question: str) -> list[tuple[ChunkRow, str]]:
        """Candidate chunks, best first: the definitions the question names, then search hits.

        Every path passes `ws.rules` here; search applies the same check to its own hits.
        """
        settings = self.ws.settings.chat
        store = self.ws.store
        named_ids = store.chunks_named(question_names(question), limit=settings.k)
        hits = self.ws.search(question, k=settings.k, mode=None)
        ids = list(dict.fromkeys([*named_ids, *(h.chunk_id for h in hits)]))
        rows = store.chunks(ids)
        named = set(named_ids)
        out: list[tuple[ChunkRow, str]] = []
        for cid in ids:
            row = rows.get(cid)
            if row is None or not self.ws.rules.allows(row.path):
                continue
            out.append((row, "named" if cid in named else "search"))
        return out

    def pack(
        self, candidates: list[tuple[ChunkRow, str]], budget: int, count: Callable[[str], int]
    ) -> list[Source]:
        """As many candidates as fit `budget` tokens, in order; a first one that is too long
        alone is cut to its first lines rather than leaving the prompt with no code."""
        sources: list[Source] = []
        used = 0
        for row, reason in candidates:
            text = row.text
            block = self._block(len(sources) + 1, row, text)
            tokens = count(block)
            if used + tokens > budget:
                if sources or budget <= 0:
                    continue
                lines = text.split("\n")
                while lines and used + tokens > budget:
                    lines = lines[: max(0, len(lines) * 3 // 4)]
                    text = "\n".join(lines)
                    block = self._block(1, row, text)
                    tokens = count(block)
                if not lines:
                    continue
            end = row.start_line + text.count("\n")
            sources.append(
                Source(
                    len(sources) + 1,
                    row.path,
                    row.qualified_name,
                    row.kind,
                    row.start_line,
                    min(end, row.end_line),
                    row.id,
                    reason,
                    tokens,
                    text,
                )
            )
            used += tokens
        return sources

    @staticmethod
    def _block(n: int, row: ChunkRow, text: str) -> str:
        end = min(row.start_line + text.count("\n"), row.end_line)
        return source_block(
            Source(
                n, row.path, row.qualified_name, row.kind, row.start_line, end, row.id, "", 0, text
            )
        )

    def prepare(self, question: str, model: Model | None = None) -> Prepared:
        """Choose the sources and build the messages for `question`."""
        question = question.strip()
        if not question:
            raise AssistError("the question is empty", "type a question about the code")
        model = model or self.ws.model
        settings = self.ws.settings.chat
        count = token_counter(model)
        system = prompts.render("chat_system")
        history: list[Message] = []
        for turn in self.turns[-settings.history_turns :] if settings.history_turns else []:
            history += [Message("user", turn.question), Message("assistant", turn.answer)]
        bare = prompts.render("chat_user", context="", question=question)
        fixed = sum(count(m.content) for m in [Message("system", system), *history]) + count(bare)
        window = context_window(model)
        budget = settings.context_tokens
        if window is not None:
            room = window - settings.max_tokens - fixed - PROMPT_MARGIN
            # Old turns go first when the window is tight: the question and code matter more.
            while room < budget // 4 and history:
                history = history[2:]
                fixed = count(system) + sum(count(m.content) for m in history) + count(bare)
                room = window - settings.max_tokens - fixed - PROMPT_MARGIN
            if room < 0:
                raise AssistError(
                    f"the question and instructions alone do not fit the model's {window}-token"
                    " context",
                    "raise model.n_ctx, lower chat.max_tokens, or ask a shorter question",
                )
            budget = min(budget, room)
        sources = self.pack(self.retrieve(question), budget, count)
        context = "".join(source_block(s) for s in sources) or prompts.render("chat_no_context")
        user = prompts.render("chat_user", context=context, question=question)
        messages = [Message("system", system), *history, Message("user", user)]
        return Prepared(question, sources, messages, budget)

    # -- answering -------------------------------------------------------------------------

    def stream(
        self, prepared: Prepared, model: Model | None = None, cancel: threading.Event | None = None
    ) -> Iterator[str]:
        model = model or self.ws.model
        return model.chat(
            prepared.messages, max_tokens=self.ws.settings.chat.max_tokens, cancel=cancel
        )

    def finish(self, prepared: Prepared, answer: str, model: Model | None = None) -> Turn:
        """Record the answer with its citations and save the conversation."""
        model = model or self.ws.model
        stats = model.last_stats
        turn = Turn(
            prepared.question,
            answer,
            prepared.sources,
            map_citations(answer, prepared.sources),
            model=model.name,
            stopped_by=stats.stopped_by,
            prompt_tokens=stats.prompt_tokens,
            generated_tokens=stats.generated_tokens,
            tokens_per_second=round(stats.tokens_per_second, 2),
        )
        self.turns.append(turn)
        self.save()
        return turn

    def ask(
        self,
        question: str,
        *,
        cancel: threading.Event | None = None,
        on_sources: Callable[[list[Source]], None] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Turn:
        """The whole round: prepare, stream (each piece to `on_text`), finish."""
        model = self.ws.model
        prepared = self.prepare(question, model)
        if on_sources is not None:
            on_sources(prepared.sources)
        pieces: list[str] = []
        for piece in self.stream(prepared, model, cancel):
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)
        return self.finish(prepared, "".join(pieces), model)


def source_block(s: Source) -> str:
    """One chunk as the model sees it: number, location, and the code in a fence."""
    return prompts.render(
        "chat_source",
        n=str(s.n),
        path=s.path,
        start=str(s.start_line),
        end=str(s.end_line),
        kind=s.kind,
        symbol=s.name,
        language=language_for_path(s.path) or "",
        code=s.text,
    )


def context_window(model: Model) -> int | None:
    """The local model's context size in tokens; None when unknown (a remote server)."""
    from assistant.model import LocalModel

    if isinstance(model, LocalModel):
        return int(model.llama.n_ctx())
    return None


def token_counter(model: Model) -> Callable[[str], int]:
    """Exact counts with a local tokenizer, an estimate for remote models."""
    from assistant.model import LocalModel

    if isinstance(model, LocalModel):
        return lambda text: len(model.tokenize(text))
    return lambda text: int(len(text) / CHARS_PER_TOKEN) + 1


def read_preview(ws: Workspace, path: str) -> str:
    """The text of a repository file for a preview, after the privacy check."""
    rel = ws.rules.check(ws.root / path)
    full = ws.root / rel
    try:
        return full.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise AssistError(
            f"{rel}: no such file", "the citation may name a file that moved"
        ) from None
    except OSError as exc:
        raise AssistError(f"{rel}: cannot read: {exc.strerror}", "check its permissions") from None


def _new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.urandom(2).hex()}"
