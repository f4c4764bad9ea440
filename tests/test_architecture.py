"""The split between the core and the front-ends, checked from the files themselves."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
# Front-ends: they may import Textual, pygls or the CLI; everything else in assistant/ is core.
FRONT_ENDS = {"assistant.cli", "assistant.git_hook", "assistant.__main__", "assistant.__init__"}


def test_every_core_module_is_under_the_import_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    listed = set(contract["source_modules"])
    modules = {f"assistant.{p.stem}" for p in (ROOT / "assistant").glob("*.py")}
    missing = sorted(modules - FRONT_ENDS - listed)
    assert not missing, f"add these core modules to the import-linter contract: {missing}"
    assert len(listed) == len(contract["source_modules"]), "a module is listed twice"
