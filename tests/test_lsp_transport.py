"""The language server's own transport and what it needs of pygls.

What a pygls release could break is pinned here: the public methods we call (with the
parameters we pass), what `set_writer(..., include_headers=False)` hands the writer, and that no
module of `lsp/` patches pygls or calls its private names. Then the whole lifecycle in memory, and
the real `assist lsp` process over TCP and over stdio.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from lsprotocol import types
from memory_io import MemoryReader
from pygls.lsp.server import LanguageServer
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol
from pygls.server import JsonRPCServer
from test_lsp import lsp_env

from lsp import transport
from lsp.framing import frame
from lsp.server import AssistProtocol, create_server, exit_code

ROOT = Path(__file__).resolve().parent.parent
PYGLS_CLASSES = (JsonRPCProtocol, LanguageServerProtocol, JsonRPCServer, LanguageServer)


def params_of(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_pygls_methods_we_call_take_what_we_pass() -> None:
    assert params_of(JsonRPCProtocol.set_writer) == ["self", "writer", "include_headers"]
    assert params_of(JsonRPCProtocol.structure_message) == ["self", "data"]
    assert params_of(JsonRPCProtocol.handle_message) == ["self", "message"]
    assert params_of(LanguageServerProtocol.__init__) == ["self", "server", "converter"]
    assert params_of(LanguageServer.report_server_error) == ["self", "error", "source"]
    assert {"protocol_cls", "max_workers"} <= set(params_of(JsonRPCServer.__init__))
    assert {"name", "version"} <= set(params_of(LanguageServer.__init__))


class Sink(io.BytesIO):
    """An output that keeps what was written after pygls's `exit` closes it."""

    def close(self) -> None:
        pass


def messages(data: bytes) -> list[dict[str, Any]]:
    """Parse frames independently of lsp/framing.py: CRLF headers, a blank line, the body."""
    out, stream = [], io.BytesIO(data)
    while header := stream.readline():
        length = None
        while header not in (b"\r\n", b""):
            name, _, value = header.decode("ascii").partition(":")
            assert name in ("Content-Length", "Content-Type"), header
            if name == "Content-Length":
                length = int(value)
            header = stream.readline()
        assert length is not None
        out.append(json.loads(stream.read(length)))
    return out


def test_pygls_hands_our_writer_bare_bodies() -> None:
    """`include_headers=False` means pygls writes a JSON body and nothing else: if it framed the
    message itself too, every message would reach the editor with two headers."""
    protocol = create_server().protocol
    assert isinstance(protocol, AssistProtocol)
    sink = Sink()
    protocol.connect(transport.FrameWriter(sink))
    assert protocol.writer is not None
    protocol.notify(types.WINDOW_LOG_MESSAGE, types.LogMessageParams(types.MessageType.Info, "hi"))
    (msg,) = messages(sink.getvalue())
    assert msg == {
        "jsonrpc": "2.0",
        "method": "window/logMessage",
        "params": {"type": 3, "message": "hi"},
    }


def _private_names(cls: type) -> set[str]:
    return {n for c in cls.__mro__ for n in vars(c) if n.startswith("_") and not n.endswith("__")}


PYGLS_PRIVATE = set().union(*(_private_names(c) for c in PYGLS_CLASSES))


def reaches_into_pygls(source: str) -> list[str]:
    """Where `source` imports or uses a private pygls name, or assigns into a pygls module or
    class."""
    tree = ast.parse(source)
    found, pygls_names = [], {"pygls"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pygls"):
            found += [f"imports {a.name}" for a in node.names if a.name.startswith("_")]
            pygls_names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            pygls_names |= {a.asname for a in node.names if a.asname and a.name[:5] == "pygls"}
        elif isinstance(node, ast.Attribute) and node.attr in PYGLS_PRIVATE:
            found.append(f"line {node.lineno}: uses pygls's {node.attr}")
    for assign in (n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AugAssign)):
        for target in assign.targets if isinstance(assign, ast.Assign) else [assign.target]:
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if root is not target and isinstance(root, ast.Name) and root.id in pygls_names:
                found.append(f"line {assign.lineno}: patches {ast.unparse(target)}")
    return found


def test_lsp_never_patches_pygls_nor_calls_its_private_names() -> None:
    """A private name (`_send_response`) or a patched module attribute (`pygls.server.run_async`)
    can change in any patch release; the `<3` bound only covers public API."""
    found = {
        path.name: hits
        for path in sorted((ROOT / "lsp").glob("*.py"))
        if (hits := reaches_into_pygls(path.read_text()))
    }
    assert found == {}


def test_the_scan_sees_what_the_server_used_to_do() -> None:
    old = """
import pygls.server
from pygls.protocol import LanguageServerProtocol

class AssistProtocol(LanguageServerProtocol):
    def refuse(self, msg_id, error):
        self._send_response(msg_id, error=error)

pygls.server.run_async = run_robust
"""
    assert reaches_into_pygls(old) == [
        "line 7: uses pygls's _send_response",
        "line 9: patches pygls.server.run_async",
    ]


