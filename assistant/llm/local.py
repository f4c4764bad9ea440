"""`LocalModel`: a GGUF file run in-process on llama.cpp (llm/llama_runtime.py).

A prompt is read in small chunks, checking the request's cancel event between them: llama.cpp
evaluates a batch in one blocking call, and a 512-token batch of a large model on a laptop CPU
takes seconds. The chunk grows or shrinks so each takes about `CHUNK_TARGET_S`, which bounds how
late a cancel (a keystroke, Esc) takes effect. What a prompt has in common with what the KV cache
holds is reused, where it is or moved (llm/kv_plan.py); the part read stays in the cache, so the
next request continues where this one stopped. One scheduler (llm/schedule.py) decides which
request runs.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message, render_chat
from assistant.llm.emulation import emulated_infill
from assistant.llm.fim import FimFormat, Hole, build_fim_tokens, detect_fim
from assistant.llm.gguf import GGUFInfo, read_gguf
from assistant.llm.gpu_plan import GpuPlan, resolve_layers
from assistant.llm.llama_runtime import LlamaRuntime
from assistant.llm.protocol import FimKind, Request
from assistant.llm.schedule import Scheduler
from assistant.llm.streaming import Reporter, relay

log = logging.getLogger(__name__)

# End-of-turn texts of common chat templates; generation stops on any that exist in the vocab.
_END_OF_TURN = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<｜end▁of▁sentence｜>",
    "<|EOT|>",
)
LANE = "in-process"
"""The lane of requests that name none: one process's callers are one client."""


