"""The per-user model host: one loaded model that every front-end shares.

Real parts throughout: the host is `python -m assistant.llm.host` serving a generated GGUF on
its Unix socket; the front-ends are the real `assist complete`, `assist lsp` and the installed
pre-commit hook. Every wait is for an event or a state, with a generous deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hook_repo import UNDOCUMENTED, git_env, run_git
from lsp_client import RawLspClient
from processes import alive, wait_for

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.fim import Hole
from assistant.llm.host_requests import read_request
from assistant.llm.hosting import HostedModel, UnixHTTPConnection, running_hosts, stop_hosts
from assistant.llm.protocol import GenerationStats, Request

DEADLINE = 120.0


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory of this test's own (short: socket paths are limited)."""
    where = Path(tempfile.mkdtemp(prefix="ah-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(where))
    monkeypatch.setenv("ASSIST_MODEL_HOST", "true")
    yield where
    if (where / "assist").is_dir() and not (where / "assist").is_symlink():
        (where / "assist").chmod(0o700)  # as a test may have left it
        stop_hosts()
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def long_gguf(make_gguf: Callable[..., Path]) -> Path:
    """A FIM and chat model with room for long prompts and answers (it writes "a" forever)."""
    from tiny_gguf import CHATML

    return make_gguf(
        family="qwen", metadata=True, chat_template=CHATML, favorite="a", context_length=8192
    )


def settings(**kw: Any) -> ModelSettings:
    return ModelSettings(**{"temperature": 0.0, "max_tokens": 16, **kw})


# -- one host per model and user ---------------------------------------------------------------


def test_two_models_of_one_file_share_one_host(runtime: Path, chat_gguf: Path) -> None:
    first = HostedModel(str(chat_gguf), settings())
    second = HostedModel(str(chat_gguf), settings(temperature=0.5))  # not a load setting
    assert first.host_pid == second.host_pid
    assert "".join(first.chat([Message("user", "hi")], Request(max_tokens=3))) == "aaa"
    assert "".join(second.infill(Hole("x = ", "\n", path="a.py"), Request(max_tokens=2))) == "aa"
    other = HostedModel(str(chat_gguf), settings(n_ctx=256))  # a load setting: its own host
    assert other.host_pid != first.host_pid
    hosts = running_hosts()
    assert sorted(h["pid"] for h in hosts) == sorted({first.host_pid, other.host_pid})
    assert next(h for h in hosts if h["pid"] == first.host_pid)["requests"] >= 2


def test_an_upgraded_assist_never_talks_to_a_host_of_the_old_code(
    runtime: Path, chat_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade the same model and settings name another host: the new code starts its
    own, the old host is left to exit when idle, and both stay listed and stoppable."""
    from assistant.llm import hosting

    old = HostedModel(str(chat_gguf), settings(host_idle=2.0))
    old_pid = old.host_pid
    monkeypatch.setattr(hosting, "_code_stamp", lambda: "9.9.9/after-an-upgrade")
    new = HostedModel(str(chat_gguf), settings())
    assert new.host.socket != old.host.socket
    assert new.host_pid not in (0, old_pid) and alive(old_pid)
    assert "".join(new.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"
    assert {old_pid, new.host_pid} <= {h["pid"] for h in running_hosts()}
    wait_for(lambda: not alive(old_pid), "the old host to exit when idle")
    assert alive(new.host_pid)


def test_the_three_front_ends_share_one_model(
    runtime: Path, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    """The language server, `assist complete` and the pre-commit hook, each a real process
    of its own, all answer from one host; none loads the model itself."""
    env = git_env(tmp_path, make_gguf)
    env.update(XDG_RUNTIME_DIR=str(runtime), ASSIST_INDEX_VECTORS="false")
    repo = tmp_path / "repo"
    repo.mkdir()
    run_git(repo, env, "init", "-q")
    (repo / "calc.py").write_text('"""Calculator."""\n\nTOTAL = 1\n')
    run_git(repo, env, "add", ".")
    run_git(repo, env, "commit", "-q", "-m", "init")

    done = subprocess.run(
        [sys.executable, "-m", "assistant", "complete", "calc.py", "--line", "3", "--col", "9",
         "--json"], cwd=repo, env=env, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"]
    hosts = running_hosts()
    assert len(hosts) == 1
    pid = hosts[0]["pid"]

    lsp = RawLspClient([sys.executable, "-m", "assistant", "lsp"], repo, env, tmp_path / "lsp.err")
    try:
        lsp.initialize(repo)
        uri = (repo / "calc.py").as_uri()
        text = (repo / "calc.py").read_text()
        lsp.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}})  # fmt: skip
        resp = lsp.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 9}},
        )
        assert resp["result"]["items"], resp
    finally:
        lsp.close()

    done = subprocess.run(
        [sys.executable, "-m", "assistant", "hook", "install"], cwd=repo, env=env,
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (repo / "calc.py").write_text(text + "\n\n" + UNDOCUMENTED)
    run_git(repo, env, "add", "calc.py")
    committed = subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "-m", "add"], env=env, capture_output=True,
        text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert "wrote docstrings into calc.py" in committed.stderr, committed.stderr
    assert '"""Aaaaaaaa."""' in (repo / "calc.py").read_text()

    hosts = running_hosts()
    assert [h["pid"] for h in hosts] == [pid]  # still the one host, the same process
    assert hosts[0]["requests"] >= 3


# -- who may connect ----------------------------------------------------------------------------


def test_the_socket_and_its_directory_are_owner_only(runtime: Path, chat_gguf: Path) -> None:
    model = HostedModel(str(chat_gguf), settings())
    folder = runtime / "assist"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert model.host.socket.parent == folder
    for path in (model.host.socket, model.host.log_path, model.host.lock_path):
        assert path.stat().st_mode & 0o077 == 0, path


@pytest.mark.parametrize("unsafe", ["open to others", "a symlink"])
def test_an_unsafe_runtime_directory_is_refused(
    runtime: Path, chat_gguf: Path, tmp_path: Path, unsafe: str
) -> None:
    folder = runtime / "assist"
    if unsafe == "a symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        folder.mkdir()
        folder.chmod(0o777)  # as if another user had made it first
    with pytest.raises(AssistError, match="not a private directory"):
        HostedModel(str(chat_gguf), settings())
    assert not list((tmp_path / "elsewhere").glob("*")) if unsafe == "a symlink" else True


def _as_nobody(path: Path) -> str:
    """Connect to the socket at `path` as user `nobody` (a forked child) and ask for /health:
    what happened, in a word."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        outcome = "?"
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(path))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                outcome = "answered" if s.recv(100) else "closed"
        except PermissionError:
            outcome = "denied"
        except (ConnectionResetError, BrokenPipeError):
            outcome = "closed"  # hung up before (or while) reading the request
        except OSError as exc:
            outcome = f"error {exc}"
        finally:
            os.write(write, outcome.encode())
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        return f.read()


@pytest.mark.skipif(os.getuid() != 0, reason="acting as another user needs root")
def test_another_user_cannot_reach_the_host(runtime: Path, chat_gguf: Path) -> None:
    model = HostedModel(str(chat_gguf), settings())
    assert _as_nobody(model.host.socket) == "denied"  # the directory keeps them out
    # Even with the directory and the socket opened up by mistake, the host asks the kernel
    # who is connecting and hangs up on another user.
    runtime.chmod(0o755)
    model.host.socket.parent.chmod(0o755)
    model.host.socket.chmod(0o777)
    assert _as_nobody(model.host.socket) == "closed"
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"


# -- lifecycle ----------------------------------------------------------------------------------


def test_an_idle_host_exits_and_the_next_request_starts_another(
    runtime: Path, chat_gguf: Path
) -> None:
    model = HostedModel(str(chat_gguf), settings(host_idle=1.0))
    first = model.host_pid
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"
    wait_for(lambda: not alive(first), "the idle host to exit")
    assert not model.host.socket.exists()  # it removed its socket
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"
    assert model.host_pid not in (0, first)


def test_a_killed_host_is_restarted(runtime: Path, chat_gguf: Path) -> None:
    model = HostedModel(str(chat_gguf), settings())
    first = model.host_pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), "the host to die")
    assert model.host.socket.exists()  # a dead host's socket: nobody answers there
    assert model.count_tokens("hello world") > 0
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"
    assert model.host_pid != first and alive(model.host_pid)


