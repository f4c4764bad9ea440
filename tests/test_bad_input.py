"""Bad input to the real `assist` command: every case is one line saying what and where (and
the fix), exit status 2, and never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "a.py").write_text("def f():\n    return 1\n")
    return root


def assist(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    base.update(XDG_CONFIG_HOME=str(cwd.parent / "xdg"), **env)
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=cwd, env=base, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


CASES: list[tuple[str, list[str], dict[str, str], bytes | None, str]] = [
    # (what, arguments, environment, .assist/config.toml bytes, expected words)
    ("config not UTF-8", ["search", "x"], {}, b"[model]\nn_ctx = 1\xff\n", "not UTF-8"),
    ("config not TOML", ["search", "x"], {}, b"[model\n", "invalid TOML"),
    ("unknown key", ["search", "x"], {}, b"[search]\nfuzion = 'x'\n", "did you mean"),
    ("bad choice", ["search", "x"], {"ASSIST_SEARCH_FUSION": "rff"}, None, "use one of"),
    ("bad url", ["chat", "q"], {"ASSIST_MODEL_URL": "not a url"}, None, "not an http"),
    ("negative n_ctx", ["model", "--no-bench"], {"ASSIST_MODEL_N_CTX": "-5"}, None, "range"),
    ("not a GGUF", ["model", "--model", "a.py"], {}, None, "not a GGUF model"),
    ("missing model", ["model", "--model", "nope.gguf"], {}, None, "not found"),
    ("no index", ["search", "x"], {}, None, "no index yet"),
    ("missing file", ["complete", "nope.py", "--line", "1", "--col", "0"], {}, None, "nope.py"),
    ("line 0", ["complete", "a.py", "--line", "0", "--col", "0"], {}, None, "line 0"),
    ("bad --tcp", ["lsp", "--tcp", "127.0.0.1:x"], {}, None, "not HOST:PORT"),
    ("bad id", ["chat", "q", "--resume", "../x"], {}, None, "not a conversation id"),
    ("missing path", ["docstring", "--check", "nope/"], {}, None, "no such directory"),
    ("missing repo", ["index", "/nonexistent/repo"], {}, None, "no such directory"),
]


@pytest.mark.parametrize(
    ("what", "args", "env", "config", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line(
    repo: Path, what: str, args: list[str], env: dict[str, str], config: bytes | None, words: str
) -> None:
    if what == "bad id":  # past the index check, to the id check
        assert assist(["index", "--no-vectors", "-q"], repo).returncode == 0
    if config is not None:
        (repo / ".assist").mkdir(exist_ok=True)
        (repo / ".assist" / "config.toml").write_bytes(config)
    done = assist(args, repo, **env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (what, done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("assist: error:")]
    assert len(lines) == 1, done.stderr  # one line, then at most a "hint:" line
    assert words in done.stderr, done.stderr


def test_a_port_in_use_is_one_line(repo: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = assist(["lsp", "--tcp", f"127.0.0.1:{port}"], repo)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2 and "cannot listen on" in done.stderr