class LocalModel:
    """A GGUF file run in-process."""

    def __init__(self, info: GGUFInfo, runtime: LlamaRuntime, settings: ModelSettings) -> None:
        self.info = info
        self.name = info.path.name
        """The file name: what the user chose. `info.name` (the GGUF's `general.name`) is
        detail, and often a training-run label."""
        self.settings = settings
        self.runtime = runtime
        self.fim: FimFormat | None = detect_fim(info, settings.fim)
        self.scheduler = Scheduler(lane=LANE)
        tokens = info.tokens
        self._end_ids = {i for i, t in enumerate(tokens) if t in _END_OF_TURN}
        for key in ("eos", "eot"):
            tid = info.token_id(key)
            if tid is not None:
                self._end_ids.add(tid)
        self._specials: list[str] | None = None
        self.gpu_plan: GpuPlan | None = None
        """What `model.n_gpu_layers = "auto"` decided, for the model card."""

    @classmethod
    def load(cls, path: str | os.PathLike[str], settings: ModelSettings) -> LocalModel:
        info = read_gguf(path)
        n_ctx = settings.n_ctx
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
        gpu_layers, plan = resolve_layers(settings.n_gpu_layers, info, n_ctx)
        runtime = LlamaRuntime(
            info.path, n_ctx=n_ctx, n_threads=settings.n_threads, n_gpu_layers=gpu_layers
        )
        model = cls(info, runtime, settings)
        model.gpu_plan = plan
        return model

    # -- facts -----------------------------------------------------------------------------

    @property
    def fim_kind(self) -> FimKind:
        return "emulated" if self.fim is None else "tokens"

    @property
    def fim_label(self) -> str:
        if self.fim is None:
            return "emulated (no FIM tokens; chat-template prompt)"
        return self.fim.describe(self.info.tokens)

    def context_window(self) -> int:
        return self.runtime.n_ctx

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokens without BOS; special tokens are parsed only when asked (trusted text)."""
        if not text:
            return []
        return self.runtime.tokenize(text, special=special)

    def bos(self) -> list[int]:
        # llama.cpp adds BOS only when the vocabulary asks for it.
        return self.runtime.tokenize("", add_bos=True)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[LlamaRuntime]:
        """The runtime, with no request running on it meanwhile (a person asked: the card)."""
        request = Request()
        if not self.scheduler.admit(request):
            raise AssistError("the model was needed by another request", "try again")
        try:
            yield self.runtime
        finally:
            self.scheduler.release(request)

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        tokens: list[int],
        request: Request | None = None,
        *,
        stop_ids: set[int] | frozenset[int] = frozenset(),
    ) -> Iterator[str]:
        """Stream text for a ready-made token prompt; the primitive every other call uses.

        A warm-up (`max_tokens=0`) reads the prompt into the cache and writes nothing."""
        request = request or Request()
        n_ctx = self.runtime.n_ctx
        if len(tokens) >= n_ctx:
            raise AssistError(
                f"prompt of {len(tokens)} tokens does not fit the {n_ctx}-token context",
                "raise model.n_ctx or send less text",
            )
        if not tokens:
            return
        if request.grammar is not None:
            self.runtime.check_grammar(request.grammar)  # before the prompt is read for nothing
        stats = request.stats
        stats.prompt_tokens = len(tokens)
        report = Reporter(request)

        def queued() -> None:
            stats.phase = "queued"
            request.report()
            stats.phase = "prompt"

        if not self.scheduler.admit(request, on_tick=queued):
            stats.stopped_by = "cancel"
            return
        try:
            started = time.perf_counter()
            if not self._read_prompt(tokens, request, report):
                return
            if request.max_tokens == 0:
                stats.stopped_by = "length"
                return
            limit = min(request.max_tokens or self.settings.max_tokens, n_ctx - len(tokens))
            pieces = self._pieces(tokens[-1], stop_ids | self._end_ids, request)
            yield from relay(pieces, request, started=started, max_tokens=limit, report=report)
        finally:
            self.scheduler.release(request)

    def _read_prompt(self, tokens: list[int], request: Request, report: Reporter) -> bool:
        """Get all but the last token into the cache, reusing what it holds; False when
        cancelled or out of time (what was read stays cached)."""
        stats = request.stats
        runtime = self.runtime
        head = tokens[:-1]
        plan = runtime.plan(head)
        stats.prompt_speed = runtime.prompt_speed
        stats.cached_tokens, stats.shifted_tokens = plan.reused, plan.shifted
        stats.prompt_done = plan.reused + plan.shifted
        start = time.perf_counter()
        deadline = None if request.prompt_s is None else start + request.prompt_s

        def chunk_done(at: int) -> None:
            # Everything before `at` is in the cache now, and so are the runs parked past it.
            stats.prompt_done = at + sum(m.length for m in plan.moves if m.dst >= at)
            stats.prompt_ms = (time.perf_counter() - start) * 1000
            report()

        done = runtime.prepare(
            head, plan, cancel=request.cancel, deadline=deadline, on_chunk=chunk_done
        )
        stats.prompt_ms = (time.perf_counter() - start) * 1000
        stats.prompt_speed = runtime.prompt_speed
        if done:
            stats.prompt_done = len(head)
            report(force=True)  # what was reused and read, whether or not a chunk was needed
            return not self._stop_if_cancelled(request)
        stats.stopped_by = "cancel" if request.cancel.is_set() else "budget"
        return False

    @staticmethod
    def _stop_if_cancelled(request: Request) -> bool:
        if request.cancel.is_set():
            request.stats.stopped_by = "cancel"
            return True
        return False

    def _pieces(
        self, last: int, stop_ids: set[int] | frozenset[int], request: Request
    ) -> Iterator[str]:
        """One text piece per generated token."""
        runtime = self.runtime
        stats = request.stats
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        temperature = self.settings.temperature
        if request.temperature is not None:
            temperature = request.temperature
        for token in runtime.generate(last, temperature=temperature, grammar=request.grammar):
            if token in stop_ids:
                stats.stopped_by = "stop token"
                break
            yield decoder.decode(runtime.piece(token))
            if request.cancel.is_set():
                stats.stopped_by = "cancel"
                break
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    def complete(self, prompt: str, request: Request | None = None) -> Iterator[str]:
        return self.generate(self.bos() + self.tokenize(prompt), request)

    def chat_prompt(self, messages: list[Message]) -> list[int]:
        """Render `messages` through the GGUF's chat template (sandboxed) into tokens.

        The template's own markup is trusted; message contents are not, so each content's
        special-looking text is neutralised before rendering.
        """
        tokens = self.info.tokens
        bos_id, eos_id = self.info.token_id("bos"), self.info.token_id("eos")
        specials = self._special_texts()
        text = render_chat(
            self.info.chat_template,
            messages,
            bos_token=tokens[bos_id] if bos_id is not None else "",
            eos_token=tokens[eos_id] if eos_id is not None else "",
            defuse=lambda content: _defuse(content, specials),
        )
        ids = self.tokenize(text, special=True)
        bos = self.bos()
        if bos and ids[:1] != bos:
            ids = bos + ids
        return ids

    def _special_texts(self) -> list[str]:
        """Texts of control and user-defined tokens: what untrusted content must not spell."""
        if self._specials is None:
            types = self.info.metadata.get("tokenizer.ggml.token_type")
            tokens = self.info.tokens
            if not isinstance(types, list):
                types = [1] * len(tokens)
            self._specials = [
                t for t, k in zip(tokens, types, strict=False) if k in (3, 4) and len(t) > 1
            ]
        return self._specials

    def chat(self, messages: list[Message], request: Request | None = None) -> Iterator[str]:
        request = request or Request()
        if not self.info.chat_template and not request.stop:
            request.stop = ("\n### User", "\n### System")
        return self.generate(self.chat_prompt(messages), request)

    def infill(self, hole: Hole, request: Request | None = None) -> Iterator[str]:
        if self.fim is None:
            return emulated_infill(self, hole, request)
        tokens = build_fim_tokens(self.fim, self.tokenize, hole, bos=self.bos())
        return self.generate(tokens, request, stop_ids=self.fim.stop_ids)


def _defuse(text: str, specials: Sequence[str]) -> str:
    """Break control-token texts in untrusted content so the tokenizer reads them as text."""
    for special in specials:
        if special in text:
            text = text.replace(special, special[0] + "\u200b" + special[1:])
    return text
