from __future__ import annotations

import struct
from pathlib import Path

import pytest
from tiny_gguf import FAMILY_TOKENS

from assistant.errors import AssistError
from assistant.llm.gguf import iter_special_tokens, read_gguf


def test_reads_metadata_and_tensors(make_gguf) -> None:
    path = make_gguf(family="qwen", metadata=True)
    info = read_gguf(path)
    assert info.architecture == "llama"
    assert info.name == "tiny-qwen"
    assert info.version == 3
    assert info.context_length == 512
    assert info.quantization == "F32"
    assert info.file_size == path.stat().st_size
    # 2 layers of 4 attention + 3 FFN matrices + norms, embeddings and output.
    n_vocab = len(info.tokens)
    expected = 2 * n_vocab * 64 + 64 + 2 * (4 * 64 * 64 + 3 * 128 * 64 + 2 * 64)
    assert info.parameter_count == expected
    assert set(FAMILY_TOKENS["qwen"]) <= set(info.tokens)
    roles = {role: text for role, _, text in iter_special_tokens(info)}
    assert roles["fim_pre"] == "<|fim_prefix|>"
    assert roles["eos"] == "</s>"


def _header(version: int = 3, n_tensors: int = 0, n_kv: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "only 0 bytes"),
        (b"PK\x03\x04" + b"\0" * 40, "wrong magic"),
        (_header(version=1) + b"\0" * 8, "unsupported GGUF version 1"),
        (_header(n_kv=1) + struct.pack("<Q", 1_000_000) + b"k", "truncated"),
        (
            _header(n_kv=1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 2**40),
            "longer than the file",
        ),
        (_header(n_kv=2**60), "corrupt header"),
    ],
)
def test_rejects_bad_files_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(AssistError) as err:
        read_gguf(path)
    assert message in str(err.value)
    assert str(path) in err.value.message
    assert "\n" not in str(err.value)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AssistError, match="not found"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(AssistError, match="directory"):
        read_gguf(tmp_path)
