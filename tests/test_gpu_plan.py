"""`model.n_gpu_layers = "auto"`: the plan from real GGUF headers and given memory sizes.

The 7B header is a real GGUF header (written by the `gguf` package, with Llama-2-7B's tensor
table in Q4_K/Q6_K) without its 3.8 GB of weights: the planner reads only the header. The
embedded SmolLM2 file is read whole, as a user's model would be.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from assistant.config import load_settings
from assistant.llm.gguf import read_gguf
from assistant.llm.gpu_plan import GIB, kv_bytes_per_layer, layer_bytes, plan_layers
from assistant.llm.source import embedded_model_path

Q4_K, Q6_K, F32 = (
    gguf.GGMLQuantizationType.Q4_K,
    gguf.GGMLQuantizationType.Q6_K,
    gguf.GGMLQuantizationType.F32,
)


def llama7b_header(path: Path) -> Path:
    """The header of a Llama-2-7B Q4_K_M-like GGUF: 32 layers, 4096 wide, 32 KV heads."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(32)
    w.add_embedding_length(4096)
    w.add_head_count(32)
    w.add_head_count_kv(32)
    w.add_context_length(4096)
    w.add_feed_forward_length(11008)

    def tensor(name: str, shape: tuple[int, ...], kind: gguf.GGMLQuantizationType) -> None:
        """`shape` in ggml order (row length first), as the GGUF stores it."""
        per_block, block_bytes = gguf.GGML_QUANT_SIZES[kind]
        nbytes = int(np.prod(shape)) // per_block * block_bytes
        rows = tuple(reversed(shape[1:]))
        if kind == F32:
            w.add_tensor_info(name, (*rows, shape[0]), np.dtype(np.float32), nbytes)
        else:  # quantized: the writer takes numpy's shape in bytes per row
            row_bytes = shape[0] // per_block * block_bytes
            w.add_tensor_info(name, (*rows, row_bytes), np.dtype(np.uint8), nbytes, raw_dtype=kind)

    tensor("token_embd.weight", (4096, 32000), Q4_K)
    for i in range(32):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensor(f"blk.{i}.{part}.weight", (4096, 4096), Q4_K)
        tensor(f"blk.{i}.ffn_gate.weight", (4096, 11008), Q4_K)
        tensor(f"blk.{i}.ffn_up.weight", (4096, 11008), Q4_K)
        tensor(f"blk.{i}.ffn_down.weight", (11008, 4096), Q6_K)
        tensor(f"blk.{i}.attn_norm.weight", (4096,), F32)
        tensor(f"blk.{i}.ffn_norm.weight", (4096,), F32)
    tensor("output_norm.weight", (4096,), F32)
    tensor("output.weight", (4096, 32000), Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def llama7b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llama7b_header(tmp_path_factory.mktemp("gguf") / "llama-7b-header.gguf")


def test_layer_sizes_come_from_the_tensor_table(llama7b: Path) -> None:
    info = read_gguf(llama7b)
    per_layer, output = layer_bytes(info)
    assert len(per_layer) == 32 and len(set(per_layer)) == 1
    assert 120e6 < per_layer[0] < 130e6  # ~3.9 GB of weights over 32 layers
    assert 100e6 < output < 110e6  # output.weight, Q6_K
    assert kv_bytes_per_layer(info, 4096) == 4096 * 32 * 256 * 2  # f16 K and V


@pytest.mark.parametrize(
    ("free_gib", "n_ctx", "expected"),
    [
        (24, 4096, 33),  # everything, output layer included
        (8, 4096, 33),
        (8, 16384, 18),  # a long context: 256 MiB of KV cache per layer
        (4, 4096, 17),  # (4 GiB x 0.9 - 512 MiB) / (125.5 MB weights + 67 MB KV)
        (0.5, 4096, 0),  # not even one layer
    ],
)
def test_the_plan_for_given_memory(
    llama7b: Path, free_gib: float, n_ctx: int, expected: int
) -> None:
    plan = plan_layers(read_gguf(llama7b), n_ctx, int(free_gib * GIB), int(free_gib * GIB))
    assert plan.layers == expected, plan
    assert plan.gpu_bytes <= free_gib * GIB * 0.9
    if expected:
        assert plan.describe().startswith(f"{min(expected, 32)} of 32 layers on GPU")
    else:
        assert plan.describe().startswith("CPU only: not even one layer fits")


def test_more_memory_never_means_fewer_layers(llama7b: Path) -> None:
    info = read_gguf(llama7b)
    counts = [plan_layers(info, 8192, int(g * GIB)).layers for g in (1, 2, 3, 4, 6, 8, 12, 16, 24)]
    assert counts == sorted(counts) and counts[0] < counts[-1] == 33


def test_without_a_gpu_backend_the_plan_is_cpu_only() -> None:
    info = read_gguf(embedded_model_path())
    plan = plan_layers(info, 4096, None)
    assert (plan.layers, plan.describe()) == (0, "CPU only: no GPU backend in this llama.cpp build")
    # The real file's tensors add up to the file, less its header (tokenizer included).
    assert 0.95 * info.file_size < sum(t.nbytes for t in info.tensors) < info.file_size
    assert plan_layers(info, 4096, 2 * GIB).layers == 31  # 30 layers and the output


def test_auto_is_the_default_and_numbers_still_work(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "x"), "HOME": str(tmp_path)}
    assert load_settings(tmp_path, env=env).model.n_gpu_layers == "auto"
    assert (
        load_settings(tmp_path, env={**env, "ASSIST_MODEL_N_GPU_LAYERS": "20"}).model.n_gpu_layers
        == 20
    )
    assert (
        load_settings(tmp_path, env={**env, "ASSIST_MODEL_N_GPU_LAYERS": "AUTO"}).model.n_gpu_layers
        == "auto"
    )