def request(msg_id: int, method: str, params: Any) -> bytes:
    return frame(
        json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode()
    )


def notification(method: str, params: Any) -> bytes:
    return frame(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode())


def test_the_lifecycle_in_memory(tmp_path: Path) -> None:
    """Every answer the transport and the protocol give, without a process: what pygls answers
    (initialize, shutdown, an unknown method) and what we answer where it would not."""
    server = create_server(str(tmp_path))
    protocol = server.protocol
    assert isinstance(protocol, AssistProtocol)
    sink = Sink()
    protocol.connect(transport.FrameWriter(sink))
    doc = {"uri": (tmp_path / "a.py").as_uri(), "languageId": "python", "version": 1, "text": ""}
    stream = b"".join(
        [
            request(1, "workspace/symbol", {"query": "x"}),
            notification("textDocument/didOpen", {"textDocument": doc}),  # dropped: too early
            request(2, "initialize", {"processId": None, "rootUri": None, "capabilities": {}}),
            request(3, "textDocument/completion", {"textDocument": {"uri": 5}, "position": "x"}),
            request(4, "initialized", {}),
            frame(b"{this is not json"),
            b"Content-Length: nope\r\n\r\n",
            frame(b"[1, 2]"),
            request(5, "assist/noSuchMethod", {}),
            request(6, "shutdown", None),
            request(7, "workspace/symbol", {"query": "x"}),
            notification("exit", None),
            request(8, "workspace/symbol", {"query": "x"}),  # after exit: never read
        ]
    )
    asyncio.run(transport.pump(protocol, MemoryReader(stream)))
    out = messages(sink.getvalue())
    answers = {m["id"]: m for m in out if "id" in m}
    assert answers[1]["error"]["code"] == -32002
    assert answers[2]["result"]["capabilities"]["completionProvider"]
    assert answers[3]["error"]["code"] == -32602
    assert answers[4]["error"]["code"] == -32600
    assert answers[5]["error"]["code"] == -32601
    assert answers[6] == {"jsonrpc": "2.0", "id": 6, "result": None}
    assert answers[7]["error"]["code"] == -32600
    assert 8 not in answers
    assert not protocol.workspace.text_documents  # the early didOpen was dropped
    shown = [m for m in out if m.get("method") == "window/showMessage"]
    assert len(shown) == 2  # the bad JSON and the non-object, reported as pygls would
    assert exit_code(server) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answer(rfile: IO[bytes], msg_id: int) -> dict[str, Any]:
    """Read the server's messages until the response to `msg_id`."""
    while True:
        (msg,) = messages(_one_frame(rfile))
        if msg.get("id") == msg_id and "method" not in msg:
            return msg


def _one_frame(rfile: IO[bytes]) -> bytes:
    head = b""
    while (line := rfile.readline()) not in (b"\r\n", b""):
        head += line
    assert head, "the server closed the connection"
    length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
    return head + b"\r\n" + rfile.read(length)


def connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def env(tmp_path: Path, make_gguf: Callable[..., Path]) -> dict[str, str]:
    return lsp_env(tmp_path, make_gguf(family="qwen", metadata=True, favorite="a"))


def test_a_real_server_over_tcp(tmp_path: Path, env: dict[str, str]) -> None:
    """`assist lsp --tcp`: one client, malformed bytes survived, `shutdown` + `exit` is 0."""
    repo = tmp_path / "repo"
    repo.mkdir()
    port = free_port()
    cmd = [sys.executable, "-m", "assistant", "lsp", "--tcp", f"127.0.0.1:{port}"]
    with (tmp_path / "lsp.err").open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=err, stderr=err)
    try:
        with connect(port, time.monotonic() + 60) as sock, sock.makefile("rb") as rfile:
            init: dict[str, Any] = {"processId": None, "rootUri": repo.as_uri(), "capabilities": {}}
            sock.sendall(request(1, "initialize", init))
            assert "completionProvider" in answer(rfile, 1)["result"]["capabilities"]
            sock.sendall(b"Content-Length: 99999999999999\r\n\r\n{}")
            sock.sendall(request(2, "workspace/symbol", {"query": "x"}))
            assert "result" in answer(rfile, 2)
            sock.sendall(request(3, "shutdown", None) + notification("exit", None))
            assert answer(rfile, 3)["result"] is None
            assert proc.wait(timeout=30) == 0
            assert rfile.read() == b""  # the server closed the connection
    finally:
        proc.kill()
        proc.wait()


def test_a_client_that_just_leaves_ends_the_server_with_1(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Stdin closed without `shutdown`: the server sees the end at once and exits with 1."""
    cmd = [sys.executable, "-m", "assistant", "lsp"]
    with (tmp_path / "lsp.err").open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(request(1, "initialize", {"processId": None, "capabilities": {}}))
        proc.stdin.flush()
        assert "capabilities" in answer(proc.stdout, 1)["result"]
        proc.stdin.close()
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()
        proc.wait()
