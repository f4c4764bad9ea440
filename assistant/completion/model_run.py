"""One model request for a completion, run where its caller waits or on a thread of its own (an
editor's, whose caller may answer before it ends), shaped to the hole as it streams."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

from assistant.completion.shaping import Shaper
from assistant.errors import AssistError
from assistant.llm.protocol import GenerationStats, Request


class ModelRun:
    """The model's answer for one completion; `on_done` hears of it whether or not it was
    shown (the engine caches it for the next request)."""

    def __init__(
        self,
        stream: Callable[[], Iterator[str]],
        shaper: Shaper,
        request: Request,
        *,
        on_done: Callable[[ModelRun], None] | None = None,
    ) -> None:
        self.stream, self.shaper, self.request, self.on_done = stream, shaper, request, on_done
        self.text = ""
        self.note = ""
        self.first: float | None = None
        self.build_ms = 0.0
        """Building and tokenizing the prompt (our overhead, before the model)."""
        self.error: AssistError | None = None
        self.on_text: Callable[[str], None] | None = None
        self.writing = threading.Event()
        self.finished = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self.body, name="assist-completion", daemon=True).start()

    def wait_until(self, deadline: float) -> None:
        """Until the answer is ready, or `deadline` (perf_counter) passes with nothing written
        yet; once writing has begun it is awaited (the request bounds the writing time)."""
        while not self.finished.is_set():
            left = deadline - time.perf_counter()
            if left <= 0 and not self.writing.is_set():
                return
            self.finished.wait(min(left, 0.05) if left > 0.005 else 0.05)

    def body(self) -> None:
        try:
            self._generate()
        except AssistError as exc:
            self.error = exc
        finally:
            if self.on_done is not None:
                self.on_done(self)
            self.finished.set()

    def _generate(self) -> None:
        t0 = time.perf_counter()
        stream = self.stream()
        self.build_ms = (time.perf_counter() - t0) * 1000
        shaper = self.shaper
        try:
            for piece in stream:
                if self.first is None:
                    self.first = time.perf_counter()
                    self.writing.set()
                out = shaper.feed(piece)
                if out and self.on_text:
                    self.on_text(out)
                if shaper.done:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # stops generation when the shaper has all it needs
        rest = shaper.finish()
        if rest and self.on_text:
            self.on_text(rest)
        text = shaper.text
        if self.request.stats.stopped_by == "budget" and text:
            # Out of writing time mid-line: a last word may be cut in two; drop it.
            text = re.sub(r"(?<=\W)\w+$", "", text)
            self.note = "cut at completion.generate_ms"
        self.text = text


def empty_reason(stats: GenerationStats, shaper: Shaper) -> str:
    """Why a finished completion is empty, in words for `--json` and the editor's log."""
    if stats.stopped_by == "budget" and stats.generated_tokens == 0:
        return (
            f"the prompt was not read in time ({stats.prompt_done} of {stats.prompt_tokens} "
            "tokens); the next request continues from there"
        )
    if stats.generated_tokens == 0:
        return f"the model ended at once ({stats.stopped_by or 'no tokens'})"
    if shaper.raw and not shaper.text:
        return (
            f"the model wrote {stats.generated_tokens} tokens, none of which fit the hole "
            "(they repeated the text after the cursor, or closed a bracket opened before it)"
        )
    return f"the model wrote only white space ({stats.stopped_by})"
