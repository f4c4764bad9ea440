"""Odd inputs to the newer commands: each is one line (an error with its fix, or a logged skip),
never a traceback; and Stop ends any grep at once, whatever the pattern."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tiny_gguf import write_tiny_gguf

from assistant.agent.calls import ToolCall
from assistant.agent.confine import ToolError
from assistant.agent.grep import bounded_grep
from assistant.agent.toolbox import Toolbox
from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.index.remote_embeddings import RemoteEmbedder
from assistant.llm.protocol import Request
from assistant.llm.remote import RemoteModel
from assistant.workspace import Workspace

_LEAKY = ("ASSIST_", "HF_", "HUGGINGFACE_", "OLLAMA_MODELS", "LLAMA_CACHE", "XDG_CACHE_HOME")
HEX = "ab" * 32


def assist(args: list[str], tmp: Path, search_paths: list[str] | None = None,
           **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The real command, with a home, config and model folders of its own under `tmp`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY)}
    base.update(HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "xdg"),
                ASSIST_MODEL_HOST="false", **env)  # fmt: skip
    if search_paths is not None:
        (tmp / "xdg" / "assist").mkdir(parents=True, exist_ok=True)
        toml = "[model]\nsearch_paths = " + json.dumps(search_paths) + "\n"
        (tmp / "xdg" / "assist" / "config.toml").write_text(toml)
    (tmp / "work").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=tmp / "work", env=base, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


# -- model folders: `assist model list` --------------------------------------------------------


def _loops(tmp: Path) -> list[str]:
    models = tmp / "models"
    models.mkdir()
    write_tiny_gguf(models / "good.gguf")
    (models / "loop.gguf").symlink_to("loop.gguf")
    (models / "a.gguf").symlink_to("b.gguf")
    (models / "b.gguf").symlink_to("a.gguf")
    (models / "up").symlink_to("..")
    return [str(models)]


def _loop_folder(tmp: Path) -> list[str]:
    (tmp / "loop").symlink_to("loop")
    return [str(tmp / "loop")]


def _hugging_face_loop(tmp: Path) -> list[str]:
    snapshot = tmp / "home" / ".cache" / "huggingface" / "hub" / "models--o--m" / "snapshots" / "1"
    snapshot.mkdir(parents=True)
    (snapshot / "model.gguf").symlink_to("model.gguf")
    write_tiny_gguf(snapshot / "good.gguf")
    return []


def _ollama(tmp: Path) -> list[str]:
    root = tmp / "home" / ".ollama" / "models"
    tags = root / "manifests" / "registry.ollama.ai" / "library" / "m"
    tags.mkdir(parents=True)
    (root / "blobs").mkdir()
    (root / "blobs" / f"sha256-{HEX}").symlink_to(f"sha256-{HEX}")  # a loop

    def manifest(name: str, digest: str) -> None:
        layer = {"mediaType": "application/vnd.ollama.image.model", "digest": digest}
        (tags / name).write_text(json.dumps({"layers": [layer]}))

    manifest("loop", f"sha256:{HEX}")
    manifest("nul", "sha256:\0")
    manifest("outside", "../../../../../../etc/passwd")
    (tags / "deep").write_text("[" * 100_000)
    (tags / "binary").write_bytes(b"\xff\xfe")
    (tags / "odd").write_text('{"layers": 7}')
    os.mkfifo(tags / "fifo")
    return []


def _file(tmp: Path) -> list[str]:
    (tmp / "a-file").write_text("x")
    return [str(tmp / "a-file")]


def _gguf_directory(tmp: Path) -> list[str]:
    (tmp / "models" / "dir.gguf").mkdir(parents=True)
    os.mkfifo(tmp / "models" / "fifo.gguf")
    return [str(tmp / "models")]


def _odd_names(tmp: Path) -> list[str]:
    models = tmp / "models"
    models.mkdir()
    good = write_tiny_gguf(models / "good.gguf")
    os.link(good, os.fsencode(models) + b"/bad\xff name.gguf")
    os.link(good, models / "red\x1b[31m.gguf")
    return [str(models)]


CATALOG: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # (what, make the folders and return model.search_paths, expected words)
    ("symlink loops in a folder", _loops, "good"),
    ("a search path that is a loop", _loop_folder, "is not a folder; skipped"),
    ("a symlink loop in Hugging Face's cache", _hugging_face_loop, "good"),
    ("Ollama manifests: loop, NUL, ../, deep, binary, FIFO", _ollama, "no GGUF models found"),
    ("~nouser", lambda tmp: ["~nouser-assist-test/models"], "names no user's home folder"),
    ("a search path that is a file", _file, "is not a folder; skipped"),
    ("/proc", lambda tmp: ["/proc"], "no GGUF models found"),
    ("a name too long", lambda tmp: ["/tmp/" + "a" * 300], "cannot read"),
    ("an empty entry", lambda tmp: [""], "an empty entry; skipped"),
    ("a NUL in a path", lambda tmp: ["/tmp/x\0y"], "no GGUF models found"),
    ("a GGUF that is a directory, a FIFO", _gguf_directory, "no GGUF models found"),
    ("undecodable and escape names", _odd_names, "bad\\udcff name"),
]


@pytest.mark.parametrize(("what", "make", "words"), CATALOG, ids=[c[0] for c in CATALOG])
def test_model_list_survives_odd_folders(
    tmp_path: Path, what: str, make: Callable[[Path], list[str]], words: str
) -> None:
    (tmp_path / "home").mkdir()
    paths = make(tmp_path)
    # A strict UTF-8 stdout, as under an en_US.UTF-8 locale: an undecodable name must not crash.
    done = assist(["model", "list"], tmp_path, paths, PYTHONIOENCODING="utf-8")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert words in done.stdout + done.stderr
    assert "\x1b" not in done.stdout  # a file name cannot paint the terminal
    listed = assist(["model", "list", "--json"], tmp_path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert all(Path(row["path"]).is_file() for row in json.loads(listed.stdout))


def test_a_model_name_resolves_past_a_loop(tmp_path: Path) -> None:
    paths = _loops(tmp_path)
    done = assist(["model", "--no-bench", "--json", "--model", "good"], tmp_path, paths)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"].endswith("good.gguf")


# -- server URLs and keys ----------------------------------------------------------------------

URLS = [
    ("port 99999", "http://127.0.0.1:99999", "Port out of range"),
    ("unclosed IPv6", "http://[::1", "Invalid IPv6 URL"),
    ("port not a number", "http://127.0.0.1:abc", "could not be cast"),
    ("a space", "http://127.0.0.1:1/a b", "space or control character"),
    ("an escape", "http://127.0.0.1:1/\x1b[2J", "space or control character"),
    ("a bad host name", "http://bü..x:1", "invalid host name"),
    ("not http", "ftp://127.0.0.1", "not an http(s) URL"),
]
KEYS = [
    ("a newline", "abc\ndef"),
    ("a header injection", "abc\r\nX-Evil: 1"),
    ("non-ASCII", "ключ-123"),
    ("a NUL", "abc\0"),
]


@pytest.mark.parametrize(("what", "url", "words"), URLS, ids=[u[0] for u in URLS])
def test_a_bad_server_url_is_one_clear_error(what: str, url: str, words: str) -> None:
    with pytest.raises(AssistError, match=r"model\.url") as model_error:
        RemoteModel(url, ModelSettings())
    assert words in model_error.value.message
    with pytest.raises(AssistError, match=r"index\.embedding_url") as embed_error:
        RemoteEmbedder(url)
    assert words in embed_error.value.message


@pytest.mark.parametrize(("what", "key"), KEYS, ids=[k[0] for k in KEYS])
def test_a_bad_api_key_is_refused_without_repeating_it(what: str, key: str) -> None:
    with pytest.raises(AssistError, match=r"model\.api_key holds") as model_error:
        RemoteModel("http://127.0.0.1:1", ModelSettings(api_key=key))
    with pytest.raises(AssistError, match=r"index\.embedding_api_key holds") as embed_error:
        RemoteEmbedder("http://127.0.0.1:1", api_key=key)
    for error in (model_error.value, embed_error.value):
        assert "abc" not in str(error) and "ключ" not in str(error)


def test_a_key_files_newline_is_dropped() -> None:
    model = RemoteModel("http://127.0.0.1:1", ModelSettings(api_key="  sk-123\n"))
    assert model.headers(Request())["Authorization"] == "Bearer sk-123"
    assert RemoteEmbedder("http://127.0.0.1:1", api_key="sk-123\n").authorization == "Bearer sk-123"


CLI_SERVERS = [
    ("model port 99999", ["complete", "a.py", "--line", "1", "--col", "0"],
     {"ASSIST_MODEL_URL": "http://127.0.0.1:99999"}, "model.url"),
    ("model URL with a space", ["chat", "hi"],
     {"ASSIST_MODEL_URL": "http://127.0.0.1:1/a b"}, "model.url"),
    ("non-ASCII model key", ["chat", "hi"],
     {"ASSIST_MODEL_URL": "http://127.0.0.1:1", "ASSIST_MODEL_API_KEY": "ключ"}, "api_key"),
    ("newline in model key", ["chat", "hi"],
     {"ASSIST_MODEL_URL": "http://127.0.0.1:1", "ASSIST_MODEL_API_KEY": "a\nb"}, "api_key"),
    ("embedding port 99999", ["index", "-q"],
     {"ASSIST_INDEX_EMBEDDING_URL": "http://127.0.0.1:99999"}, "index.embedding_url"),
    ("newline in embedding key", ["index", "-q"],
     {"ASSIST_INDEX_EMBEDDING_URL": "http://127.0.0.1:1",
      "ASSIST_INDEX_EMBEDDING_API_KEY": "a\nb"}, "embedding_api_key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "args", "env", "words"), CLI_SERVERS, ids=[c[0] for c in CLI_SERVERS]
)
def test_the_commands_say_what_is_wrong_with_a_server_setting(
    tmp_path: Path, what: str, args: list[str], env: dict[str, str], words: str
) -> None:
    (tmp_path / "work").mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path / "work")], check=True)
    (tmp_path / "work" / "a.py").write_text("def f():\n    return 1\n")
    if args[0] == "chat":  # past "no index yet", to the model
        assert assist(["index", "-q", "--no-vectors"], tmp_path).returncode == 0
    done = assist(args, tmp_path, **env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert "ключ" not in done.stderr


# -- grep and the Stop key ---------------------------------------------------------------------

CATASTROPHIC = [("long.txt", "a" * 35 + "!")]
"""`(a|aa)+c` backtracks over this line for ever, in any engine."""


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


@pytest.mark.parametrize(
    "pattern",
    ["(a|aa)+c", "(?:a{1000}){30000}"],  # backtracking; compiling out to gigabytes
)
def test_stop_ends_a_grep_at_once(pattern: str) -> None:
    before = _children() if Path("/proc/self/task").is_dir() else set()
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    started = time.monotonic()
    found = bounded_grep(pattern, CATASTROPHIC, limit=1000, cancel=stop)
    latency = time.monotonic() - started - 0.4
    assert found == ["[stopped]"]
    assert latency < 0.15, f"Stop took {latency * 1000:.0f} ms"
    if Path("/proc/self/task").is_dir():
        assert _children() <= before  # the matching process is gone, not left running


def test_stop_is_honoured_while_files_are_still_being_read() -> None:
    stop = threading.Event()

    def slow_files() -> Iterator[tuple[str, str]]:
        for n in range(1000):
            time.sleep(0.01)
            yield f"f{n}.txt", "nothing here\n"

    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert bounded_grep("x", slow_files(), limit=1000, cancel=stop) == ["[stopped]"]
    assert time.monotonic() - started - 0.3 < 0.15


def test_a_pattern_that_needs_gigabytes_is_refused() -> None:
    with pytest.raises(ToolError, match="too much memory"):
        bounded_grep("(?:a{1000}){30000}", [("a.txt", "a")], limit=100, cancel=threading.Event())


@pytest.mark.parametrize(
    "pattern",
    ["a{99999999999}", "(" * 100_000 + ")" * 100_000, "(?<name>x)(?P=nome)", "(?(1)a|b|c)"],
    ids=["repeat overflow", "deep nesting", "unknown group", "three branches"],
)
def test_an_odd_pattern_is_a_tool_error(tmp_path: Path, pattern: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "a.txt").write_text("x\n")
    ws = Workspace.open(root, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    tools = Toolbox(ws, output_limit=1000, command_timeout=5)
    with pytest.raises(ToolError, match="bad regular expression"):
        tools.prepare(ToolCall("grep", {"pattern": pattern, "path": "."})).run(threading.Event())
