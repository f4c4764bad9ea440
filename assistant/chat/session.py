"""Grounded chat: retrieve code for a question, pack it into a budget, stream a cited answer.

One question goes: hybrid search plus the definitions the question names → every path through
the privacy rules → as many chunks as fit the token budget → messages from `prompts/chat_*` →
the model's stream (with a cancel event) → `path:line` citations mapped back to the chunks that
were sent. Conversations are kept per repository in `.assist/chat/<id>.json` so they can be
resumed; front-ends (CLI, TUI) only show what this module returns.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.chat.citations import Source, check, map_citations, source_block
from assistant.chat.history import History, Summary, Turn, new_id
from assistant.errors import AssistError
from assistant.index.identifiers import identifier_candidates
from assistant.llm import prompts
from assistant.llm.chat_templates import Message
from assistant.llm.protocol import Request
from assistant.repo.vetted import EMPTY, NEWLINE, Vetted

if TYPE_CHECKING:
    from assistant.index.store import ChunkRow
    from assistant.llm.protocol import Model, Progress
    from assistant.workspace import Workspace

PROMPT_MARGIN = 32
"""Tokens kept free for the chat template's own markup around the messages."""


@dataclass(frozen=True)
class Prepared:
    """A question ready to send: the sources chosen and the exact messages."""

    question: str
    sources: list[Source]
    messages: list[Message]
    budget: int
    """Tokens the sources were allowed to use."""


def question_names(question: str) -> set[str]:
    """Names the question mentions that may be definitions: code-like words, and the last
    part of dotted names (`Session.get` → `get` is what the store indexes)."""
    names = set(identifier_candidates(question))
    names |= {n.rsplit(".", 1)[-1] for n in names if "." in n}
    names |= {w.lower() for w in re.findall(r"`([A-Za-z_][\w.]*)`", question)}
    names |= {n.rsplit(".", 1)[-1] for n in names if "." in n}
    return {n for n in names if len(n) > 1}


_PIN = re.compile(r"(?<![\w@])@([\w][\w./-]*[\w])")


def pins(question: str) -> list[str]:
    """`@path` and `@symbol` mentions, in order, each once (an e-mail address is not one)."""
    out: list[str] = []
    for m in _PIN.finditer(question):
        if m.group(1) not in out:
            out.append(m.group(1))
    return out


