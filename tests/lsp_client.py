"""A raw JSON-RPC client over a real `assist lsp` subprocess: bytes on real pipes.

Raw on purpose: the robustness tests send what no well-behaved client library would
(malformed JSON, invalid params, a huge message).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


class RawLspClient:
    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], stderr: Path) -> None:
        self._err = stderr.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self.garbage: list[bytes] = []
        self._next = 0
        self._responses: dict[Any, dict[str, Any]] = {}
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            headers: dict[str, str] = {}
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if b":" not in line:
                    self.garbage.append(line)  # anything but a header here corrupts the stream
                    continue
                key, _, value = line.decode("ascii", "replace").partition(":")
                headers[key.strip().lower()] = value.strip()
            body = out.read(int(headers["content-length"]))
            msg = json.loads(body)
            if "method" in msg and "id" in msg:  # a request from the server: accept it
                self.write({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            with self._cv:
                if "id" in msg and "method" not in msg:
                    self._responses[msg["id"]] = msg
                else:
                    self.notifications.append(msg)
                self._cv.notify_all()

    def write_bytes(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def write(self, msg: dict[str, Any]) -> None:
        self.write_bytes(json.dumps(msg).encode())

    def request(self, method: str, params: Any) -> int:
        self._next += 1
        self.write({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        return self._next

    def notify(self, method: str, params: Any) -> None:
        self.write({"jsonrpc": "2.0", "method": method, "params": params})

    def response(self, msg_id: int, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cv:
            while msg_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no response to request {msg_id}")
                self._cv.wait(left)
            return self._responses.pop(msg_id)

    def call(self, method: str, params: Any, timeout: float = 30.0) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def wait_notification(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for msg in self.notifications:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("notification never came")
                self._cv.wait(left)

    def initialize(self, root: Path) -> dict[str, Any]:
        caps = {
            "window": {"workDoneProgress": True},
            "textDocument": {"inlineCompletion": {}, "completion": {}},
        }
        result = self.call(
            "initialize",
            {"processId": None, "rootUri": root.as_uri(), "capabilities": caps},
        )
        self.notify("initialized", {})
        return result

    def close(self) -> int:
        try:
            self.call("shutdown", None, timeout=10)
            self.notify("exit", None)
            return self.proc.wait(timeout=10)
        except (TimeoutError, BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._err.close()
