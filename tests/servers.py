"""Real servers on loopback for the tests, and small repositories to index."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_cpp_server(model: Path, log: Path, *extra: str) -> Iterator[str]:
    """llama-cpp-python's own server (`python -m llama_cpp.server`) serving `model`; yields
    its base URL (without `/v1`) once `/v1/models` answers."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(port), *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def handlers_repo(root: Path, functions: int) -> Path:
    """A git repository of `functions` near-identical handlers and one distinct function,
    `retry_failed_uploads`, whose chunk comes last."""
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    body = "\n\n".join(
        f'def handler_{i}(request):\n    """Handle request kind {i}."""\n    return {i}\n'
        for i in range(functions)
    )
    (root / "handlers.py").write_text(body)
    (root / "retry.py").write_text(
        'def retry_failed_uploads(paths):\n    """Send the files again."""\n'
        "    return [upload(p) for p in paths]\n"
    )
    return root
