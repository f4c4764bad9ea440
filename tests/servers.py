"""Real servers on loopback for the tests, and small repositories to index."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, made by the
    `openssl` command; the certificate is also the CA a client must be told to trust."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def llama_cpp_server(
    model: Path, log: Path, *extra: str, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """llama-cpp-python's own server (`python -m llama_cpp.server`) serving `model`; yields
    its base URL (without `/v1`) once `/v1/models` answers. With `tls` (certificate, key) it
    serves HTTPS."""
    port = free_port()
    scheme, context = "http", None
    if tls is not None:
        extra = (*extra, "--ssl_certfile", str(tls[0]), "--ssl_keyfile", str(tls[1]))
        scheme, context = "https", ssl.create_default_context(cafile=str(tls[0]))
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(port), *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=1, context=context).read()
                break
            except urllib.error.HTTPError:
                break  # it answered: one started with --api_key refuses a request without it
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
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