def test_a_host_that_dies_mid_answer_is_a_clear_error_then_restarted(
    runtime: Path, long_gguf: Path
) -> None:
    model = HostedModel(str(long_gguf), settings(n_ctx=8192))
    stream = model.chat([Message("user", "hi")], Request(max_tokens=6000))
    assert next(stream) == "a"
    os.kill(model.host_pid, signal.SIGKILL)
    with pytest.raises(AssistError, match="closed the connection mid-answer"):
        for _ in stream:
            pass
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"


# -- scheduling ---------------------------------------------------------------------------------


class Raw:
    """One request on the host's socket with the headers a client would send; its events."""

    def __init__(self, model: HostedModel, priority: str, lane: str, max_tokens: int) -> None:
        self.conn = UnixHTTPConnection(model.host.socket, DEADLINE)
        body = {"prompt": "hello", "max_tokens": max_tokens}
        headers = {"Content-Type": "application/json", "X-Assist-Priority": priority,
                   "X-Assist-Lane": lane}  # fmt: skip
        self.conn.request("POST", "/v1/completions", json.dumps(body), headers)
        self.response = self.conn.getresponse()
        self.text = ""
        self.stats: dict[str, Any] = {}

    def read_all(self) -> Raw:
        for raw in self.response:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            event = json.loads(line[5:])
            if "assist_stats" in event:
                self.stats = event["assist_stats"]
            elif "choices" in event:
                self.text += event["choices"][0]["text"]
        return self

    def in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.read_all, daemon=True)
        thread.start()
        return thread


