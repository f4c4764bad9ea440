"""The language server's reader against broken byte streams: first the framing alone on an
in-memory stream, then the real `assist lsp` subprocess fed every malformed header variant,
each followed by a valid request that must be answered."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lsp_client import RawLspClient
from memory_io import MemoryReader
from test_lsp import lsp_env

from lsp.framing import MAX_CONTENT_LENGTH, frames


def bodies(data: bytes) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [b async for b in frames(MemoryReader(data), logging.getLogger("test"))]

    return asyncio.run(collect())


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


GOOD = b'{"jsonrpc":"2.0","id":7,"method":"x"}'
BAD_HEADERS = [
    b"Content-Length: 99999999999999\r\n\r\n{}",
    b"Content-Length: abc\r\n\r\n{}",
    b"Content-Length: -5\r\n\r\n{}",
    b"Content-Type: application/json\r\n\r\n{}",
    b"\r\n\r\n{}",
    b"Content-Length: %d\r\n\r\n" % (MAX_CONTENT_LENGTH + 1),
    b"garbage without any newline",
    b"\x00\xff\xfe binary \x80",
]


@pytest.mark.parametrize("bad", BAD_HEADERS)
def test_the_next_valid_message_is_never_lost(bad: bytes) -> None:
    assert bodies(bad + frame(GOOD)) == [GOOD]


def test_header_names_in_any_case_and_lf_line_ends() -> None:
    data = b"content-length:%d\n\n%s" % (len(GOOD), GOOD) + b"CONTENT-LENGTH: 2\r\n\r\n{}"
    assert bodies(data) == [GOOD, b"{}"]


def test_a_stream_that_ends_inside_a_body_ends_cleanly() -> None:
    assert bodies(frame(GOOD) + b"Content-Length: 50\r\n\r\n{") == [GOOD]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.fixture
def client(tmp_path: Path, repo: Path, make_gguf: Callable[..., Path]) -> Iterator[RawLspClient]:
    """`assist lsp` as a subprocess on `repo`, not yet initialized."""
    env = lsp_env(tmp_path, make_gguf(family="qwen", metadata=True, favorite="a"))
    c = RawLspClient([sys.executable, "-m", "assistant", "lsp"], repo, env, tmp_path / "lsp.err")
    yield c
    c.close()


def test_the_server_survives_every_malformed_header(client: RawLspClient, repo: Path) -> None:
    client.initialize(repo)
    stdin = client.proc.stdin
    assert stdin is not None
    for bad in BAD_HEADERS:
        stdin.write(bad)
        stdin.flush()
        reply = client.call("workspace/symbol", {"query": "x"}, timeout=30)
        # The request after the damage is valid: it gets its answer, not an error.
        assert "error" not in reply and isinstance(reply.get("result"), list), (bad, reply)
    assert client.proc.poll() is None  # still alive


def test_the_lifecycle_is_answered_as_lsp_says(client: RawLspClient, repo: Path) -> None:
    early = client.call("workspace/symbol", {"query": "x"})
    assert early["error"]["code"] == -32002  # before initialize
    client.initialize(repo)
    odd = client.call("initialized", {})  # a notification sent with an id
    assert odd["error"]["code"] == -32600
    assert "result" in client.call("shutdown", None)
    late = client.call("workspace/symbol", {"query": "x"})
    assert late["error"]["code"] == -32600  # after shutdown
    client.notify("exit", None)
    assert client.proc.wait(timeout=30) == 0


def test_exit_without_shutdown_is_exit_code_1(client: RawLspClient, repo: Path) -> None:
    client.initialize(repo)
    client.notify("exit", None)
    assert client.proc.wait(timeout=30) == 1


def test_unopened_special_files_are_never_read(client: RawLspClient, repo: Path) -> None:
    """A FIFO would block the server and /dev/zero would fill its memory: documents that are
    not open are read only when they are small regular files."""
    fifo = repo / "pipe.py"
    os.mkfifo(fifo)
    client.initialize(repo)
    for uri in (fifo.as_uri(), "file:///dev/zero"):
        reply = client.call(
            "textDocument/documentSymbol", {"textDocument": {"uri": uri}}, timeout=30
        )
        assert reply["result"] == []
    assert "result" in client.call("workspace/symbol", {"query": "x"})  # not frozen
