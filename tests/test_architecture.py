"""The layers are import-linter's contracts (`make lint`); this checks what they cannot: no
module grows into a god file, and importing the core loads no heavy or front-end library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
MAX_LINES = 450


def test_no_module_is_a_god_file() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in [*ROOT.glob("assistant/**/*.py"), *ROOT.glob("lsp/**/*.py")]
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_core_imports_no_front_end_and_no_model_runtime() -> None:
    code = (
        "import json, sys; import assistant.workspace, assistant.config, assistant.cli; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = {"textual", "pygls", "lsprotocol", "llama_cpp", "hnswlib", "numpy", "git"}
    assert not heavy & {m.split(".")[0] for m in loaded}
