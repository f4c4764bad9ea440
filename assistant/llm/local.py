"""`LocalModel`: a GGUF file run in-process by llama-cpp-python.

A prompt is read in small chunks, checking the request's cancel event between them: llama.cpp
evaluates a batch in one blocking call, and a 512-token batch of a large model on a laptop CPU
takes seconds. The chunk grows or shrinks so each takes about `CHUNK_TARGET_S`, which bounds how
late a cancel (a keystroke, Esc) takes effect. The part of a prompt already read stays in the KV
cache, so the next request that shares its beginning starts where this one stopped.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message, render_chat
from assistant.llm.emulation import emulated_infill
from assistant.llm.fim import ContextFile, FimFormat, build_fim_tokens, detect_fim
from assistant.llm.gguf import GGUFInfo, read_gguf
from assistant.llm.gpu_plan import GpuPlan, resolve_layers
from assistant.llm.protocol import Budget, FimKind, GenerationStats, Progress
from assistant.llm.streaming import Flight, Reporter, relay

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

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
CHUNK_TARGET_S = 0.04
"""Seconds one prompt chunk should take: the longest a cancel waits while a prompt is read."""
FIRST_CHUNK = 32
MIN_CHUNK = 8


class LocalModel:
    """A GGUF file run in-process by llama-cpp-python."""

    def __init__(self, info: GGUFInfo, llama: Llama, settings: ModelSettings) -> None:
        self.info = info
        self.name = info.path.name
        """The file name: what the user chose. `info.name` (the GGUF's `general.name`) is
        detail, and often a training-run label."""
        self.settings = settings
        self.llama = llama
        self.fim: FimFormat | None = detect_fim(info, settings.fim)
        self.last_stats = GenerationStats()
        self._flight = Flight()
        self._chunk = FIRST_CHUNK
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
        from llama_cpp import Llama  # heavy: imported only when a model is really loaded
        from llama_cpp import _logger as llama_logger

        n_ctx = settings.n_ctx
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
        gpu_layers, plan = resolve_layers(settings.n_gpu_layers, info, n_ctx)
        captured = io.StringIO()
        # verbose=False would redirect file descriptors 1 and 2 to /dev/null while loading,
        # swallowing anything a language server writes to stdout meanwhile. Keep verbose=True
        # and capture llama.cpp's chatter at the Python level instead.
        try:
            with contextlib.redirect_stderr(captured):
                llama = Llama(
                    model_path=str(info.path),
                    n_ctx=n_ctx,
                    n_threads=settings.n_threads or None,
                    n_gpu_layers=gpu_layers,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            log.debug("llama.cpp output while loading:\n%s", captured.getvalue())
            tail = captured.getvalue().strip().splitlines()[-1:] or [str(exc)]
            raise AssistError(
                f"{info.path}: llama.cpp could not load this model: {tail[0]}",
                "check that the file is complete and its architecture is supported",
            ) from None
        finally:
            llama_logger.set_verbose(False)
        log.debug("llama.cpp output while loading:\n%s", captured.getvalue())
        llama.verbose = False  # otherwise every generate() prints cache hits to stderr
        model = cls(info, llama, settings)
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
        return int(self.llama.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokens without BOS; special tokens are parsed only when asked (trusted text)."""
        if not text:
            return []
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def bos(self) -> list[int]:
        # llama.cpp adds BOS only when the vocabulary asks for it.
        return list(self.llama.tokenize(b"", add_bos=True, special=False))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Llama]:
        """The llama.cpp object, with no request running on it meanwhile."""
        with self._flight.lock:
            yield self.llama

    # -- generation ------------------------------------------------------------------------

    def generate_tokens(
        self,
        tokens: list[int],
        *,
        max_tokens: int | None = None,
        stop_ids: set[int] | frozenset[int] = frozenset(),
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        """Stream text for a ready-made token prompt; the primitive every other call uses.

        `max_tokens=0` reads the prompt into the cache and generates nothing: a warm-up, which
        runs only when no request is in flight and gives way to any that starts."""
        cancel = cancel or threading.Event()
        n_ctx = self.llama.n_ctx()
        if len(tokens) >= n_ctx:
            raise AssistError(
                f"prompt of {len(tokens)} tokens does not fit the {n_ctx}-token context",
                "raise model.n_ctx or send less text",
            )
        if max_tokens == 0:
            self._warm(tokens, cancel, progress)
            return
        limit = min(max_tokens or self.settings.max_tokens, n_ctx - len(tokens))
        parsed = _grammar(grammar, self.llama)
        self._flight.begin(cancel)  # a newer request wins: the one in flight stops
        queued = time.perf_counter()
        try:
            with self._flight.lock:
                stats = GenerationStats(prompt_tokens=len(tokens))
                stats.wait_ms = (time.perf_counter() - queued) * 1000
                self.last_stats = stats
                report = Reporter(stats, progress)
                started = time.perf_counter()
                pieces = self._pieces(
                    tokens, stop_ids | self._end_ids, cancel, parsed, stats, report,
                    budget.prompt_s if budget else None,
                )  # fmt: skip
                yield from relay(
                    pieces, stats, started=started, stop=stop, cancel=cancel, max_tokens=limit,
                    generate_s=budget.generate_s if budget else None, report=report,
                )  # fmt: skip
        finally:
            self._flight.end(cancel)

    def _warm(self, tokens: list[int], cancel: threading.Event, progress: Progress | None) -> None:
        if not self._flight.begin_idle(cancel):
            return
        try:
            with self._flight.lock:
                stats = GenerationStats(prompt_tokens=len(tokens))
                self.last_stats = stats
                if self._read_prompt(tokens, cancel, stats, Reporter(stats, progress), None):
                    stats.stopped_by = "length"
        finally:
            self._flight.end(cancel)

    def _pieces(
        self,
        tokens: list[int],
        stop_ids: set[int] | frozenset[int],
        cancel: threading.Event,
        grammar: LlamaGrammar | None,
        stats: GenerationStats,
        report: Reporter,
        prompt_s: float | None,
    ) -> Iterator[str]:
        """One text piece per generated token, after reading the prompt chunk by chunk."""
        if not self._read_prompt(tokens, cancel, stats, report, prompt_s):
            return
        llama = self.llama
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        temp = self.settings.temperature
        # Everything but the last prompt token is in the cache now, so `generate` evaluates
        # one token before it samples.
        for token in llama.generate(
            tokens, temp=temp, top_k=40 if temp > 0 else 1, top_p=0.95, repeat_penalty=1.0,
            reset=True, grammar=grammar,
        ):  # fmt: skip
            if token in stop_ids:
                stats.stopped_by = "stop token"
                break
            yield decoder.decode(llama.detokenize([token], special=False))
            if cancel.is_set():
                stats.stopped_by = "cancel"
                break
        else:
            stats.stopped_by = "end"
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    def _read_prompt(
        self,
        tokens: list[int],
        cancel: threading.Event,
        stats: GenerationStats,
        report: Reporter,
        prompt_s: float | None,
    ) -> bool:
        """Evaluate all but the last token, reusing the cached prefix; False when cancelled or
        out of time (what was read stays cached)."""
        llama = self.llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, tokens[:-1], strict=False):
            if a != b:
                break
            common += 1
        # `eval` drops the cache past `n_tokens` before it writes.
        llama.n_tokens = common
        stats.cached_tokens = stats.prompt_done = common
        todo = tokens[common:-1]
        start = time.perf_counter()
        done = 0
        while done < len(todo):
            if cancel.is_set():
                stats.stopped_by = "cancel"
                return False
            if prompt_s is not None and time.perf_counter() - start >= prompt_s:
                stats.stopped_by = "budget"
                return False
            part = todo[done : done + self._chunk]
            t = time.perf_counter()
            llama.eval(part)
            self._adapt_chunk(len(part), time.perf_counter() - t)
            done += len(part)
            stats.prompt_done = common + done
            stats.prompt_ms = (time.perf_counter() - start) * 1000
            report()
        if cancel.is_set():
            stats.stopped_by = "cancel"
            return False
        return True

    def _adapt_chunk(self, size: int, seconds: float) -> None:
        """The next chunk size: what takes about CHUNK_TARGET_S at the speed just measured,
        a power of two within [MIN_CHUNK, n_batch]."""
        if seconds <= 0 or size < self._chunk:
            return
        wanted = size * CHUNK_TARGET_S / seconds
        chunk = MIN_CHUNK
        while chunk * 2 <= min(wanted, self.llama.n_batch):
            chunk *= 2
        self._chunk = chunk

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        tokens = self.bos() + self.tokenize(prompt)
        return self.generate_tokens(
            tokens, max_tokens=max_tokens, stop=stop, cancel=cancel, grammar=grammar,
            progress=progress, budget=budget,
        )  # fmt: skip

    def chat_prompt(self, messages: list[Message]) -> list[int]:
        """Render `messages` through the GGUF's chat template (sandboxed) into tokens.

        The template's own markup is trusted; message contents are not, so each content's
        special-looking text is neutralised before rendering.
        """
        tokens = self.info.tokens
        bos_id, eos_id = self.info.token_id("bos"), self.info.token_id("eos")
        safe = [Message(m.role, _defuse(m.content, self._special_texts())) for m in messages]
        text = render_chat(
            self.info.chat_template,
            safe,
            bos_token=tokens[bos_id] if bos_id is not None else "",
            eos_token=tokens[eos_id] if eos_id is not None else "",
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

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        stop = () if self.info.chat_template else ("\n### User", "\n### System")
        return self.generate_tokens(
            self.chat_prompt(messages), max_tokens=max_tokens, stop=stop, cancel=cancel,
            grammar=grammar, progress=progress, budget=budget,
        )  # fmt: skip

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        budget: Budget | None = None,
    ) -> Iterator[str]:
        if self.fim is None:
            return emulated_infill(
                self, prefix, suffix, path=path, context=context, max_tokens=max_tokens,
                cancel=cancel, progress=progress, budget=budget,
            )  # fmt: skip
        tokens = build_fim_tokens(
            self.fim,
            self.tokenize,
            prefix,
            suffix,
            bos=self.bos(),
            path=path or None,
            context=context,
        )
        return self.generate_tokens(
            tokens, max_tokens=max_tokens, stop_ids=self.fim.stop_ids, cancel=cancel,
            progress=progress, budget=budget,
        )  # fmt: skip


def _grammar(gbnf: str | None, llama: Llama) -> LlamaGrammar | None:
    """GBNF text as llama.cpp's grammar object. llama.cpp's own parser checks it first: a
    grammar it refuses would otherwise crash the process when sampling begins (a NULL sampler
    added to the chain), and a model host serves whatever its clients send."""
    if gbnf is None:
        return None
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    probe = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not probe:
        raise AssistError(
            "llama.cpp cannot parse this grammar (GBNF)", "its parser's message is on stderr"
        )
    llama_cpp.llama_sampler_free(probe)
    return LlamaGrammar.from_string(gbnf, verbose=False)


def _defuse(text: str, specials: Sequence[str]) -> str:
    """Break control-token texts in untrusted content so the tokenizer reads them as text."""
    for special in specials:
        if special in text:
            text = text.replace(special, special[0] + "\u200b" + special[1:])
    return text