def _in_flight(model: HostedModel) -> int:
    found = model.host.props()
    return int(found["active"]) if found else -1


def test_explicit_requests_go_first_and_a_superseded_completion_is_dropped(
    runtime: Path, long_gguf: Path
) -> None:
    model = HostedModel(str(long_gguf), settings(n_ctx=8192))
    # An explicit request whose client reads nothing: the host fills the socket's buffer and
    # waits, holding the model, until that client hangs up.
    occupier = Raw(model, "explicit", "hook", 6000)
    wait_for(lambda: _in_flight(model) == 1, "the long request to run")
    older = Raw(model, "background", "editor", 4)
    wait_for(lambda: _in_flight(model) == 2, "a queued completion")
    newer = Raw(model, "background", "editor", 4)  # the same editor, a keystroke later
    older.read_all()
    assert older.text == "" and older.stats["dropped"] == "superseded"
    newer_thread = newer.in_thread()
    wait_for(lambda: _in_flight(model) == 2, "the newer completion queued")
    explicit = Raw(model, "explicit", "tui", 4)  # arrives after the background one
    explicit_thread = explicit.in_thread()
    wait_for(lambda: _in_flight(model) == 3, "the explicit request queued")
    occupier.conn.close()  # hang up: the host cancels it and frees the model
    explicit_thread.join(DEADLINE)
    newer_thread.join(DEADLINE)
    assert explicit.text == "aaaa" and newer.text == "aaaa"
    # The host let the explicit request run first, though it came later.
    assert explicit.stats["order"] < newer.stats["order"]
    assert newer.stats["wait_ms"] > explicit.stats["wait_ms"]


def test_the_prompt_progress_reaches_the_front_end(runtime: Path, long_gguf: Path) -> None:
    model = HostedModel(str(long_gguf), settings(n_ctx=8192))
    seen: list[GenerationStats] = []
    prompt = "hello " * 1500
    request = Request(max_tokens=2, progress=lambda s: seen.append(GenerationStats(**vars(s))))
    text = "".join(model.chat([Message("user", prompt)], request))
    assert text == "aa"
    reading = [s for s in seen if s.phase == "prompt"]
    assert reading and reading[0].prompt_tokens > 1000
    assert "reading" in reading[0].describe()
    assert request.stats.prompt_tokens > 1000  # the host's own count
    assert model.count_tokens(prompt) > 1000 and model.context_window() == 8192


def test_cancel_frees_the_host_for_the_next_request(runtime: Path, long_gguf: Path) -> None:
    model = HostedModel(str(long_gguf), settings(n_ctx=8192))
    cancel = threading.Event()
    request = Request(max_tokens=6000, cancel=cancel)
    stream = model.chat([Message("user", "hi")], request)
    assert next(stream) == "a"
    cancel.set()
    rest = list(stream)
    assert len(rest) <= 1 and request.stats.stopped_by == "cancel"
    wait_for(lambda: _in_flight(model) == 0, "the host to drop the cancelled request")
    other = HostedModel(str(long_gguf), settings(n_ctx=8192))
    assert "".join(other.chat([Message("user", "hi")], Request(max_tokens=3))) == "aaa"


