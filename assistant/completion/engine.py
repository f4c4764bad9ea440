"""Code completion at a cursor: one engine for the CLI and the language server.

A request goes: window of text around the cursor (completion/window.py: kept put while the
cursor stays, small at a new place and grown in the background) → repository context from the
context ring → the model's own FIM prompt (or an emulation) → streamed text shaped to the hole
(shaping.py) → a cache that also serves the person typing ahead into a completion.

An editor's request never comes back empty for want of time: when the model has not started
writing by `completion.prompt_ms`, the answer is recalled from text already known
(completion/recall.py), and the model goes on in the background; its answer replaces the recalled
one through the cache, for the next request here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.completion.cache import CompletionCache, around_cursor
from assistant.completion.context import Candidate, as_prompt_context, candidates
from assistant.completion.model_run import ModelRun, empty_reason
from assistant.completion.recall import recall
from assistant.completion.result import (
    Completion,
    Source,
    Warmed,
    fill_timings,
    ms_since,
)
from assistant.completion.ring import ContextRing
from assistant.completion.shaping import Shaper, wants_multiline
from assistant.completion.window import (
    CHARS_PER_TOKEN,
    Places,
    PromptSpeed,
    Sizes,
    Window,
    cursor_offset,
    cut,
)
from assistant.errors import AssistError
from assistant.llm.fim import Hole, path_comment
from assistant.llm.protocol import Request
from assistant.repo.vetted import EMPTY, NEWLINE

if TYPE_CHECKING:
    from assistant.llm.protocol import Model
    from assistant.repo.vetted import Permit
    from assistant.workspace import Workspace

log = logging.getLogger(__name__)


class CompletionEngine:
    """Completions for one workspace; safe to call from several threads."""

    def __init__(self, ws: Workspace, model: Model | None = None) -> None:
        self.ws = ws
        self._model = model
        self.settings = ws.settings.completion
        self.cache = CompletionCache(self.settings.cache_size)
        self.ring = ContextRing(int(self.settings.context_tokens * CHARS_PER_TOKEN))
        self._ring_file: str | None = None
        """The file whose context the ring holds, all of it read into the model's cache."""
        self._ring_wanted: tuple[str, list[Candidate]] | None = None
        self._grew_last = False
        self.places = Places()
        self.speed = PromptSpeed()

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = self.ws.model
        return self._model

    # -- requests --------------------------------------------------------------------------

    def complete(
        self,
        path: str,
        text: str,
        line: int,
        col: int,
        *,
        cancel: threading.Event | None = None,
        on_text: Callable[[str], None] | None = None,
        editor: bool = False,
    ) -> Completion:
        """Complete at 0-based (`line`, `col`) of `text`, the editor's (maybe unsaved) buffer.

        `on_text` receives the completion as it streams, in pieces that are final. `editor`:
        an editor asked while its user types, so the model has `completion.prompt_ms` to start
        writing and `generate_ms` to write, a late model's place is taken by recalled text, and
        the context ring is kept (its prompt is cached); otherwise the whole answer is awaited
        and the ring is chosen for this cursor. A completion that ends empty says why in
        `note`.
        """
        permit = self.ws.permit(path, inside=False)  # a private file by any name: refused
        rel = _rel(permit)
        shown = rel or Path(path).name
        model = self.model  # loaded before the clock starts: a load is not a completion's cost
        started = time.perf_counter()
        offset = cursor_offset(text, line, col)
        sizes = self._sizes(model)
        if editor:
            window = self.places.window(shown, text, offset, sizes)
        else:  # one request, all of it awaited: the whole window
            window = cut(text, offset, 0, 1 << 30, sizes)
        multiline = wants_multiline(window.before, window.suffix, self.settings.multiline)
        result = Completion(text="", multiline=multiline, cold=window.cold)
        around = around_cursor(text, offset)
        hit = self.cache.get(*around)
        if hit is not None:
            result.text, result.source = hit, "cache"
            if on_text and hit:
                on_text(hit)
            result.timings.total_ms = result.timings.overhead_ms = ms_since(started)
            return result
        hole = _vetted_hole(permit, text, offset, window, shown)
        if hole is None:
            result.note = "the cursor is inside a secret: nothing goes to a model from here"
            result.timings.total_ms = result.timings.overhead_ms = ms_since(started)
            return result
        t0 = time.perf_counter()
        context = self._context(rel, text, offset, refresh=not editor)
        result.context = [c.chunk for c in context]
        result.timings.retrieval_ms = ms_since(t0)
        result.model = model.name
        request = Request(
            max_tokens=self.settings.max_tokens,
            priority="background" if editor else "explicit",
            generate_s=self.settings.generate_ms / 1000 if editor else None,
            cancel=cancel or threading.Event(),
        )
        run = ModelRun(
            lambda: self._stream(model, hole, context, multiline, request),
            Shaper(window.before, window.suffix, multiline),
            request,
            on_done=lambda run: self._finished(run, *around),
        )

        def recalled() -> tuple[str, Source] | None:
            t0 = time.perf_counter()
            found = self._recall(text, offset, context, window)
            result.timings.recall_ms = ms_since(t0)
            return found

        if editor:
            self._answer_in_time(result, run, recalled, started)
        else:
            self._answer_awaited(result, run, recalled, on_text)
        fill_timings(result, run, started)
        return result

    def _answer_in_time(
        self,
        result: Completion,
        run: ModelRun,
        recalled: Callable[[], tuple[str, Source] | None],
        started: float,
    ) -> None:
        """An editor's answer: the model's if it starts writing within `prompt_ms` (then it
        is awaited, within `generate_ms`), else recalled text, while the model goes on in the
        background for the cache. With nothing recalled it gets twice as long."""
        run.start()
        found = recalled()  # while the model reads
        budget = self.settings.prompt_ms / 1000
        run.wait_until(started + (budget if found is not None else 2 * budget))
        if run.finished.is_set():
            self._answer_from(result, run, found)
            return
        result.note = (
            f"the model did not start writing within completion.prompt_ms "
            f"({self.settings.prompt_ms} ms); it goes on, its answer for the cache"
        )
        if found is not None:
            result.text, result.source = found

    def _answer_awaited(
        self,
        result: Completion,
        run: ModelRun,
        recalled: Callable[[], tuple[str, Source] | None],
        on_text: Callable[[str], None] | None,
    ) -> None:
        """A one-off answer, streamed as it comes; recalled text only when the model has none."""
        run.on_text = on_text
        run.body()
        found = None if run.text or run.request.cancel.is_set() else recalled()
        self._answer_from(result, run, found)
        if result.source != "model" and result.text and on_text is not None:
            on_text(result.text)

    def _finished(self, run: ModelRun, before: str, after: str) -> None:
        """A model answer, shown or not, is measured and kept for the next request here."""
        if run.error is not None:  # raised to a caller still waiting; logged for one gone
            log.debug("completion for the cache failed: %s", run.error.message)
        self.speed.add(run.request.stats)
        if run.text and not run.request.cancel.is_set():
            self.cache.put(before, after, run.text)

    def _answer_from(
        self, result: Completion, run: ModelRun, recalled: tuple[str, Source] | None
    ) -> None:
        """The model's finished answer, or, when it has none, the recalled one (saying why)."""
        if run.error is not None:
            raise run.error
        if run.request.cancel.is_set():
            result.note = "cancelled"
            return
        if run.text:
            result.text, result.source, result.note = run.text, "model", run.note
            return
        why = run.note or empty_reason(run.request.stats, run.shaper)
        if recalled is not None:
            result.text, result.source = recalled
            result.note = f"{why}; recalled from known text instead"
        else:
            result.note = why

    def _recall(
        self, text: str, offset: int, context: list[Candidate], window: Window
    ) -> tuple[str, Source] | None:
        line_end = text.find("\n", offset)
        rest = text[offset : len(text) if line_end < 0 else line_end]
        found = recall(text, offset, [c.text for c in context], suffix_line=rest)
        if found is None:
            return None
        shaper = Shaper(window.before, window.suffix, multiline=False)
        shaper.feed(found.text)
        shaper.finish()
        if not shaper.text.strip():
            return None
        source: Source = "recall:file" if found.source == "file" else "recall:context"
        return shaper.text, source

    def warm(
        self, path: str, text: str, line: int, col: int, *, cancel: threading.Event | None = None
    ) -> Warmed | None:
        """At an idle moment, read into the model's cache what the next keystroke here will
        want, generating nothing: one step more of the window (lines before and after it) or of
        the file's context ring (a few definitions added at its end), in turns, each adopted
        once read; else the prompt as it is. A request pre-empts it, and it never pre-empts
        one. None when it did not run."""
        permit = self.ws.permit(path, inside=False)
        rel = _rel(permit)
        if rel is None:
            return None
        model = self.model
        offset = cursor_offset(text, line, col)
        sizes = self._sizes(model)
        grown = self.places.grown(rel, text, offset, sizes)
        ring = self._ring_step(rel, text, offset, sizes) if self._ring_file != rel else None
        if ring is not None and (grown is None or self._grew_last):
            window, place, what = self.places.window(rel, text, offset, sizes), None, "ring"
        elif grown is not None:
            (window, place), ring, what = grown, None, "window"
        else:
            window, place, what = self.places.window(rel, text, offset, sizes), None, "prompt"
        self._grew_last = what == "window"
        hole = _vetted_hole(permit, text, offset, window, rel)
        if hole is None:
            return None
        new_ring = ring[0] if ring is not None else self.ring
        context = new_ring.snapshot(exclude_path=rel)
        multiline = wants_multiline(window.before, window.suffix, self.settings.multiline)
        request = Request.warm_up(cancel)
        for _ in self._stream(model, hole, context, multiline, request):
            pass
        stats = request.stats
        if request.cancel.is_set() and not stats.prompt_done:
            return None  # it never ran: the model was busy, or it was cancelled at once
        self.speed.add(stats)
        done = stats.stopped_by == "length"
        if done and place is not None:
            self.places.adopt(place)
        if done and ring is not None:
            self.ring = new_ring
            if ring[1]:
                self._ring_file = rel  # the whole ring is read
        more = done and what != "prompt"
        label = {"window": "grew the window", "ring": "read context", "prompt": "read the prompt"}
        return Warmed(stats, label[what], more)

    def _ring_step(
        self, rel: str, text: str, offset: int, sizes: Sizes
    ) -> tuple[ContextRing, bool] | None:
        """The ring with the next few of this file's definitions added at its end (about what
        a cold window reads), and whether that is all of them; None when context is off."""
        if self.settings.context_tokens <= 0:
            return None
        if self._ring_wanted is None or self._ring_wanted[0] != rel:
            found = candidates(self.ws, self.settings.context_tokens, rel, text, offset)
            self._ring_wanted = (rel, found)
        wanted = self._ring_wanted[1]
        have = {c.key for c in self.ring.snapshot()}
        todo = [c for c in wanted if c.key not in have]
        taken: list[Candidate] = []
        size = 0
        for c in todo:
            if taken and size + len(c.text) > sizes.cold:
                break
            taken.append(c)
            size += len(c.text)
        ring = self.ring.copy()
        ring.refresh([c for c in wanted if c.key in have] + taken)
        return ring, len(taken) == len(todo)

    # -- the pieces ------------------------------------------------------------------------

    def _sizes(self, model: Model) -> Sizes:
        s = self.settings
        suffix = s.suffix_tokens
        if s.emulation == "continue" and model.fim_kind == "emulated":
            suffix = 0  # a continuation prompt shows nothing after the cursor
        cold = self.speed.value * s.cold_ms / 1000
        return Sizes(*(int(n * CHARS_PER_TOKEN) for n in (s.prefix_tokens, suffix, cold)))

    def _context(self, rel: str | None, text: str, offset: int, refresh: bool) -> list[Candidate]:
        """The ring's chunks for a prompt in `rel`. A one-off request chooses them for its
        cursor; an editor's keystroke takes the ring as it is (its prompt is cached), and the
        idle warm-up chooses them anew when the file changes."""
        if rel is None:
            return []
        if refresh:
            self.ring.refresh(candidates(self.ws, self.settings.context_tokens, rel, text, offset))
            self._ring_file = rel
        return self.ring.snapshot(exclude_path=rel)

    def _stream(
        self,
        model: Model,
        hole: Hole,
        context: list[Candidate],
        multiline: bool,
        request: Request,
    ) -> Iterator[str]:
        """The model's stream for this hole."""
        files = as_prompt_context(context)
        if self.settings.emulation == "continue" and model.fim_kind == "emulated":
            # No FIM tokens: continue the text before the cursor, context files above it.
            # The shaper still cuts at the block's end and where the suffix repeats.
            head = EMPTY.joined(path_comment(c.path, c.text) for c in files)
            prompt = head + path_comment(hole.path, EMPTY).rstrip("\n") + NEWLINE
            if not multiline:
                request.stop = ("\n",)
            return model.complete(prompt + hole.before, request)
        return model.infill(replace(hole, context=files), request)


