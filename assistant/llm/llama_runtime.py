"""One GGUF model in llama.cpp, through the C API that llama-cpp-python binds (llama.h): its
tokenizer, one context whose KV cache we keep a map of, prompts read into that cache with as
little reading as the cache allows (llm/kv_plan.py), and sampling.

llama-cpp-python's `Llama` keeps its cache as one contiguous prefix and re-reads everything
after the first changed token; it cannot put text before what the cache holds. Here the context
has two sequences in one KV buffer: sequence 0 is the prompt as far as it is read, and runs of
the older prompt that the new one still uses wait in sequence 1 at the places they will take
("parked"), joining sequence 0 as the reading reaches them. llama.cpp requires each sequence's
positions to grow one by one, which this order keeps.

Invariants, between requests and when one is cancelled: sequence 0 holds positions
`[0, n_seq0)`, all known; sequence 1 holds only parked runs, at positions past `n_seq0`;
`cells[p]` is the token at position `p` of either, or `HOLE`.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import AssistError
from assistant.llm.kv_plan import HOLE, Plan, plan_reuse

log = logging.getLogger(__name__)

CHUNK_TARGET_S = 0.04
"""Seconds one prompt chunk should take: the longest a cancel waits while a prompt is read."""
FIRST_CHUNK = 32
MIN_CHUNK = 8
_PARKED = 1
_backend = threading.Lock()
_backend_ready = False


def physical_cores() -> int:
    """CPU cores this process may use, counting a core's hyper-threads once: llama.cpp runs
    best with one thread per core (llama-cpp-python's default of half the logical CPUs leaves
    a 2-core machine without SMT one thread, and generation 30 % slower)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def _llama() -> Any:
    """The bindings, imported only when a model is really loaded (they load the C library)."""
    global _backend_ready
    import llama_cpp

    with _backend:
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