def test_model_hosts_and_stop_on_the_command_line(runtime: Path, chat_gguf: Path) -> None:
    model = HostedModel(str(chat_gguf), settings())
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    listed = subprocess.run(
        [sys.executable, "-m", "assistant", "model", "hosts", "--json"], env=env,
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (host,) = json.loads(listed.stdout)
    assert host["pid"] == model.host_pid and host["name"] == chat_gguf.name
    assert host["resident_bytes"] > 0
    stopped = subprocess.run(
        [sys.executable, "-m", "assistant", "model", "stop"], env=env, capture_output=True,
        text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert f"pid {model.host_pid}  stopped" in stopped.stdout
    wait_for(lambda: not alive(model.host_pid), "the host to stop")


def test_errors_in_the_host_reach_the_front_end_in_words(runtime: Path, chat_gguf: Path) -> None:
    model = HostedModel(str(chat_gguf), settings())
    with pytest.raises(AssistError, match="does not fit the 512-token context"):
        list(model.chat([Message("user", "hello " * 600)]))
    # A grammar llama.cpp cannot parse used to crash the host (and before the host, the
    # front-end): refused in words now, and the host lives on.
    with pytest.raises(AssistError, match="cannot parse this grammar"):
        list(model.chat([Message("user", "hi")], Request(grammar="root ::= (")))
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"
    assert model.host_pid == running_hosts()[0]["pid"]  # the same host, not a restarted one


def test_a_file_that_is_not_a_model_starts_no_host(runtime: Path, tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("not a model\n")
    with pytest.raises(AssistError, match="not a GGUF"):
        HostedModel(str(fake), settings())
    with pytest.raises(AssistError, match="model file not found"):
        HostedModel(str(tmp_path / "missing.gguf"), settings())
    assert running_hosts() == []


def test_the_model_card_names_the_host_serving_the_model(runtime: Path, chat_gguf: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    cmd = [sys.executable, "-m", "assistant", "model", "--model", str(chat_gguf), "--no-bench"]
    before = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True,
                            timeout=DEADLINE)  # fmt: skip
    assert json.loads(before.stdout)["host"] == {"shared": True, "running": None}
    model = HostedModel(str(chat_gguf), settings())
    shown = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DEADLINE)
    assert re.search(rf"^model host +pid {model.host_pid}, \d+ MB resident", shown.stdout, re.M)
    off = subprocess.run([*cmd, "--json"], env={**env, "ASSIST_MODEL_HOST": "false"},
                         capture_output=True, text=True, timeout=DEADLINE)  # fmt: skip
    assert json.loads(off.stdout)["host"]["shared"] is False


def test_a_warm_up_reads_into_the_hosts_cache_for_the_next_request(
    runtime: Path, chat_gguf: Path
) -> None:
    model = HostedModel(str(chat_gguf), settings())
    prompt = "hello world and the world " * 8
    warm = Request.warm_up()
    assert list(model.complete(prompt, warm)) == []
    assert warm.stats.stopped_by == "length" and warm.stats.prompt_tokens > 20
    after = Request(max_tokens=2)
    assert "".join(model.complete(prompt, after)) == "aa"
    assert after.stats.cached_tokens == warm.stats.prompt_tokens - 1
    assert after.stats.read_tokens == 1  # only the last token, read as the writing begins


def test_a_requests_limits_come_from_its_body_and_nonsense_is_ignored() -> None:
    body = {"n_predict": 5, "t_max_prompt_ms": 250, "t_max_predict_ms": 100, "temperature": 0.1}
    request = read_request(body, "/infill", "background", "editor", n_ctx=512)
    assert (request.max_tokens, request.prompt_s, request.generate_s) == (5, 0.25, 0.1)
    assert (request.temperature, request.priority, request.lane) == (0.1, "background", "editor")
    nonsense = {"n_predict": -1, "t_max_prompt_ms": float("nan"), "t_max_predict_ms": -5,
                "temperature": True, "grammar": 3}  # fmt: skip
    request = read_request(nonsense, "/infill", "explicit", "x", n_ctx=512)
    assert request.max_tokens is None and request.prompt_s is None and request.generate_s is None
    assert request.temperature is None and request.grammar is None
    as_text = read_request({"max_tokens": "9"}, "/v1/completions", "idle", "x", n_ctx=512)
    assert as_text.max_tokens is None