def _rel(permit: Permit) -> str | None:
    """The repository path of a permitted file, or None for a file outside the repository."""
    return permit.rel if permit.rel != "." else None


def _vetted_hole(permit: Permit, text: str, offset: int, window: Window, path: str) -> Hole | None:
    """The window as a model may see it: the secrets `text` holds around the cursor cut out
    (repo/vetted.py), the cursor still between prefix and suffix. None when the cursor is
    inside a secret."""
    start, end = offset - len(window.before), offset + len(window.suffix)
    vetted = permit.vet_around(text, start, offset, end)
    if vetted is None:
        return None
    before, suffix = vetted
    line = before.rfind("\n") + 1  # the cursor's line: `typed` (repo/vetted.py keeps lines)
    return Hole(before[:line], suffix, path=path, typed=before[line:])


def complete_file(
    ws: Workspace,
    path: str,
    line: int,
    col: int,
    *,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """`assist complete`: complete a file on disk at 1-based `line`, 0-based `col`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AssistError(f"{path}: not UTF-8 text", "completions work on text files") from None
    except OSError as exc:
        raise AssistError(f"{path}: cannot read: {exc.strerror}", "check the path") from None
    if line < 1:
        raise AssistError(f"line {line} is invalid", "lines start at 1")
    return CompletionEngine(ws).complete(str(file.resolve()), text, line - 1, col, on_text=on_text)
