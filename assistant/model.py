"""The model runtime: one protocol, a local llama.cpp implementation, streaming with cancel.

Every stream takes a `threading.Event`; it is checked between tokens, and starting a new stream
on the same model sets the event of the one in flight, so a newer request always wins.
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from assistant import prompts
from assistant.chat_format import Message, render_chat
from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.fim import (
    ContextFile,
    FimFormat,
    build_fim_tokens,
    detect_fim,
    path_comment,
    trim_emulated,
)
from assistant.gguf_info import GGUFInfo, read_gguf

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


@dataclass
class GenerationStats:
    """Timings of the last request, for `--json` output and the model card."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    stopped_by: str = ""

    @property
    def tokens_per_second(self) -> float:
        if self.generated_tokens <= 1 or self.generation_ms <= 0:
            return 0.0
        return (self.generated_tokens - 1) / (self.generation_ms / 1000)


class Model(Protocol):
    """What every use case needs from a model, local or remote."""

    name: str
    last_stats: GenerationStats

    @property
    def fim_mode(self) -> str: ...

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]: ...

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        """Stream a reply; `grammar` (GBNF text) constrains it, e.g. to a valid tool call."""
        ...

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]: ...


class _StopScanner:
    """Holds back streamed text that might be the start of a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit = False

    def feed(self, text: str) -> str:
        self.pending += text
        for stop in self.stops:
            idx = self.pending.find(stop)
            if idx >= 0:
                self.hit = True
                out, self.pending = self.pending[:idx], ""
                return out
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def emulation_messages(
    prefix: str, suffix: str, path: str, context: Sequence[ContextFile] = ()
) -> list[Message]:
    """The chat prompt that asks a model without FIM tokens to fill the hole.

    Repository context comes first, as path-comment blocks, so it stays a stable prompt prefix.
    """
    shown = "".join(path_comment(c.path, c.text) for c in context)
    return [
        Message("system", prompts.render("fim_emulation_system")),
        Message(
            "user",
            prompts.render(
                "fim_emulation_user",
                context=f"Other files of the repository:\n\n{shown}" if shown else "",
                path=path or "untitled",
                prefix=prefix,
                suffix=suffix,
            ),
        ),
    ]


@dataclass
class _Flight:
    """The request now generating, so that a newer one can cancel it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    guard: threading.Lock = field(default_factory=threading.Lock)
    current: threading.Event | None = None

    def begin(self, cancel: threading.Event) -> None:
        with self.guard:
            if self.current is not None:
                self.current.set()
            self.current = cancel

    def end(self, cancel: threading.Event) -> None:
        with self.guard:
            if self.current is cancel:
                self.current = None


