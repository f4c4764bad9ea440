"""`assist model pull REPO`: one GGUF from a Hugging Face repository, into the standard cache.

Downloads go through `huggingface_hub` (the library, its cache layout and its `HF_ENDPOINT`,
`HF_TOKEN` and `HF_HUB_OFFLINE` settings, so other tools share the file): a progress bar,
resumption of an interrupted download, then a SHA-256 check against the digest the Hub
publishes for the file. A file that does not match is deleted, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from pathlib import Path

from assistant.errors import AssistError
from assistant.llm.gguf import read_gguf

log = logging.getLogger(__name__)

DEFAULT_QUANT = "Q4_K_M"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.I)


def choose_file(files: list[str], *, file: str | None = None, quant: str = DEFAULT_QUANT) -> str:
    """The repository file to fetch: `file` if given, else the GGUF whose name carries `quant`
    (case and separators ignored); a split model is refused (not supported yet)."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if file is not None:
        if file not in files:
            raise AssistError(
                f"the repository has no file {file!r}",
                "see the GGUF files it has with --quant, or its page",
            )
        return file
    if not ggufs:
        raise AssistError(
            "the repository has no GGUF file",
            "choose a repository with GGUF files (names ending in -GGUF)",
        )
    key = re.sub(r"[^a-z0-9]", "", quant.lower())
    matching = [f for f in ggufs if key in re.sub(r"[^a-z0-9]", "", Path(f).name.lower())]
    whole = [f for f in matching if not _SPLIT.search(f)]
    if whole:
        return min(whole, key=lambda f: (len(f), f))
    if matching:
        raise AssistError(
            f"{quant} comes split into parts here ({matching[0]}, …)",
            "pick a single-file quantization with --quant or --file",
        )
    have = sorted({_quant_of(f) for f in ggufs} - {""})
    raise AssistError(
        f"no {quant} GGUF in the repository",
        f"it has: {', '.join(have) or ', '.join(ggufs[:5])}; use --quant",
    )


def _quant_of(name: str) -> str:
    m = re.search(r"(I?Q\d[_A-Z0-9]*|F16|BF16|F32)(?=\.gguf$|-\d{5}-of)", name, re.I)
    return m.group(1).upper() if m else ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def pull(
    repo: str, *, file: str | None = None, quant: str = DEFAULT_QUANT, revision: str = "main"
) -> Path:
    """Download (or find in the cache) one GGUF of `repo` and return its path."""
    try:
        from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
    except ImportError:
        raise AssistError(
            "huggingface_hub is not installed",
            "pip install huggingface_hub (make setup installs it)",
        ) from None
    try:
        info = HfApi().model_info(repo, revision=revision)
        files = [s.rfilename for s in info.siblings or []]
        name = choose_file(files, file=file, quant=quant)
        meta = get_hf_file_metadata(hf_hub_url(repo, name, revision=revision))
        path = Path(hf_hub_download(repo, name, revision=revision))
    except AssistError:
        raise
    except KeyboardInterrupt:
        raise AssistError(
            "download interrupted", "run the same command again: it resumes where it stopped"
        ) from None
    except Exception as exc:  # the library raises many kinds: HTTP, offline, gated, not found
        raise AssistError(
            f"cannot download from {repo}: {_reason(exc)}",
            "check the network (or HF_ENDPOINT, HF_TOKEN); `assist model list` "
            "shows the models you already have",
        ) from None
    expected = (meta.etag or "").strip('"').lower()
    if _SHA256.match(expected):
        actual = sha256_of(path)
        if actual != expected:
            _discard(path)
            raise AssistError(
                f"{name}: checksum mismatch (got {actual[:12]}…, the Hub says "
                f"{expected[:12]}…); the download was deleted",
                "run the command again; if it repeats, the mirror is broken",
            )
    else:
        log.warning("%s: the server published no SHA-256 for it; size checked only", name)
    read_gguf(path)  # a clear error if it is not a GGUF after all
    return path


def _discard(path: Path) -> None:
    """Remove a bad download: the cache's blob and the snapshot link to it."""
    blob = path.resolve()
    for p in (path, blob):
        with contextlib.suppress(OSError):
            p.unlink()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
