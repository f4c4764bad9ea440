from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tiny_gguf import CHATML, write_tiny_gguf

from assistant.config import ModelSettings
from assistant.llm.local import LocalModel

# Tests load their generated models in-process unless they test the model host
# (tests/test_model_host.py); a subprocess that drops ASSIST_* variables (tests/test_cli.py)
# gets real hosts, kept in this session's own runtime directory and stopped at its end.
os.environ["ASSIST_MODEL_HOST"] = "false"
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="assist-run-")
# An index kept outside a repository (one whose `.assist/` is committed) goes here, not into
# the home of whoever runs the tests.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="assist-state-")


@pytest.fixture(scope="session", autouse=True)
def stop_model_hosts() -> Iterator[None]:
    yield
    from assistant.llm.hosting import stop_hosts

    stop_hosts()
    shutil.rmtree(os.environ["XDG_RUNTIME_DIR"], ignore_errors=True)
    shutil.rmtree(os.environ["XDG_STATE_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def make_gguf(gguf_dir: Path) -> Callable[..., Path]:
    """Write (once per distinct argument set) a tiny GGUF and return its path."""
    made: dict[str, Path] = {}

    def make(**kwargs: object) -> Path:
        key = repr(sorted(kwargs.items()))
        if key not in made:
            made[key] = write_tiny_gguf(gguf_dir / f"tiny-{len(made)}.gguf", **kwargs)  # type: ignore[arg-type]
        return made[key]

    return make


@pytest.fixture(scope="session")
def chat_gguf(make_gguf: Callable[..., Path]) -> Path:
    return make_gguf(family="qwen", metadata=True, chat_template=CHATML, favorite="a")


@pytest.fixture(scope="session")
def chat_model(chat_gguf: Path) -> LocalModel:
    return LocalModel.load(chat_gguf, ModelSettings(temperature=0.0, max_tokens=16))


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no user config and no ASSIST_* variables but one: the model loads
    in-process (tests/test_model_host.py tests the shared host)."""
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
        "ASSIST_MODEL_HOST": "false",
    }
