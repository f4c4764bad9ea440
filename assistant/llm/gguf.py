"""GGUF metadata read straight from the file, before llama.cpp ever sees it.

A GGUF file is untrusted input, so this reader checks every length against the file size and
refuses anything that is not GGUF v2/v3 with a one-line `AssistError`. Reading our own header also
lets `assist model` describe a file without loading its weights.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from assistant.errors import AssistError

_MAGIC = b"GGUF"
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9
# Long arrays of numbers (token scores) are skipped, except those named here.
_KEEP_NUMERIC_ARRAY = 64
_KEEP_KEYS = frozenset({"tokenizer.ggml.token_type"})

FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip
# ggml tensor type -> name, for describing files without general.file_type.
TENSOR_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16",
}  # fmt: skip


# ggml type -> (values per block, bytes per block), from ggml's type traits.
_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
}  # fmt: skip


def tensor_bytes(shape: tuple[int, ...], ggml_type: int) -> int | None:
    """Bytes of a tensor's data from its type's block layout; None for an unknown type."""
    if ggml_type not in _BLOCKS:
        return None
    per_block, block_bytes = _BLOCKS[ggml_type]
    count = 1
    for d in shape:
        count *= d
    return -(-count // per_block) * block_bytes


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int
    offset: int = 0
    """Where its data starts, relative to the data section."""
    nbytes: int = 0
    """Bytes of data: from the type's block layout, or up to the next tensor's offset for a
    type this table does not know."""


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file says about itself."""

    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...] = field(repr=False)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    def arch_key(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def context_length(self) -> int | None:
        value = self.arch_key("context_length")
        return int(value) if value is not None else None

    @property
    def parameter_count(self) -> int:
        total = 0
        for t in self.tensors:
            n = 1
            for d in t.shape:
                n *= d
            total += n
        return total

    @property
    def quantization(self) -> str:
        ftype = self.metadata.get("general.file_type")
        if isinstance(ftype, int) and ftype in FILE_TYPES:
            return FILE_TYPES[ftype]
        counts: dict[str, int] = {}
        for t in self.tensors:
            name = TENSOR_TYPES.get(t.type, f"type{t.type}")
            counts[name] = counts.get(name, 0) + 1
        return max(counts, key=lambda k: counts[k]) if counts else "unknown"

    @property
    def tokens(self) -> list[str]:
        value = self.metadata.get("tokenizer.ggml.tokens", [])
        return value if isinstance(value, list) else []

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    def token_id(self, key: str) -> int | None:
        """The `tokenizer.ggml.<role>_token_id` id, if present and inside the vocabulary."""
        value = self.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(value, int) and 0 <= value < len(self.tokens):
            return value
        return None


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> AssistError:
        return AssistError(
            f"{self.path}: not a readable GGUF model ({what})",
            "pass a .gguf file made by llama.cpp's converters, or re-download it",
        )

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"truncated at byte {self.pos}")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(data)

    def scalar(self, vtype: int) -> Any:
        fmt, size = _SCALARS[vtype]
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self) -> int:
        return int(self.scalar(4))

    def u64(self) -> int:
        return int(self.scalar(10))

    def string(self) -> str:
        n = self.u64()
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = False) -> Any:
        if vtype in _SCALARS:
            return self.scalar(vtype)
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.u32()
            count = self.u64()
            if count > len(self.buf):  # every element takes at least one byte
                raise self.fail(f"array of {count} elements is longer than the file")
            if item_type in _SCALARS:
                fmt, size = _SCALARS[item_type]
                data = self.take(size * count)
                if count > _KEEP_NUMERIC_ARRAY and not keep:
                    return f"<{count} values>"
                return list(struct.unpack(f"<{count}{fmt[1]}", data))
            if item_type == _STRING:
                return [self.string() for _ in range(count)]
            if item_type == _ARRAY:
                return [self.value(_ARRAY) for _ in range(count)]
            raise self.fail(f"unknown array element type {item_type}")
        raise self.fail(f"unknown value type {vtype}")


_HINT = "pass --model PATH to a .gguf file, or unset ASSIST_MODEL to use the embedded default"


def require_model_file(path: str | os.PathLike[str]) -> Path:
    """`path` if it is a regular file, before anything opens it: a pipe named as the model would
    hang the open (and a commit waiting on the hook), a device would stream forever."""
    p = Path(path).expanduser()
    if not p.exists():
        raise AssistError(f"{p}: model file not found", _HINT)
    if p.is_dir():
        raise AssistError(f"{p}: is a directory, not a GGUF model file", _HINT)
    if not p.is_file():
        raise AssistError(f"{p}: not a regular file (a pipe, socket or device)", _HINT)
    return p


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse the header, metadata and tensor table; raise `AssistError` for anything else."""
    p = require_model_file(path)
    hint = _HINT
    try:
        with open(os.open(p, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise AssistError(f"{p}: not a regular file (a pipe, socket or device)", hint)
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                raise AssistError(f"{p}: not a GGUF model (only {size} bytes)", hint)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(buf, p, size)
    except PermissionError:
        raise AssistError(
            f"{p}: permission denied reading the model", "check its permissions"
        ) from None
    except OSError as exc:
        raise AssistError(f"{p}: cannot read the model: {exc.strerror}", hint) from None


def _parse(buf: mmap.mmap, path: Path, size: int) -> GGUFInfo:
    r = _Reader(buf, path)
    if r.take(4) != _MAGIC:
        raise AssistError(
            f"{path}: not a GGUF model file (wrong magic bytes)",
            "llama.cpp needs GGUF; convert safetensors/PyTorch weights with convert_hf_to_gguf.py",
        )
    version = r.u32()
    if version not in (2, 3):
        raise r.fail(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors > size or n_kv > size:
        raise r.fail("corrupt header counts")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.u32(), keep=key in _KEEP_KEYS)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.u32()
        if n_dims > 8:
            raise r.fail(f"tensor {name} has {n_dims} dimensions")
        shape = tuple(r.u64() for _ in range(n_dims))
        ttype = r.u32()
        tensors.append(TensorInfo(name, shape, ttype, r.u64()))
    align = metadata.get("general.alignment", 32)
    align = align if isinstance(align, int) and align > 0 else 32
    data_start = -(-r.pos // align) * align
    ends = sorted({t.offset for t in tensors} | {max(size - data_start, 0)})
    after = dict(pairwise(ends))
    sized = []
    for t in tensors:
        nbytes = tensor_bytes(t.shape, t.type)
        if nbytes is None:  # a type the table lacks: up to the next tensor's data
            nbytes = max(after.get(t.offset, 0) - t.offset, 0)
        sized.append(TensorInfo(t.name, t.shape, t.type, t.offset, nbytes))

    return GGUFInfo(path, version, size, metadata, tuple(sized))


def iter_special_tokens(info: GGUFInfo) -> Iterator[tuple[str, int, str]]:
    """(role, id, text) for every `tokenizer.ggml.*_token_id` key, for the model card."""
    for key, value in sorted(info.metadata.items()):
        if (
            key.startswith("tokenizer.ggml.")
            and key.endswith("_token_id")
            and isinstance(value, int)
        ):
            role = key.removeprefix("tokenizer.ggml.").removesuffix("_token_id")
            text = info.tokens[value] if 0 <= value < len(info.tokens) else "?"
            yield role, value, text
