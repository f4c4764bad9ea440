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


def _declared() -> set[str]:
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {re.split(r"[\[<>=!~; ]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_every_import_is_declared_and_bounded() -> None:
    """A package imported by the code but only present as someone else's dependency (Rich, via
    Textual) disappears the day they drop it; one we reach into without an upper bound breaks a
    fresh install on its next release."""
    import ast
    import importlib.metadata

    owners = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = set()
    for path in [*ROOT.glob("assistant/**/*.py"), *ROOT.glob("lsp/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("assistant", "lsp"):
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reached_into = ("llama-cpp-python", "pygls", "textual", "tree-sitter", "huggingface_hub")
    for spec in project["dependencies"]:
        if spec.startswith(reached_into):
            assert "<" in spec, f"{spec}: no upper bound"
    lock = (ROOT / "constraints.txt").read_text().lower().replace("_", "-")
    for name in ("llama-cpp-python", "pygls", "textual", "tree-sitter", "ruff", "mypy"):
        assert f"\n{name}==" in lock, f"{name} is not pinned in constraints.txt"