class ChatSession:
    """One conversation in one repository; `ask` is the whole use case."""

    def __init__(self, ws: Workspace, session_id: str | None = None) -> None:
        self.ws = ws
        self.id = session_id or new_id()
        self.turns: list[Turn] = []

    # -- history ---------------------------------------------------------------------------

    @staticmethod
    def history(ws: Workspace) -> History:
        return History(ws.index_dir)

    @classmethod
    def summaries(cls, ws: Workspace) -> list[Summary]:
        """The saved conversations of this repository, newest first."""
        return cls.history(ws).summaries()

    @classmethod
    def resume(cls, ws: Workspace, session_id: str | None = None) -> ChatSession:
        """The named conversation, or the latest one; a new one when there is none."""
        history = cls.history(ws)
        session_id = session_id or history.latest()
        if session_id is None:
            return cls(ws)
        session = cls(ws, session_id)
        session.turns = history.load(session_id)
        return session

    def save(self) -> None:
        self.history(self.ws).save(self.id, self.ws.root, self.turns)

    # -- retrieval and packing -------------------------------------------------------------

    def retrieve(self, question: str) -> list[tuple[ChunkRow, str]]:
        """Candidate chunks, best first: what the user pinned (`@path`, `@symbol`), the
        definitions the question names, then search hits.

        The workspace hands out only chunks of files the privacy rules allow.
        """
        settings = self.ws.settings.chat
        pinned = self.pinned(question)
        named = self.ws.chunks_named(question_names(question), limit=settings.k)
        hits = self.ws.search(question, k=settings.k, mode=None)
        out = [(row, "pinned") for row in pinned]
        seen = {row.id for row in pinned}
        for row in named:
            if row.id not in seen:
                out.append((row, "named"))
                seen.add(row.id)
        searched = self.ws.chunks(h.chunk_id for h in hits if h.chunk_id not in seen)
        return out + [(row, "search") for row in searched]

    def pinned(self, question: str) -> list[ChunkRow]:
        """Chunks the question pins with `@path/to/file.py` (the whole file, top to bottom)
        or `@Symbol` (its definitions). A pin that matches nothing is an error: the user
        asked for that context by name."""
        rows: list[ChunkRow] = []
        for pin in pins(question):
            found = self.ws.chunks_in(pin.removeprefix("./")) if "/" in pin or "." in pin else []
            if not found:
                found = self.ws.chunks_named([pin.rsplit(".", 1)[-1]], limit=8)
            if not found:
                raise AssistError(
                    f"@{pin}: no indexed file or symbol by that name",
                    "pin a repository path (@src/app.py) or a definition's name (@parse_args)",
                )
            rows += [r for r in found if r.id not in {x.id for x in rows}]
        return rows

    def pack(
        self, candidates: list[tuple[ChunkRow, str]], budget: int, count: Callable[[str], int]
    ) -> list[tuple[Source, Vetted]]:
        """As many candidates as fit `budget` tokens, in order, each with its block as the
        model reads it; a first one that is too long alone is cut to its first lines rather
        than leaving the prompt with no code."""
        sources: list[tuple[Source, Vetted]] = []
        used = 0
        for row, reason in candidates:
            text = self.ws.vet_chunk(row)
            block = self._block(len(sources) + 1, row, text)
            tokens = count(block)
            if used + tokens > budget:
                if sources or budget <= 0:
                    continue
                lines = text.lines()
                while lines and used + tokens > budget:
                    lines = lines[: max(0, len(lines) * 3 // 4)]
                    text = NEWLINE.joined(lines)
                    block = self._block(1, row, text)
                    tokens = count(block)
                if not lines:
                    continue
            end = row.start_line + text.count("\n")
            source = Source(
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
            sources.append((source, block))
            used += tokens
        return sources

    @staticmethod
    def _block(n: int, row: ChunkRow, text: Vetted) -> Vetted:
        end = min(row.start_line + text.count("\n"), row.end_line)
        source = Source(
            n, row.path, row.qualified_name, row.kind, row.start_line, end, row.id, "", 0, text
        )
        return source_block(source, text)

    def prepare(self, question: str, model: Model | None = None) -> Prepared:
        """Choose the sources and build the messages for `question`."""
        question = question.strip()
        if not question:
            raise AssistError("the question is empty", "type a question about the code")
        model = model or self.ws.model
        settings = self.ws.settings.chat
        count = model.count_tokens
        system = prompts.render("chat_system")
        asked = Vetted.from_user(question)
        history: list[Message] = []
        for turn in self.turns[-settings.history_turns :] if settings.history_turns else []:
            history += [
                Message("user", Vetted.from_user(turn.question)),
                Message("assistant", Vetted.from_model(turn.answer)),
            ]
        bare = prompts.render("chat_user", context=EMPTY, question=asked)
        fixed = sum(count(m.content) for m in [Message("system", system), *history]) + count(bare)
        window = model.context_window()
        budget = settings.context_tokens
        if window:
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
        packed = self.pack(self.retrieve(question), budget, count)
        context = EMPTY.joined(block for _, block in packed) or prompts.render("chat_no_context")
        user = prompts.render("chat_user", context=context, question=asked)
        messages = [Message("system", system), *history, Message("user", user)]
        return Prepared(question, [source for source, _ in packed], messages, budget)

    # -- answering -------------------------------------------------------------------------

    def request(
        self, cancel: threading.Event | None = None, progress: Progress | None = None
    ) -> Request:
        """The model request of one answer; `progress` hears how the prompt reading goes,
        then the writing (for a status line)."""
        return Request(
            max_tokens=self.ws.settings.chat.max_tokens,
            cancel=cancel or threading.Event(),
            progress=progress,
        )

    def stream(
        self, prepared: Prepared, request: Request, model: Model | None = None
    ) -> Iterator[str]:
        """The answer as it is written."""
        model = model or self.ws.model
        return model.chat(prepared.messages, request)

    def finish(
        self, prepared: Prepared, answer: str, request: Request, model: Model | None = None
    ) -> Turn:
        """Record the answer with its citations and save the conversation."""
        model = model or self.ws.model
        stats = request.stats
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
            grounding=check(answer, prepared.sources, prepared.question),
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
        progress: Progress | None = None,
    ) -> Turn:
        """The whole round: prepare, stream (each piece to `on_text`), finish."""
        model = self.ws.model
        prepared = self.prepare(question, model)
        if on_sources is not None:
            on_sources(prepared.sources)
        pieces: list[str] = []
        request = self.request(cancel, progress)
        for piece in self.stream(prepared, request, model):
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)
        return self.finish(prepared, "".join(pieces), request, model)
