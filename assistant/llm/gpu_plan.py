"""How many layers to put on the GPU: `model.n_gpu_layers = "auto"`.

The usual advice is "raise the GPU layers until it stops helping": about 35 of a 7B model's
layers on an 8 GB card, all of them on 24 GB. This does that arithmetic from the GGUF's own
tensor table instead of by trial: each repeating layer costs its weights plus its share of the
KV cache for the configured context; the output layer comes last; a fixed compute buffer and a
share of the free memory are kept back as headroom. llama.cpp offloads the *last* n layers,
which is what the count here means.

`plan_layers` is pure (the GGUF header and the memory sizes in, the plan out) so it is tested on
real headers with given sizes; `gpu_memory` asks the GPU backend what is free, when there is one.
"""

from __future__ import annotations

import ctypes
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.llm.gguf import GGUFInfo

log = logging.getLogger(__name__)

GIB = 1 << 30
HEADROOM = 0.10
"""Share of the free GPU memory left unused: other programs, fragmentation, driver growth."""
COMPUTE_BUFFER = 512 << 20
"""Scratch memory llama.cpp allocates on the GPU for one batch (grows with the vocabulary)."""
_LAYER = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class GpuPlan:
    layers: int
    """Value for llama.cpp's n_gpu_layers: 0 (CPU only) up to block_count + 1 (all)."""
    block_count: int
    gpu_bytes: int
    """Weights, KV cache and compute buffer the plan puts on the GPU."""
    free_bytes: int
    total_bytes: int
    reason: str

    def describe(self) -> str:
        """`28 of 32 layers on GPU, 5.1 of 8.0 GiB`."""
        if self.layers <= 0:
            return f"CPU only: {self.reason}"
        shown = min(self.layers, self.block_count)
        return (
            f"{shown} of {self.block_count} layers on GPU"
            + (" + output" if self.layers > self.block_count else "")
            + f", {self.gpu_bytes / GIB:.1f} of {self.total_bytes / GIB:.1f} GiB"
        )


def layer_bytes(info: GGUFInfo) -> tuple[list[int], int]:
    """Bytes of weights per repeating layer, and of the output layer (`output.*`, or the
    tied embedding when there is no separate output matrix)."""
    blocks = int(info.arch_key("block_count", 0) or 0)
    per_layer = [0] * blocks
    output = 0
    for t in info.tensors:
        m = _LAYER.match(t.name)
        if m and int(m.group(1)) < blocks:
            per_layer[int(m.group(1))] += t.nbytes
        elif t.name.startswith("output"):
            output += t.nbytes
    if not any(t.name == "output.weight" for t in info.tensors):
        output += next((t.nbytes for t in info.tensors if t.name == "token_embd.weight"), 0)
    return per_layer, output


def kv_bytes_per_layer(info: GGUFInfo, n_ctx: int, cache_bytes: int = 2) -> int:
    """K and V for one layer at `n_ctx` tokens (f16 cache by default)."""
    n_embd = int(info.arch_key("embedding_length", 0) or 0)
    heads = info.arch_key("attention.head_count", 0) or 0
    heads = int(max(heads) if isinstance(heads, list) else heads)
    kv_heads = info.arch_key("attention.head_count_kv", heads) or heads
    kv_heads = int(max(kv_heads) if isinstance(kv_heads, list) else kv_heads)
    if not n_embd or not heads:
        return 0
    k_dim = int(info.arch_key("attention.key_length", n_embd // heads) or n_embd // heads)
    v_dim = int(info.arch_key("attention.value_length", k_dim) or k_dim)
    return n_ctx * kv_heads * (k_dim + v_dim) * cache_bytes


def plan_layers(
    info: GGUFInfo,
    n_ctx: int,
    free_bytes: int | None,
    total_bytes: int | None = None,
    *,
    headroom: float = HEADROOM,
    compute_buffer: int = COMPUTE_BUFFER,
) -> GpuPlan:
    """The most layers that fit in `free_bytes` with headroom (None: no GPU backend)."""
    per_layer, output = layer_bytes(info)
    blocks = len(per_layer)
    total = total_bytes if total_bytes is not None else (free_bytes or 0)
    if free_bytes is None:
        return GpuPlan(0, blocks, 0, 0, 0, "no GPU backend in this llama.cpp build")
    if not blocks:
        return GpuPlan(0, 0, 0, free_bytes, total, "the GGUF does not say how many layers")
    kv = kv_bytes_per_layer(info, n_ctx)
    budget = int(free_bytes * (1 - headroom)) - compute_buffer
    used, layers = compute_buffer, 0
    for weights in reversed(per_layer):  # llama.cpp offloads the last layers first
        if budget - (used - compute_buffer) < weights + kv:
            break
        used += weights + kv
        layers += 1
    if layers == blocks and budget - (used - compute_buffer) >= output:
        used += output
        layers += 1  # n_layer + 1 puts the output layer there too
    if layers == 0:
        need = (per_layer[-1] + kv + compute_buffer) / GIB
        return GpuPlan(0, blocks, 0, free_bytes, total,
                       f"not even one layer fits ({need:.1f} GiB needed, "
                       f"{free_bytes / GIB:.1f} GiB free)")  # fmt: skip
    why = "everything fits" if layers > blocks else "as many layers as fit with headroom"
    return GpuPlan(layers, blocks, used, free_bytes, total, why)


def gpu_memory() -> tuple[int, int] | None:
    """(free, total) bytes of the first GPU that llama.cpp's ggml backends see, or None when
    the build has no GPU backend (or the library cannot be asked)."""
    try:
        import llama_cpp

        if not llama_cpp.llama_supports_gpu_offload():
            return None
        lib_dir = Path(llama_cpp.__file__).parent / "lib"
        ggml = ctypes.CDLL(str(next(lib_dir.glob("libggml.*"))))
        ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
        ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
        ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        ggml.ggml_backend_dev_type.restype = ctypes.c_int
        ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        ggml.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)
        ]  # fmt: skip
        for i in range(ggml.ggml_backend_dev_count()):
            dev = ggml.ggml_backend_dev_get(i)
            if ggml.ggml_backend_dev_type(dev) not in (1, 2):  # GPU, integrated GPU
                continue
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
            return int(free.value), int(total.value)
    except (OSError, AttributeError, StopIteration) as exc:
        log.debug("cannot ask the GPU backend for its memory: %s", exc)
    return None


def resolve_layers(setting: int | str, info: GGUFInfo, n_ctx: int) -> tuple[int, GpuPlan | None]:
    """llama.cpp's n_gpu_layers for `model.n_gpu_layers` (a number, or "auto": planned)."""
    if setting != "auto":
        return int(setting), None
    memory = gpu_memory()
    plan = plan_layers(info, n_ctx, *(memory or (None, None)))
    log.info("GPU layers: %s", plan.describe())
    return plan.layers, plan
