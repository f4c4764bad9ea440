"""`assist model list` and model names: GGUF files where Hugging Face, LM Studio, Ollama,
llama.cpp and GPT4All keep them, laid out as those tools do, in a temporary home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.errors import AssistError
from assistant.llm.catalog import find_models, resolve_name


@pytest.fixture
def home(tmp_path: Path, make_gguf: Callable[..., Path]) -> Path:
    fim = make_gguf(family="qwen", metadata=True, favorite="a")
    plain = make_gguf(family="none", favorite="b")
    home = tmp_path / "home"
    # Hugging Face: snapshots hold symlinks into blobs.
    repo = home / ".cache/huggingface/hub/models--Qwen--Qwen2.5-Coder-0.5B-GGUF"
    (repo / "blobs").mkdir(parents=True)
    shutil.copy(fim, repo / "blobs" / "abc123")
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "qwen2.5-coder-0.5b-q8_0.gguf").symlink_to(repo / "blobs" / "abc123")
    # LM Studio: publisher/repo/file.
    lms = home / ".lmstudio/models/bartowski/StarCoder2-GGUF"
    lms.mkdir(parents=True)
    shutil.copy(plain, lms / "starcoder2-3b-Q4_K_M.gguf")
    shutil.copy(plain, lms / "big-00002-of-00002.gguf")  # a split's second part: not a model
    # Ollama: a manifest per model:tag naming the model layer's blob.
    ollama = home / ".ollama/models"
    (ollama / "blobs").mkdir(parents=True)
    shutil.copy(fim, ollama / "blobs" / "sha256-feed")
    manifest = ollama / "manifests/registry.ollama.ai/library/tiny-coder/latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:feed"},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:0000"},
    ]}))  # fmt: skip
    # llama.cpp's download cache and GPT4All's folder.
    (home / ".cache/llama.cpp").mkdir(parents=True)
    shutil.copy(plain, home / ".cache/llama.cpp/org_repo_llama-cached.gguf")
    (home / ".local/share/nomic.ai/GPT4All").mkdir(parents=True)
    shutil.copy(plain, home / ".local/share/nomic.ai/GPT4All/gpt4all-model.gguf")
    (home / "elsewhere").mkdir()
    (home / "elsewhere/not-a-model.gguf").write_bytes(b"nope")
    return home


def env_for(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("ASSIST_", "HF_", "XDG_", "OLLAMA_", "LLAMA_"))}  # fmt: skip
    return {**clean, "HOME": str(home), "ASSIST_MODEL_SEARCH_PATHS": str(home / "elsewhere")}


def assist(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "assistant", *args]
    return subprocess.run(argv, cwd=home, env=env_for(home), capture_output=True, text=True)


def test_model_list_finds_every_tools_folder(home: Path) -> None:
    done = assist(home, "model", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert {n: r["source"] for n, r in rows.items()} == {
        "qwen2.5-coder-0.5b-q8_0": "huggingface",
        "starcoder2-3b-Q4_K_M": "lmstudio",
        "ollama:tiny-coder:latest": "ollama",
        "org_repo_llama-cached": "llama.cpp",
        "gpt4all-model": "gpt4all",
        "not-a-model": "search_paths",
    }
    qwen = rows["qwen2.5-coder-0.5b-q8_0"]
    assert qwen["fim"] == "qwen" and qwen["size_bytes"] > 0 and qwen["parameters"] > 0
    assert rows["starcoder2-3b-Q4_K_M"]["fim"] is None
    assert "not a GGUF model" in rows["not-a-model"]["error"]
    assert not any(r["in_use"] for r in rows.values())  # the embedded default is in use
    text = assist(home, "model", "list").stdout
    assert "ollama:tiny-coder:latest" in text and "FIM qwen" in text


def test_a_name_from_the_list_is_a_model(home: Path) -> None:
    done = assist(home, "model", "--no-bench", "--json", "--model", "ollama:tiny-coder:latest")
    assert done.returncode == 0, done.stderr
    card = json.loads(done.stdout)
    assert card["path"].endswith("blobs/sha256-feed")
    assert "the model named ollama:tiny-coder:latest" in card["source"]
    listed = assist(home, "model", "list", "--json", "--model", "starcoder2-3b-Q4_K_M")
    rows = {r["name"]: r["in_use"] for r in json.loads(listed.stdout)}
    assert rows["starcoder2-3b-Q4_K_M"] is True


def test_names_resolve_or_say_they_are_ambiguous(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(home))
    for key in ("HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME", "OLLAMA_MODELS", "LLAMA_CACHE"):
        monkeypatch.delenv(key, raising=False)
    assert len(find_models()) == 5
    assert resolve_name("no-such-model") is None
    shutil.copy(home / ".cache/llama.cpp/org_repo_llama-cached.gguf",
                home / "elsewhere/gpt4all-model.gguf")  # fmt: skip
    with pytest.raises(AssistError, match="matches several files"):
        resolve_name("gpt4all-model", [str(home / "elsewhere")])