class LlamaRuntime:
    """A loaded model and its one context. Not thread-safe: one request at a time uses it
    (the scheduler in front of it says which)."""

    def __init__(
        self, path: str | os.PathLike[str], *, n_ctx: int, n_threads: int, n_gpu_layers: int
    ) -> None:
        lib = self.lib = _llama()
        from llama_cpp import _logger as llama_logger

        captured = io.StringIO()
        # llama.cpp says why a load failed only in its log: capture it for the error message,
        # at the Python level (redirecting file descriptors would swallow a language server's
        # protocol on stdout meanwhile).
        llama_logger.set_verbose(True)
        try:
            with contextlib.redirect_stderr(captured):
                params = lib.llama_model_default_params()
                params.n_gpu_layers = n_gpu_layers
                self.model = lib.llama_model_load_from_file(str(path).encode(), params)
                if not self.model:
                    raise self._load_error(path, captured.getvalue())
                self.vocab = lib.llama_model_get_vocab(self.model)
                cparams = lib.llama_context_default_params()
                cparams.n_ctx = n_ctx
                cparams.n_batch = cparams.n_ubatch = min(512, n_ctx)
                cparams.n_threads = cparams.n_threads_batch = n_threads or physical_cores()
                cparams.n_seq_max = 2  # the prompt, and the runs parked for it
                cparams.kv_unified = True  # one buffer: parking a run moves no data
                self.ctx = lib.llama_init_from_model(self.model, cparams)
                if not self.ctx:
                    lib.llama_model_free(self.model)
                    raise self._load_error(path, captured.getvalue())
        finally:
            llama_logger.set_verbose(False)
            log.debug("llama.cpp output while loading:\n%s", captured.getvalue())
        self.memory = lib.llama_get_memory(self.ctx)
        self.n_ctx = int(lib.llama_n_ctx(self.ctx))
        self.n_batch = int(lib.llama_n_batch(self.ctx))
        self.n_vocab = int(lib.llama_vocab_n_tokens(self.vocab))
        self.can_shift = bool(lib.llama_memory_can_shift(self.memory))
        self.threads = int(cparams.n_threads)
        self.cells: list[int] = []
        self.n_seq0 = 0
        self._chunk = FIRST_CHUNK
        self.prompt_speed = 0.0
        """Prompt tokens/s over recent chunks (a moving average; 0 before the first)."""

    @staticmethod
    def _load_error(path: str | os.PathLike[str], output: str) -> AssistError:
        tail = [ln for ln in output.strip().splitlines() if ln.strip()][-1:] or ["no details"]
        return AssistError(
            f"{path}: llama.cpp could not load this model: {tail[0]}",
            "check that the file is complete and its architecture is supported",
        )

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None

    # -- tokens ----------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        """Tokens of `text`; special-token texts are parsed only when asked (trusted text)."""
        data = text.encode("utf-8", "surrogatepass")
        size = len(data) + 8
        buf = (ctypes.c_int32 * size)()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
        if n < 0:  # the buffer was too small: -n is what is needed
            size = -n
            buf = (ctypes.c_int32 * size)()
            n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
        return list(buf[:n])

    def piece(self, token: int, *, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> bytes:
        return b"".join(self.piece(t, special=special) for t in tokens)

    # -- the KV cache ----------------------------------------------------------------------

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.memory, True)
        self.cells, self.n_seq0 = [], 0

    def plan(self, prompt: Sequence[int]) -> Plan:
        """How `prompt` (all of it is to be held) gets into the cache from what it holds."""
        return plan_reuse(self.cells, prompt, shift=self.can_shift)

    def prepare(
        self,
        prompt: Sequence[int],
        plan: Plan,
        *,
        cancel: threading.Event,
        deadline: float | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> bool:
        """Make the cache hold `prompt` (the tokens of `plan`): moves first, then the gaps read
        in chunks, checking `cancel` and the `deadline` (perf_counter) between them. False
        when stopped early: what was read stays, and the next plan starts from it.
        `on_chunk` hears how many prompt tokens are in the cache after each chunk."""
        self._park(plan, prompt)
        for kind, start, end in plan.steps():
            if kind == "move":  # the reading has reached a parked run: it joins sequence 0
                self._seq_cp(_PARKED, 0, start, end)
                self._seq_rm(_PARKED, start, end)
                self.n_seq0 = end
                continue
            at = start
            while at < end:
                if cancel.is_set() or (deadline is not None and time.perf_counter() >= deadline):
                    return False
                part = list(prompt[at : min(end, at + self._chunk)])
                began = time.perf_counter()
                self.decode(part)
                self._adapt_chunk(len(part), time.perf_counter() - began)
                at += len(part)
                if on_chunk is not None:
                    on_chunk(at)
        return True

    def _park(self, plan: Plan, prompt: Sequence[int]) -> None:
        """Everything past the shared start leaves sequence 0: runs a move uses wait in
        sequence 1 at their new places, the rest is freed."""
        keep = plan.keep
        if not plan.moves:
            self._seq_rm(0, keep, -1)
            self._seq_rm(_PARKED, -1, -1)
        else:
            if self.n_seq0 > keep:
                self._seq_cp(0, _PARKED, keep, -1)
                self._seq_rm(0, keep, -1)
            at = keep
            for m in plan.moves:  # in order on both sides
                if m.src > at:
                    self._seq_rm(_PARKED, at, m.src)
                at = m.src + m.length
            self._seq_rm(_PARKED, at, -1)
            # A run never lands on one not yet moved: leftward ones front to back, rightward
            # ones back to front (memmove's rule).
            left = [m for m in plan.moves if m.dst < m.src]
            right = [m for m in plan.moves if m.dst > m.src]
            for m in [*left, *reversed(right)]:
                self.lib.llama_memory_seq_add(
                    self.memory, _PARKED, m.src, m.src + m.length, m.dst - m.src
                )
        self.n_seq0 = min(self.n_seq0, keep)
        cells = self.cells[:keep] + [HOLE] * max(0, plan.total - keep)
        for m in plan.moves:
            cells[m.dst : m.dst + m.length] = prompt[m.dst : m.dst + m.length]
        self.cells = cells

    def decode(self, tokens: Sequence[int]) -> None:
        """Read `tokens` into sequence 0 right after what it holds (logits for the last)."""
        n = len(tokens)
        if n == 0:
            return
        if self.n_seq0 + n > self.n_ctx:
            raise AssistError(
                f"the prompt does not fit the {self.n_ctx}-token context",
                "raise model.n_ctx or send less text",
            )
        array = (ctypes.c_int32 * n)(*tokens)
        # Positions and sequence left out: llama.cpp continues sequence 0 where it ends.
        rc = self.lib.llama_decode(self.ctx, self.lib.llama_batch_get_one(array, n))
        if rc != 0:
            self.clear()  # an unknown state is not worth keeping
            raise AssistError(
                f"llama.cpp could not read the prompt (llama_decode returned {rc})",
                "raise model.n_ctx, or send less text" if rc == 1 else "see the log",
            )
        start = self.n_seq0
        if len(self.cells) < start + n:
            self.cells.extend([HOLE] * (start + n - len(self.cells)))
        self.cells[start : start + n] = tokens
        self.n_seq0 = start + n

    def _seq_rm(self, seq: int, p0: int, p1: int) -> None:
        self.lib.llama_memory_seq_rm(self.memory, seq, p0, p1)

    def _seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        self.lib.llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def _adapt_chunk(self, size: int, seconds: float) -> None:
        """The next chunk size: what takes about CHUNK_TARGET_S at the speed just measured,
        a power of two within [MIN_CHUNK, n_batch]."""
        if seconds <= 0 or size < self._chunk:
            return
        rate = size / seconds
        self.prompt_speed = rate if not self.prompt_speed else 0.8 * self.prompt_speed + 0.2 * rate
        wanted = size * CHUNK_TARGET_S / seconds
        chunk = MIN_CHUNK
        while chunk * 2 <= min(wanted, self.n_batch):
            chunk *= 2
        self._chunk = chunk

    # -- sampling --------------------------------------------------------------------------

    def generate(
        self, last: int, *, temperature: float, grammar: str | None = None
    ) -> Iterator[int]:
        """Tokens sampled after the prompt whose last token is `last` (the rest is in the
        cache): each is read into the cache before the next is sampled, so a later prompt
        that continues with them reuses them."""
        chain = self._sampler(temperature, grammar)
        try:
            self.decode([last])
            while True:
                token = int(self.lib.llama_sampler_sample(chain, self.ctx, -1))
                yield token
                self.decode([token])
        finally:
            self.lib.llama_sampler_free(chain)

    def check_grammar(self, grammar: str) -> None:
        """Raise the error a grammar llama.cpp cannot parse gets, before anything runs."""
        self.lib.llama_sampler_free(self._sampler(0.0, grammar))

    def _sampler(self, temperature: float, grammar: str | None) -> Any:
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if grammar is not None:
            rule = lib.llama_sampler_init_grammar(self.vocab, grammar.encode("utf-8"), b"root")
            if not rule:  # a NULL sampler in the chain would crash when sampling begins
                lib.llama_sampler_free(chain)
                raise AssistError(
                    "llama.cpp cannot parse this grammar (GBNF)", "its parser's message is logged"
                )
            lib.llama_sampler_chain_add(chain, rule)
        if temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:  # llama-cpp-python's defaults for the rest, as before
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(40))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(0.95, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(0.05, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(temperature))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(lib.LLAMA_DEFAULT_SEED))
        return chain
