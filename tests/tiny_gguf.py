"""Tiny random-weight llama-architecture GGUF files, written with the `gguf` package.

They load and generate in real llama.cpp in milliseconds. Weights are random except for one
deliberate bias: every embedding carries a large constant in dimension 0 and the output row of
`favorite` reads that dimension, so greedy decoding emits `favorite` again and again. That gives
tests a model that provably stops (favorite = a stop token) or provably runs on (a letter).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

FAMILY_TOKENS: dict[str, list[str]] = {
    "qwen": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
             "<|repo_name|>", "<|file_sep|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "starcoder": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<repo_name>",
                  "<file_sep>", "<|endoftext|>"],
    "codellama": ["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"],
    "codestral": ["[PREFIX]", "[SUFFIX]", "[MIDDLE]"],
    "deepseek": ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>",
                 "<|EOT|>"],
    "codegemma": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>",
                  "<eos>"],
    "none": [],
}  # fmt: skip

# Metadata ids written for the `metadata=True` variant: role -> token text.
FAMILY_METADATA: dict[str, dict[str, str]] = {
    "qwen": {"fim_pre": "<|fim_prefix|>", "fim_suf": "<|fim_suffix|>", "fim_mid": "<|fim_middle|>",
             "fim_pad": "<|fim_pad|>", "fim_rep": "<|repo_name|>", "fim_sep": "<|file_sep|>"},
    "starcoder": {"fim_pre": "<fim_prefix>", "fim_suf": "<fim_suffix>", "fim_mid": "<fim_middle>",
                  "fim_pad": "<fim_pad>", "fim_rep": "<repo_name>", "fim_sep": "<file_sep>"},
    "codellama": {"prefix": "▁<PRE>", "suffix": "▁<SUF>", "middle": "▁<MID>", "eot": "▁<EOT>"},
    "codestral": {"fim_pre": "[PREFIX]", "fim_suf": "[SUFFIX]"},
    "deepseek": {"fim_pre": "<｜fim▁begin｜>", "fim_suf": "<｜fim▁hole｜>",
                 "fim_mid": "<｜fim▁end｜>"},
    "codegemma": {"fim_pre": "<|fim_prefix|>", "fim_suf": "<|fim_suffix|>",
                  "fim_mid": "<|fim_middle|>"},
}  # fmt: skip

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

WORDS = ["def", "return", "self", "class", "import", "print", "hello", "world", "the", "and"]


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode table: every byte is a printable one-character token."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs), strict=True))
    return [table[b] for b in range(256)]


def write_tiny_gguf(
    path: Path,
    *,
    family: str = "none",
    metadata: bool = False,
    favorite: str | None = "a",
    chat_template: str | None = None,
    extra_tokens: list[str] | None = None,
    extra_words: list[str] | None = None,
    n_embd: int = 64,
    n_layers: int = 2,
    seed: int = 0,
    context_length: int = 512,
) -> Path:
    """Write a GGUF of a few hundred KB; returns `path`.

    `extra_words` become ordinary tokens (through merges), so `favorite` may be one: a model
    that writes `[1]` again and again, say.
    """
    rng = np.random.default_rng(seed)
    byte_tokens = _byte_tokens()
    merges: list[str] = []
    words: list[str] = []
    # A few real merges, so the BPE merge table is exercised.
    for word in [*WORDS, *(extra_words or [])]:
        pieces = list(word)
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            words.append(pieces[0])
    normal = list(dict.fromkeys(byte_tokens + words))
    specials = ["<s>", "</s>", *FAMILY_TOKENS[family], *(extra_tokens or [])]
    if chat_template and "<|im_start|>" not in specials:
        specials += ["<|im_start|>", "<|im_end|>"]
    specials = list(dict.fromkeys(specials))
    tokens = normal + specials
    types = [gguf.TokenType.NORMAL] * len(normal) + [gguf.TokenType.CONTROL] * len(specials)
    n_vocab = len(tokens)
    index = {t: i for i, t in enumerate(tokens)}

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"tiny-{family}")
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(n_embd * 2)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(n_embd // 4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(index["<s>"])
    w.add_eos_token_id(index["</s>"])
    w.add_add_bos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)
    if metadata:
        for role, text in FAMILY_METADATA[family].items():
            w.add_uint32(f"tokenizer.ggml.{role}_token_id", index[text])

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embd = rand(n_vocab, n_embd, scale=0.1)
    embd[:, 0] = 10.0  # the constant the favorite's output row reads
    out = rand(n_vocab, n_embd, scale=0.01)
    if favorite is not None:
        out[index[favorite] if favorite in index else index[byte_tokens[ord(favorite)]], 0] = 1.0
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", out)
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", rand(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(n_embd * 2, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(n_embd * 2, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(n_embd, n_embd * 2))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