class LocalModel:
    """A GGUF file run in-process by llama-cpp-python."""

    def __init__(self, info: GGUFInfo, llama: Llama, settings: ModelSettings) -> None:
        self.info = info
        self.name = info.name
        self.settings = settings
        self.llama = llama
        self.fim: FimFormat | None = detect_fim(info, settings.fim)
        self.last_stats = GenerationStats()
        self._flight = _Flight()
        tokens = info.tokens
        self._end_ids = {i for i, t in enumerate(tokens) if t in _END_OF_TURN}
        for key in ("eos", "eot"):
            tid = info.token_id(key)
            if tid is not None:
                self._end_ids.add(tid)

    @classmethod
    def load(cls, path: str | os.PathLike[str], settings: ModelSettings) -> LocalModel:
        info = read_gguf(path)
        from llama_cpp import Llama  # heavy: imported only when a model is really loaded
        from llama_cpp import _logger as llama_logger

        n_ctx = settings.n_ctx
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
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
                    n_gpu_layers=settings.n_gpu_layers,
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
        return cls(info, llama, settings)

    @property
    def fim_mode(self) -> str:
        if self.fim is None:
            return "emulated (no FIM tokens; chat-template prompt)"
        return self.fim.describe(self.info.tokens)

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokens without BOS; special tokens are parsed only when asked (trusted text)."""
        if not text:
            return []
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def bos(self) -> list[int]:
        # llama.cpp adds BOS only when the vocabulary asks for it.
        return list(self.llama.tokenize(b"", add_bos=True, special=False))

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
    ) -> Iterator[str]:
        """Stream text for a ready-made token prompt; the primitive every other call uses."""
        cancel = cancel or threading.Event()
        n_ctx = self.llama.n_ctx()
        budget = max_tokens or self.settings.max_tokens
        if len(tokens) >= n_ctx:
            raise AssistError(
                f"prompt of {len(tokens)} tokens does not fit the {n_ctx}-token context",
                "raise model.n_ctx or send less text",
            )
        budget = min(budget, n_ctx - len(tokens))
        self._flight.begin(cancel)
        try:
            with self._flight.lock:
                yield from self._run(
                    tokens, budget, stop_ids | self._end_ids, stop, cancel, _grammar(grammar)
                )
        finally:
            self._flight.end(cancel)

    def _run(
        self,
        tokens: list[int],
        budget: int,
        stop_ids: set[int] | frozenset[int],
        stop: Sequence[str],
        cancel: threading.Event,
        grammar: LlamaGrammar | None = None,
    ) -> Iterator[str]:
        stats = GenerationStats(prompt_tokens=len(tokens))
        old = list(self.llama.input_ids[: self.llama.n_tokens])
        common = 0
        for a, b in zip(old, tokens, strict=False):
            if a != b:
                break
            common += 1
        stats.cached_tokens = min(common, len(tokens) - 1)
        self.last_stats = stats
        if cancel.is_set():
            stats.stopped_by = "cancel"
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        scanner = _StopScanner(stop)
        temp = self.settings.temperature
        start = time.perf_counter()
        first: float | None = None
        stats.stopped_by = "length"
        for token in self.llama.generate(
            tokens, temp=temp, top_k=40 if temp > 0 else 1, top_p=0.95, repeat_penalty=1.0,
            reset=True, grammar=grammar,
        ):  # fmt: skip
            now = time.perf_counter()
            if first is None:
                first = now
                stats.prompt_ms = (now - start) * 1000
            stats.generation_ms = (now - first) * 1000
            if token in stop_ids:
                stats.stopped_by = "stop token"
                break
            stats.generated_tokens += 1
            piece = self.llama.detokenize([token], special=False)
            text = scanner.feed(decoder.decode(piece))
            if text:
                yield text
            if scanner.hit:
                stats.stopped_by = "stop string"
                break
            if cancel.is_set():
                stats.stopped_by = "cancel"
                break
            if stats.generated_tokens >= budget:
                break
        if not scanner.hit:
            rest = scanner.flush() + decoder.decode(b"", final=True)
            if rest:
                yield rest

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        tokens = self.bos() + self.tokenize(prompt)
        return self.generate_tokens(
            tokens, max_tokens=max_tokens, stop=stop, cancel=cancel, grammar=grammar
        )

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
        cached: list[str] | None = getattr(self, "_specials", None)
        if cached is None:
            types = self.info.metadata.get("tokenizer.ggml.token_type")
            tokens = self.info.tokens
            if not isinstance(types, list):
                types = [1] * len(tokens)
            cached = [t for t, k in zip(tokens, types, strict=False) if k in (3, 4) and len(t) > 1]
            self._specials = cached
        return cached

    def chat(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        stop = () if self.info.chat_template else ("\n### User", "\n### System")
        return self.generate_tokens(
            self.chat_prompt(messages),
            max_tokens=max_tokens,
            stop=stop,
            cancel=cancel,
            grammar=grammar,
        )

    def infill(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        if self.fim is None:
            return self._emulated_infill(prefix, suffix, path, context, max_tokens, cancel)
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
            tokens, max_tokens=max_tokens, stop_ids=self.fim.stop_ids, cancel=cancel
        )

    def _emulated_infill(
        self,
        prefix: str,
        suffix: str,
        path: str,
        context: Sequence[ContextFile],
        max_tokens: int | None,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        # The whole answer is needed before it can be trimmed to the hole, so this yields once.
        text = "".join(
            self.chat(
                emulation_messages(prefix, suffix, path, context),
                max_tokens=max_tokens,
                cancel=cancel,
            )
        )
        trimmed = trim_emulated(text, prefix, suffix)
        if trimmed:
            yield trimmed


def _grammar(gbnf: str | None) -> LlamaGrammar | None:
    """GBNF text as llama.cpp's grammar object; a grammar that does not parse is our bug."""
    if gbnf is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)


def _defuse(text: str, specials: Sequence[str]) -> str:
    """Break control-token texts in untrusted content so the tokenizer reads them as text."""
    for special in specials:
        if special in text:
            text = text.replace(special, special[0] + "\u200b" + special[1:])
    return text


def supports_gpu_offload() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def measure_speed(
    model: LocalModel, prompt_tokens: int = 128, gen_tokens: int = 32
) -> dict[str, float]:
    """Prompt and generation tokens/s on this machine, from a cold cache, stops ignored."""
    llama = model.llama
    vocab = [i for i, t in enumerate(model.info.tokens) if t.isalpha()] or [0]
    n = max(8, min(prompt_tokens, llama.n_ctx() - gen_tokens - 1))
    tokens = model.bos() + [vocab[i % len(vocab)] for i in range(n)]
    with model._flight.lock:
        llama.reset()  # type: ignore[no-untyped-call]
        start = time.perf_counter()
        produced = 0
        first = start
        for _ in llama.generate(tokens, temp=0.0, top_k=1, reset=True):
            if produced == 0:
                first = time.perf_counter()
            produced += 1
            if produced >= gen_tokens:
                break
        end = time.perf_counter()
        llama.reset()  # type: ignore[no-untyped-call]
    prompt_s = first - start
    gen_s = end - first
    return {
        "prompt_tokens": float(len(tokens)),
        "prompt_tokens_per_s": len(tokens) / prompt_s if prompt_s > 0 else 0.0,
        "generated_tokens": float(produced),
        "generation_tokens_per_s": (produced - 1) / gen_s if gen_s > 0 and produced > 1 else 0.0,
    }
