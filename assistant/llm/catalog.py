"""The GGUF models a user already has, wherever the usual tools put them.

Hugging Face's cache, LM Studio's models folders, Ollama's manifests and blobs, llama.cpp's
download cache, GPT4All's folder, and `model.search_paths`. Listing reads file names (and, for
Ollama, small manifest files); describing a model reads only its GGUF header. Nothing here
downloads, copies or writes anything.

A folder that cannot be read (a symlink loop, `~nouser`, a file, a name too long) is skipped
with a warning, never a traceback; listed names are escaped, since file names come from
downloaded repositories and may hold terminal escapes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistError
from assistant.untrusted import visible

log = logging.getLogger(__name__)

_MAX_DEPTH = 6
_MAX_FOLDERS = 50_000
"""Folders walked in one place at most: `/` or `/proc` in `model.search_paths` ends, slowly."""
_MAX_MANIFEST = 1 << 20
_DIGEST = re.compile(r"[a-z0-9]+[:-][0-9a-fA-F]+")


@dataclass(frozen=True)
class Found:
    name: str
    """Short name: `ollama:qwen2.5-coder:7b`, or the file's stem (`qwen2.5-coder-7b-q4_k_m`)."""
    path: Path
    source: str
    """Which tool's folder it is in: `huggingface`, `lmstudio`, `ollama`, `llama.cpp`,
    `gpt4all` or `search_paths`."""


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return _expand(value, name) if value else None


def _expand(value: str, what: str) -> Path | None:
    """`value` with `~` expanded, or None (logged) where it names no user's home."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # `~nouser`: "Could not determine home directory"
        log.warning("%s: %s names no user's home folder; skipped", what, visible(value))
        return None


def places(search_paths: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """(source, folder) for every place this machine's tools keep models, existing or not."""
    home = _home()
    xdg_cache = _env_path("XDG_CACHE_HOME") or home / ".cache"
    hf_home = _env_path("HF_HOME") or xdg_cache / "huggingface"
    found: list[tuple[str, Path]] = [
        ("huggingface", _env_path("HF_HUB_CACHE") or _env_path("HUGGINGFACE_HUB_CACHE")
         or hf_home / "hub"),
        ("lmstudio", home / ".lmstudio" / "models"),
        ("lmstudio", home / ".cache" / "lm-studio" / "models"),
        ("ollama", _env_path("OLLAMA_MODELS") or home / ".ollama" / "models"),
        ("llama.cpp", _env_path("LLAMA_CACHE") or xdg_cache / "llama.cpp"),
        ("gpt4all", home / ".local" / "share" / "nomic.ai" / "GPT4All"),
        ("gpt4all", home / "Library" / "Application Support" / "nomic.ai" / "GPT4All"),
    ]  # fmt: skip
    for value in search_paths:
        if not value.strip():  # `Path("")` is the current folder: surely not what was meant
            log.warning("model.search_paths: an empty entry; skipped")
            continue
        path = _expand(value, "model.search_paths")
        if path is not None:
            found.append(("search_paths", path))
    return found


def _is_dir(folder: Path, source: str) -> bool:
    try:
        if folder.is_dir():
            return True
    except (OSError, ValueError) as exc:  # too long a name, a NUL
        where = "model.search_paths" if source == "search_paths" else source
        log.warning("%s: cannot read %s: %s; skipped", where, visible(str(folder)), exc)
        return False
    if source == "search_paths" and (folder.exists() or folder.is_symlink()):
        log.warning("model.search_paths: %s is not a folder; skipped", visible(str(folder)))
    return False


def find_models(search_paths: Sequence[str] = ()) -> list[Found]:
    """Every GGUF in the usual places, one entry per file (the first name wins)."""
    seen: set[Path] = set()
    out: list[Found] = []
    for source, folder in places(search_paths):
        if not _is_dir(folder, source):
            continue
        walker = _ollama(folder) if source == "ollama" else _ggufs(folder, source)
        try:
            _add_unseen(walker, seen, out)
        except OSError as exc:  # os.walk skips what it cannot read; rglob may not
            log.warning("%s: cannot read %s: %s", source, visible(str(folder)), exc)
    return out


