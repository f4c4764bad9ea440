"""One model host per model, always findable: liveness is the host's lock, not its answers.

Real hosts (`python -m assistant.llm.host` on generated GGUFs), real front-end processes, real
sockets; a junk-answering server is a real socket too. Limits that would take minutes are
shortened through the host's `ASSIST_HOST_*` variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import alive, wait_for

from assistant.cli import main as cli_main
from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.host_files import HostingUnavailable
from assistant.llm.host_requests import read_request
from assistant.llm.hosting import (
    Host,
    HostedModel,
    UnixHTTPConnection,
    running_hosts,
    stop_hosts,
)
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Request

DEADLINE = 60.0


def settings(**kw: Any) -> ModelSettings:
    return ModelSettings(**{"temperature": 0.0, "max_tokens": 16, **kw})


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory of this test's own (short: socket paths are limited)."""
    where = Path(tempfile.mkdtemp(prefix="al-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(where))
    monkeypatch.setenv("ASSIST_MODEL_HOST", "true")
    yield where
    folder = where / "assist"
    if folder.is_dir() and not folder.is_symlink():
        os.chown(folder, os.getuid(), os.getgid())
        folder.chmod(0o700)  # as a test may have left it
        stop_hosts(timeout=0.5)
    shutil.rmtree(where, ignore_errors=True)


def hosts_of(runtime: Path) -> list[int]:
    """Every live host process whose runtime directory is `runtime`, orphans included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"assistant.llm.host" in cmdline and f"XDG_RUNTIME_DIR={runtime}".encode() in environ:
            found.append(int(entry.name))
    return found


def post(sock: Path, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
    """One raw request to a host; its status and its answer (JSON, or a stream's text)."""
    conn = UnixHTTPConnection(sock, 30)
    try:
        conn.putrequest("POST", path)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        answer = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(answer) if is_json else answer.decode()
    finally:
        conn.close()


# -- liveness: the lock, not the answer ---------------------------------------------------------


def test_a_paused_host_is_not_replaced_and_stays_listed_and_stoppable(
    runtime: Path, chat_gguf: Path
) -> None:
    model = HostedModel(str(chat_gguf), settings())
    pid = model.host_pid
    inode = model.host.socket.stat().st_ino
    os.kill(pid, signal.SIGSTOP)
    try:
        # Silent for longer than the client waits: an error in words, not a second host.
        with pytest.raises(AssistError, match=rf"pid {pid}\) is alive but did not answer"):
            HostedModel(str(chat_gguf), settings(timeout=1.0))
        assert model.host.socket.stat().st_ino == inode  # its socket was left alone
        assert hosts_of(runtime) == [pid]
        # A full listen queue is waited on, never taken for a dead host: the kernel queues
        # every front-end of a busy day.
        waiting = []
        for _ in range(150):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect(str(model.host.socket))  # BlockingIOError past a backlog of 5
            waiting.append(s)
        for s in waiting:
            s.close()
        listed = running_hosts(timeout=0.5)
        assert [(h["pid"], h["state"]) for h in listed] == [(pid, "silent")]
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
        stopped = subprocess.run(
            [sys.executable, "-m", "assistant", "model", "stop"], env=env,
            capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert stopped.returncode == 0, stopped.stderr
        (line,) = stopped.stdout.splitlines()
        assert line.startswith(f"pid {pid}  signalled: holds its lock but does not answer")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not alive(pid), "the paused host to stop")
    assert running_hosts() == [] and not model.host.socket.exists()


_FRONT_END = """
import json, sys, threading
from assistant.config import ModelSettings
from assistant.llm.hosting import HostedModel
pids, errors = [], []
def one():
    try:
        pids.append(HostedModel(sys.argv[1], ModelSettings(timeout=60.0)).host_pid)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=one) for _ in range(int(sys.argv[2]))]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"pids": pids, "errors": errors}))
"""


def test_many_front_ends_at_once_start_exactly_one_host(runtime: Path, chat_gguf: Path) -> None:
    """Eight processes of five threads each, all finding no host at the same moment."""
    command = [sys.executable, "-c", _FRONT_END, str(chat_gguf), "5"]
    starters = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    pids: set[int] = set()
    for p in starters:
        out, err = p.communicate(timeout=DEADLINE * 2)
        answer = json.loads(out)
        assert answer["errors"] == [] and len(answer["pids"]) == 5, err
        pids.update(answer["pids"])
    assert len(pids) == 1
    assert hosts_of(runtime) == list(pids)  # no orphan beside it
    assert [h["pid"] for h in running_hosts()] == list(pids)


# -- untrusted clients --------------------------------------------------------------------------


def test_idle_connections_are_closed_and_their_number_is_capped(
    runtime: Path, chat_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSIST_HOST_CONNECTION_S", "0.5")
    monkeypatch.setenv("ASSIST_HOST_CONNECTIONS", "3")
    model = HostedModel(str(chat_gguf), settings())
    idle = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(model.host.socket))
        idle.append(s)
    one_more = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    one_more.settimeout(10)
    one_more.connect(str(model.host.socket))  # the fourth: answered at once, in words
    refused = one_more.recv(4096)
    one_more.close()
    assert refused.startswith(b"HTTP/1.1 503") and b"3 connections, its most" in refused
    for s in idle:
        assert s.recv(100) == b""  # the host hung up on a connection that said nothing
        s.close()
    wait_for(lambda: (model.host.props() or {}).get("connections") == 1, "threads to end")
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"


def test_max_tokens_is_bounded_by_the_context() -> None:
    for huge in (1e30, 10**4000, 2**63):
        request = read_request({"max_tokens": huge}, "/v1/completions", "explicit", "x", n_ctx=512)
        assert request.max_tokens == 512
    limits = {"n_predict": 10**400, "t_max_prompt_ms": 10**400, "temperature": 10**400}
    request = read_request(limits, "/infill", "explicit", "x", n_ctx=512)
    assert (request.max_tokens, request.prompt_s, request.temperature) == (512, 86_400.0, 5.0)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


DEEP = b'{"prompt": ' + _nested(100_000) + b"}"
MALFORMED = {
    "nested body": ("/v1/completions", DEEP, "nests too deeply"),
    "nested array": ("/v1/completions", _nested(100_000), "nests too deeply"),
    "NaN": ("/v1/completions", b'{"prompt": "x", "max_tokens": NaN}', "NaN is not a JSON number"),
    "huge float": ("/v1/completions", b'{"prompt": "x", "max_tokens": 1e999}', "too large"),
    "huge integer": ("/v1/completions", b'{"prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}",
                     "not JSON"),
    "not UTF-8": ("/v1/completions", b'{"prompt": "\xff\xfe"}', "not JSON"),
    "an array": ("/v1/completions", b"[1, 2]", "not a JSON object"),
    "a number prompt": ("/v1/completions", b'{"prompt": 5}', "string `prompt`"),
    "nested content": ("/v1/chat/completions",
                       b'{"messages": [{"content": ' + _nested(500) + b"}]}",
                       "`content` of a message must be a string"),
    "a made-up role": ("/v1/chat/completions", b'{"messages": [{"role": "root", "content": "x"}]}',
                       "role"),
    "messages as text": ("/v1/chat/completions", b'{"messages": "hi"}', "list of objects"),
    "a number file name": ("/infill", b'{"input_extra": [{"filename": 1}]}', "must be a string"),
    "tokenize a list": ("/tokenize", b'{"content": ["x"]}', "string `content`"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_are_answered_in_words(
    runtime: Path, chat_gguf: Path, case: str
) -> None:
    path, body, says = MALFORMED[case]
    model = HostedModel(str(chat_gguf), settings())
    status, answer = post(model.host.socket, path, body)
    assert status == 400 and says in answer["message"], answer


def test_the_log_stays_small_and_free_of_tracebacks(
    runtime: Path, chat_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSIST_HOST_LOG_BYTES", "4096")
    model = HostedModel(str(chat_gguf), settings())
    for _ in range(150):
        assert post(model.host.socket, "/v1/completions", DEEP)[0] == 400
    # Headers and limits no number can overflow: the request runs, bounded.
    made = {"X-Assist-Made": "9" * 5000}
    body = b'{"prompt": "x", "max_tokens": 2, "t_max_prompt_ms": 1' + b"0" * 400 + b"}"
    status, stream = post(model.host.socket, "/v1/completions", body, **made)
    assert status == 200 and '"generated_tokens": 2' in stream
    log = model.host.log_path.read_text()
    assert len(log) <= 4096 + 300, len(log)
    assert "Traceback" not in log and "was emptied" in log
    assert "".join(model.chat([Message("user", "hi")], Request(max_tokens=2))) == "aa"


# -- what `assist model hosts` and `stop` say of a socket that answers junk ----------------------

JUNK = {
    "not HTTP": b"\x00\x01 hello there\n",
    "not JSON": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\xff\xfe{[",
    "nested": b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + _nested(100_000),
    "wrong facts": b'HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n{"pid": "1", "name": null}',
    "an error": b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno",
}


@pytest.fixture(params=sorted(JUNK))
def junk_server(runtime: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    folder = runtime / "assist"
    folder.mkdir(mode=0o700)
    path = folder / "model-0123456789abcdef.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    server.settimeout(0.1)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(JUNK[request.param])

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    server.close()


def test_hosts_and_stop_say_one_line_of_a_socket_answering_junk(
    junk_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("hosts", "stop"):
        assert cli_main(["model", action]) == 0
        out, err = capsys.readouterr()
        (line,) = out.splitlines()
        assert "answers, but not as a model host" in line and str(junk_server) in line, out
        assert "Traceback" not in err
    assert junk_server.exists()  # not ours to remove


# -- an unusable runtime directory --------------------------------------------------------------


@pytest.mark.parametrize("unsafe", ["open to others", "a symlink", "another owner"])
def test_an_unusable_runtime_directory_loads_the_model_in_process(
    runtime: Path, chat_gguf: Path, tmp_path: Path, unsafe: str
) -> None:
    folder = runtime / "assist"
    if unsafe == "a symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        folder.mkdir(mode=0o700)
        if unsafe == "another owner":
            if os.getuid() != 0:
                pytest.skip("giving a directory away needs root")
            os.chown(folder, 65534, 65534)
        else:
            folder.chmod(0o777)
    with pytest.raises(HostingUnavailable, match="not a private directory"):
        HostedModel(str(chat_gguf), settings())
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "calc.py").write_text("TOTAL = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    env.update(XDG_RUNTIME_DIR=str(runtime), ASSIST_MODEL=str(chat_gguf),
               ASSIST_INDEX_VECTORS="false", HOME=str(tmp_path))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "complete", "calc.py", "--line", "1", "--col", "8",
         "--json"], cwd=repo, env=env, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"]
    warnings = [line for line in done.stderr.splitlines() if "not a private directory" in line]
    assert len(warnings) == 1 and "loading the model in this process instead" in warnings[0]
    assert "Traceback" not in done.stderr
    assert hosts_of(runtime) == []
    assert not list((tmp_path / "elsewhere").glob("*")) if unsafe == "a symlink" else True


def test_a_symlink_planted_beside_the_socket_is_never_written_through(
    runtime: Path, chat_gguf: Path, tmp_path: Path
) -> None:
    from assistant.config import load_settings
    from assistant.llm.source import open_model

    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    host = Host.of(chat_gguf, settings())
    host.log_path.symlink_to(target)
    with pytest.raises(HostingUnavailable, match="a symlink"):
        HostedModel(str(chat_gguf), settings())
    assert target.read_text() == "keep me\n" and hosts_of(runtime) == []
    loaded = open_model(load_settings(overrides={"model": {"path": str(chat_gguf)}}))
    assert isinstance(loaded, LocalModel)  # and the front-end still works, on its own copy
