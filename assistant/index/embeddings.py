"""Text embeddings run by llama.cpp, many texts a batch.

The default model is all-MiniLM-L6-v2, converted once to GGUF by `assistant.minilm`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from assistant.errors import AssistError
from assistant.index.minilm import (
    _sha256,
    _stamp_path,
    default_embedding_model_path,
    minilm_max_tokens,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

# Tokens in one llama.cpp batch (= ubatch = context: an encoder sees a whole batch at once).
# Flash attention matters most: ggml's CPU flash-attention kernel skips the masked blocks
# between packed sequences, the plain path computes them. bench/embedding_speed.py, 200 code
# chunks, 2 cores: 512 -> 8.2k tokens/s, 1024 -> 7.3k, 2048 -> 5.7k, 512 without flash
# attention -> 3.7k. llama.cpp aborts on sizes that are neither powers of two nor n*256.
DEFAULT_BATCH_TOKENS = 512

FloatArray = npt.NDArray[np.float32]


class Embedder:
    """An embedding GGUF run in-process by llama.cpp; rows come back L2-normalised.

    One llama.cpp context is shared, so calls are serialised by a lock. Sequences of one
    batch attend only to themselves, so batching changes a vector only by float noise
    (up to ~2e-4 per element with flash attention, whose kernels vary with batch shape).
    """

    def __init__(
        self,
        path: Path,
        llama: Llama,
        *,
        identity: str,
        max_tokens: int,
        batch_tokens: int,
    ) -> None:
        import llama_cpp

        self.path = path
        self.llama = llama
        self._identity = identity
        self._dim = int(llama.n_embd())
        self.max_tokens = max_tokens
        self.batch_tokens = batch_tokens
        self._max_seqs = int(llama.context_params.n_seq_max)
        self._lock = threading.Lock()
        self._batch = llama_cpp.llama_batch_init(batch_tokens, 0, 1)
        self._batch_free = llama_cpp.llama_batch_free
        self._prefix, self._suffix = self._special_ends()

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        max_tokens: int | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        flash_attn: bool = True,
        identity: str | None = None,
    ) -> Embedder:
        """Load `path`; texts are cut to `max_tokens` (default: the model's trained context),
        and to `batch_tokens`, since a text must fit one batch."""
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp import _logger as llama_logger

        path = Path(path)
        if batch_tokens < 1 or (batch_tokens % 256 and batch_tokens & (batch_tokens - 1)):
            # llama.cpp aborts the process (GGML_ASSERT in mul_mat) on e.g. 300, 384 or 640.
            raise AssistError(f"embedding batch of {batch_tokens} tokens is not supported",
                              "use a power of two or a multiple of 256, e.g. 512")  # fmt: skip
        if not path.is_file():
            raise AssistError(
                f"{path}: embedding model not found",
                "check the path, or leave it unset for the default model",
            )
        captured = io.StringIO()
        # verbose=False would redirect file descriptors 1 and 2 to /dev/null while loading,
        # which breaks a language server talking on stdio. Capture at the Python level instead.
        try:
            with contextlib.redirect_stderr(captured):
                llama = Llama(
                    model_path=str(path),
                    embedding=True,
                    # n_ctx bounds n_batch in llama-cpp-python; an encoder needs the whole
                    # batch in one ubatch. Positions restart per sequence, so a context
                    # larger than the model's is fine while each text fits the model's.
                    n_ctx=batch_tokens,
                    n_batch=batch_tokens,
                    n_ubatch=batch_tokens,
                    flash_attn=flash_attn,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            log.debug("llama.cpp output while loading:\n%s", captured.getvalue())
            tail = captured.getvalue().strip().splitlines()[-1:] or [str(exc)]
            raise AssistError(f"{path}: llama.cpp could not load this embedding model: "
                              f"{tail[0]}",
                              "check that the file is complete and is an embedding model",
                              ) from None  # fmt: skip
        finally:
            llama_logger.set_verbose(False)
        log.debug("llama.cpp output while loading:\n%s", captured.getvalue())
        llama.verbose = False
        trained = int(llama_cpp.llama_model_n_ctx_train(llama.model)) or batch_tokens
        limit = min(max_tokens or trained, trained, batch_tokens)
        if identity is None:
            identity = f"{path.name}:{_sha256(path)[:12]}"
        return cls(path, llama, identity=identity, max_tokens=limit, batch_tokens=batch_tokens)

    @property
    def identity(self) -> str:
        """Names the model file, its content and the truncation; an index rebuilds vectors
        when it changes."""
        return f"{self._identity}/max{self.max_tokens}"

    @property
    def dim(self) -> int:
        return self._dim

    def close(self) -> None:
        import llama_cpp

        with self._lock:
            if self._batch is not None:
                llama_cpp.llama_batch_free(self._batch)
                self._batch = None
            self.llama.close()

    def __del__(self) -> None:
        batch = getattr(self, "_batch", None)
        free = getattr(self, "_batch_free", None)
        if batch is not None and free is not None:
            free(batch)  # no import here: at interpreter exit imports fail
            self._batch = None

    # -- tokens --------------------------------------------------------------------------

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        return list(
            self.llama.tokenize(text.encode("utf-8", "replace"), add_bos=special, special=False)
        )

    def _special_ends(self) -> tuple[list[int], list[int]]:
        """The tokens the vocabulary wraps every text in ([CLS] … [SEP] for BERT)."""
        bare = self._tokenize("a", special=False)
        full = self._tokenize("a", special=True)
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], full[start + len(bare) :]
        return [], []

    def tokens(self, text: str) -> list[int]:
        """The tokens `embed` runs for `text`: wrapped in the specials, cut to max_tokens."""
        budget = self.max_tokens - len(self._prefix) - len(self._suffix)
        # Tokenising a whole large file only to keep its start is slow; a WordPiece token
        # covers at least one character, so a prefix that still yields more tokens than
        # the budget tokenises the kept part identically.
        cut = budget * 16
        body: list[int] = []
        if len(text) > cut:
            body = self._tokenize(text[:cut], special=False)
            if len(body) <= budget + 1:
                body = []
        if not body:
            body = self._tokenize(text, special=False)
        return self._prefix + body[: max(budget, 0)] + self._suffix

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without the specials and without truncation."""
        return len(self._tokenize(text, special=False))

    # -- vectors -------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], cancel: threading.Event | None = None) -> FloatArray:
        """L2-normalised float32 rows, one per text, in order; empty texts are fine.

        Texts are sorted by length and packed many to a llama.cpp batch. `cancel` is checked
        between batches; once set, the call returns early and the rows it did not reach are
        zero, so a caller that passes `cancel` checks it before keeping the result.
        """
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        token_lists = [self.tokens(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(token_lists[i]))
        with self._lock:
            if self._batch is None:
                raise AssistError("the embedding model was closed", "load it again")
            for group in self._pack(order, token_lists):
                if cancel is not None and cancel.is_set():
                    break
                out[group] = self._run_batch([token_lists[i] for i in group])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _pack(self, order: list[int], token_lists: list[list[int]]) -> Iterator[list[int]]:
        group: list[int] = []
        used = 0
        for i in order:
            n = len(token_lists[i])
            if group and (used + n > self.batch_tokens or len(group) >= self._max_seqs):
                yield group
                group, used = [], 0
            group.append(i)
            used += n
        if group:
            yield group

    def _run_batch(self, seqs: list[list[int]]) -> FloatArray:
        import llama_cpp

        batch = self._batch
        assert batch is not None
        ctx = self.llama.ctx
        n = 0
        for seq_id, tokens in enumerate(seqs):
            for pos, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq_id
                # Mean pooling needs every token's output.
                batch.logits[n] = 1
                n += 1
        batch.n_tokens = n
        memory = llama_cpp.llama_get_memory(ctx)
        if memory:  # encoder-only models keep no cache; causal embedding models do
            llama_cpp.llama_memory_clear(memory, True)
        rc = llama_cpp.llama_decode(ctx, batch)
        if rc != 0:
            raise AssistError(
                f"llama.cpp could not embed a batch of {n} tokens (code {rc})",
                "lower the embedding batch size",
            )
        result = np.empty((len(seqs), self._dim), dtype=np.float32)
        for seq_id in range(len(seqs)):
            ptr = llama_cpp.llama_get_embeddings_seq(ctx, seq_id)
            if not ptr:
                raise AssistError(
                    "llama.cpp returned no pooled embedding",
                    "the model needs a pooling type (mean or cls)",
                )
            result[seq_id] = np.ctypeslib.as_array(ptr, shape=(self._dim,))
        return result


def load_embedder(
    path: Path | None = None,
    *,
    max_tokens: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> Embedder:
    """The embedder for `path`, or the converted all-MiniLM-L6-v2 when `path` is None.

    Texts are cut to `max_tokens`: by default the model's trained context for a file, and
    sentence-transformers' 256 for MiniLM (its positions past that were never tuned).
    """
    if path is None:
        default = default_embedding_model_path()
        # The cache file's name already carries the source digest; its own digest was
        # checked against the stamp, so reuse that instead of hashing the file again.
        stamp = _stamp_path(default).read_text(encoding="ascii").strip()
        return Embedder.load(
            default,
            max_tokens=max_tokens or minilm_max_tokens(),
            batch_tokens=batch_tokens,
            identity=f"{default.name}:{stamp[:12]}",
        )
    return Embedder.load(path, max_tokens=max_tokens, batch_tokens=batch_tokens)