def _add_unseen(found: Iterator[Found], seen: set[Path], out: list[Found]) -> None:
    """Adds to `out` the files among `found` not met before (by where they lead)."""
    for item in found:
        try:
            key = item.path.resolve()
            if key in seen or not key.is_file():
                continue
        except (OSError, RuntimeError, ValueError):  # a symlink loop (RuntimeError < 3.13)
            log.info("%s: cannot follow %s; skipped", item.source, visible(str(item.path)))
            continue
        seen.add(key)
        out.append(item)


def _ggufs(folder: Path, source: str) -> Iterator[Found]:
    base_depth = len(folder.parts)
    for walked, (dirpath, dirnames, filenames) in enumerate(os.walk(folder, followlinks=False)):
        if walked >= _MAX_FOLDERS:
            log.warning("%s: stopped looking in %s after %d folders", source,
                        visible(str(folder)), _MAX_FOLDERS)  # fmt: skip
            return
        if len(Path(dirpath).parts) - base_depth >= _MAX_DEPTH:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "blobs"]
        for name in sorted(filenames):
            if not name.lower().endswith(".gguf") or _is_split_part(name):
                continue
            path = Path(dirpath) / name
            yield Found(_short_name(name), path, source)


def _is_split_part(name: str) -> bool:
    """`model-00002-of-00003.gguf`: only the first part is a loadable model."""
    stem = name[:-5].lower()
    return "-of-" in stem and not stem.rsplit("-of-", 1)[0].endswith("00001")


def _short_name(file_name: str) -> str:
    """The name without `.gguf`, printable: undecodable bytes and control characters escaped."""
    return visible(file_name[:-5] if file_name.lower().endswith(".gguf") else file_name)


def _ollama(folder: Path) -> Iterator[Found]:
    """Ollama keeps a JSON manifest per `model:tag` naming its layers by digest; the layer of
    type `image.model` is the GGUF, stored as `blobs/sha256-<hex>`."""
    manifests = folder / "manifests"
    if not manifests.is_dir():
        return
    for path in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            with path.open("rb") as handle:
                data = json.loads(handle.read(_MAX_MANIFEST).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        layers = data.get("layers") if isinstance(data, dict) else None
        for layer in layers if isinstance(layers, list) else []:
            if not isinstance(layer, dict) or not str(layer.get("mediaType", "")).endswith(
                "image.model"
            ):
                continue
            digest = str(layer.get("digest", ""))
            if not _DIGEST.fullmatch(digest):  # never a path: `../x`, `/etc/passwd`, a NUL
                continue
            blob = folder / "blobs" / digest.replace(":", "-")
            rel = path.relative_to(manifests).parts  # registry / namespace / model / tag
            if len(rel) < 2:
                continue
            model, tag = rel[-2], rel[-1]
            namespace = rel[-3] if len(rel) >= 3 and rel[-3] != "library" else ""
            name = visible(f"ollama:{namespace + '/' if namespace else ''}{model}:{tag}")
            yield Found(name, blob, "ollama")


def resolve_name(name: str, search_paths: Sequence[str] = ()) -> Path | None:
    """The file a short name (`model list`'s first column) or a file name stands for, or None
    when it names nothing found; AssistError when it is ambiguous."""
    wanted = name.lower().removesuffix(".gguf")
    hits = [f for f in find_models(search_paths) if f.name.lower() == wanted]
    if not hits:
        return None
    if len({f.path.resolve() for f in hits}) > 1:
        where = ", ".join(f"{f.path} ({f.source})" for f in hits[:4])
        raise AssistError(f"model name {name!r} matches several files: {where}",
                          "pass the path instead")  # fmt: skip
    return hits[0].path
