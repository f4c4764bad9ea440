"""A random-weight GGUF with the shape of a 0.5B code model, for speed figures.

No code model can be downloaded here, but llama.cpp's speed depends on a model's shape, not on
its weights: this writes Qwen2.5-Coder-0.5B's architecture (qwen2: 24 layers of 896, 14 query
and 2 key/value heads, a 4,864 feed-forward, a 151,936-token vocabulary, tied embeddings) in
Q8_0, as its official GGUF ships, with Qwen's FIM and repo-level tokens, so assist drives it
exactly as it would drive the real one (`assist model` shows the FIM format).

The tokenizer is the embedded SmolLM2's (a byte-level BPE trained on code and text, so prompts
have about as many tokens as with Qwen's), padded to Qwen's vocabulary size with ordinary tokens
the tokenizer never produces: the output layer is as large as the real one. What it writes is
noise; only its timings mean anything.

    python bench/code_model.py /tmp/code-0.5b.gguf     # about 530 MB, 10-20 s
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType

from assistant.llm.source import embedded_model_path

SHAPE = {"n_vocab": 151_936, "n_embd": 896, "n_layer": 24, "n_head": 14, "n_head_kv": 2,
         "n_ff": 4_864, "context": 32_768, "rope_theta": 1_000_000.0}  # fmt: skip
FIM = ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
       "<|file_sep|>"]  # fmt: skip


def tokenizer() -> tuple[list[str], list[int], list[str]]:
    """SmolLM2's tokens, types and merges, with Qwen's FIM tokens and padding added."""
    reader = gguf.GGUFReader(str(embedded_model_path()))
    tokens = [str(t) for t in reader.fields["tokenizer.ggml.tokens"].contents()]
    types = [int(t) for t in reader.fields["tokenizer.ggml.token_type"].contents()]
    merges = [str(m) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    tokens += FIM
    types += [gguf.TokenType.CONTROL] * len(FIM)
    pad = SHAPE["n_vocab"] - len(tokens)
    tokens += [f"Ġt{i}" for i in range(pad)]  # " t123": never produced by the merges
    types += [gguf.TokenType.NORMAL] * pad
    return tokens, types, merges


def write(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tokens, types, merges = tokenizer()
    index = {t: i for i, t in enumerate(tokens)}
    s = SHAPE
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("random-0.5b-code-shape")
    w.add_context_length(s["context"])
    w.add_embedding_length(s["n_embd"])
    w.add_block_count(s["n_layer"])
    w.add_feed_forward_length(s["n_ff"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_head_kv"])
    w.add_rope_freq_base(s["rope_theta"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(index["<|endoftext|>"])
    w.add_eos_token_id(index["<|endoftext|>"])
    w.add_add_bos_token(False)
    for role, text in (("fim_pre", "<|fim_prefix|>"), ("fim_mid", "<|fim_middle|>"),
                       ("fim_suf", "<|fim_suffix|>"), ("fim_pad", "<|fim_pad|>"),
                       ("fim_rep", "<|repo_name|>"), ("fim_sep", "<|file_sep|>")):  # fmt: skip
        w.add_uint32(f"tokenizer.ggml.{role}_token_id", index[text])

    def q8(rows: int, cols: int) -> np.ndarray:
        data = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
        return gguf.quants.quantize(data, GGMLQuantizationType.Q8_0)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def bias(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 0.02).astype(np.float32)

    e, kv = s["n_embd"], s["n_embd"] // s["n_head"] * s["n_head_kv"]
    w.add_tensor("token_embd.weight", q8(s["n_vocab"], e), raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", ones(e))
    for i in range(s["n_layer"]):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(e))
        for name, rows in (("attn_q", e), ("attn_k", kv), ("attn_v", kv)):
            w.add_tensor(b + name + ".weight", q8(rows, e), raw_dtype=GGMLQuantizationType.Q8_0)
            w.add_tensor(b + name + ".bias", bias(rows))
        w.add_tensor(b + "attn_output.weight", q8(e, e), raw_dtype=GGMLQuantizationType.Q8_0)
        w.add_tensor(b + "ffn_norm.weight", ones(e))
        for name in ("ffn_gate", "ffn_up"):
            w.add_tensor(
                b + name + ".weight", q8(s["n_ff"], e), raw_dtype=GGMLQuantizationType.Q8_0
            )
        w.add_tensor(b + "ffn_down.weight", q8(e, s["n_ff"]), raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    started = time.perf_counter()
    write(args.out)
    size = args.out.stat().st_size / 1e6
    print(f"{args.out}: {size:.0f} MB in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
