"""The model host: one process per user and model that holds the weights for every front-end.

The TUI, the language server, the pre-commit hook and the CLI each used to load their own copy
of the model. A host loads it once and serves it on a Unix socket in a directory only its user
may enter (llm/hosting.py finds or starts it); the socket is owner-only too, and on Linux each
connection's peer user is checked. Requests speak the same HTTP and server-sent events as
llama-server, so clients are `RemoteModel`s; the host adds the prompt's progress and its own
account of each request, and serves them one at a time in the order llm/schedule.py decides.

A client that closes its connection cancels its request at once, whether it is running or still
queued. The host exits after `model.host_idle` seconds without a request.

Run by `python -m assistant.llm.host` with its spec (JSON) on stdin; its log is next to the
socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, get_args

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.fim import ContextFile, Hole
from assistant.llm.local import LocalModel
from assistant.llm.protocol import GenerationStats, Priority, Request

log = logging.getLogger("assistant.llm.host")

_PRIORITIES: tuple[Priority, ...] = get_args(Priority)
MAX_BODY = 64 * 1024 * 1024
"""Largest request body read: a prompt with a whole repository's context stays well below."""


def resident_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (Linux `/proc`; 0 where that is not available)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class HostServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: Path, model: LocalModel, idle_s: float) -> None:
        self.model = model
        self.idle_s = idle_s
        self.started = time.time()
        self.requests = 0
        self.active = 0
        self.last_used = time.monotonic()
        self.counter = threading.Lock()
        self.stopping = threading.Event()
        self.path = path
        old = os.umask(0o077)  # the socket is created owner-only, not chmod-ed after
        try:
            super().__init__(str(path), HostHandler)
        finally:
            os.umask(old)
        self.inode = os.stat(path).st_ino

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Only the host's own user may connect (the directory says so too; this is Linux's
        word on each connection)."""
        cred = getattr(socket, "SO_PEERCRED", None)
        if cred is None:
            return True
        raw = request.getsockopt(socket.SOL_SOCKET, cred, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        if uid != os.getuid():
            log.warning("refused a connection from pid %d of user %d", pid, uid)
            return False
        return True

    def track(self, delta: int) -> None:
        """A request begins (+1) or ends (-1); the idle clock restarts either way."""
        with self.counter:
            self.active += delta
            self.last_used = time.monotonic()
            if delta > 0:
                self.requests += 1

    def idle_for(self) -> float:
        with self.counter:
            return 0.0 if self.active else time.monotonic() - self.last_used

    def props(self) -> dict[str, Any]:
        model = self.model
        plan = model.gpu_plan
        return {
            "name": model.name,
            "path": str(model.info.path),
            "n_ctx": model.context_window(),
            "fim_kind": model.fim_kind,
            "fim_label": model.fim_label,
            "gpu_plan": plan.describe() if plan is not None else None,
            "pid": os.getpid(),
            "started": self.started,
            "requests": self.requests,
            "active": self.active,
            "idle_s": self.idle_s,
            "idle_for_s": round(self.idle_for(), 1),
            "resident_bytes": resident_bytes(),
        }

    def remove_socket(self) -> None:
        """Unlink the socket if it is still ours (a newer host may have replaced it)."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)


class HostHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def address_string(self) -> str:
        return "local"

    # -- plain requests --------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/props":
            self._json(200, self.server.props())
        else:
            self._json(404, {"message": f"no {self.path} here", "hint": "see llm/host.py"})

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        if self.path == "/tokenize":
            text = body.get("content")
            if not isinstance(text, str):
                self._json(400, {"message": "tokenize wants a string `content`", "hint": ""})
                return
            self._json(200, {"tokens": self.server.model.tokenize(text)})
        elif self.path == "/shutdown":
            self._json(200, {"status": "stopping"})
            self.server.stopping.set()
        elif self.path in ("/v1/completions", "/v1/chat/completions", "/infill"):
            self._generate(self.path, body)
        else:
            self._json(404, {"message": f"no {self.path} here", "hint": "see llm/host.py"})

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._json(400, {"message": "bad Content-Length", "hint": ""})
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._json(400, {"message": f"the request is not JSON: {exc}", "hint": ""})
            return None
        if not isinstance(body, dict):
            self._json(400, {"message": "the request is not a JSON object", "hint": ""})
            return None
        return body

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- generation ------------------------------------------------------------------------

    def _generate(self, endpoint: str, body: dict[str, Any]) -> None:
        wanted = self.headers.get("X-Assist-Priority", "explicit")
        priority: Priority = next((p for p in _PRIORITIES if p == wanted), "explicit")
        # A client that names no lane is one of its own: nobody else's request supersedes it.
        lane = self.headers.get("X-Assist-Lane") or f"connection-{id(self):x}"
        request = read_request(body, endpoint, priority, lane)
        made = self.headers.get("X-Assist-Made", "")
        if made.isdigit():
            request.made = int(made)
        server = self.server
        server.track(+1)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_client, args=(request, done), daemon=True)
        watcher.start()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._run(endpoint, body, request)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except OSError:
            request.drop("gone")  # the client left; its request is cancelled
        finally:
            done.set()
            server.track(-1)
            self.close_connection = True

    def _run(self, endpoint: str, body: dict[str, Any], request: Request) -> None:
        model = self.server.model

        def progress(stats: GenerationStats) -> None:
            if stats.phase == "queued":
                self._chunk(b": queued\n\n")  # keeps the connection alive while it waits
                return
            if stats.phase == "prompt" and stats.prompt_tokens:
                self._event({"prompt_progress": {
                    "total": stats.prompt_tokens, "cache": stats.cached_tokens,
                    "shifted": stats.shifted_tokens, "processed": stats.prompt_done,
                    "time_ms": stats.prompt_ms, "tokens_per_s": stats.prompt_speed,
                }})  # fmt: skip

        request.progress = progress
        pick = _PICKS[endpoint]
        try:
            stream = _start(model, endpoint, body, request)
            try:
                for piece in stream:
                    self._event(pick(piece))
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except AssistError as exc:
            self._event({"error": {"message": exc.message, "hint": exc.hint}})
            return
        except OSError:
            raise  # the client left: `_generate` cancels the request
        except Exception as exc:  # a fault in llama.cpp or in us: the client hears it, we log it
            log.exception("request to %s failed", endpoint)
            message = f"the model host failed on this request: {type(exc).__name__}: {exc}"
            self._event({"error": {"message": message, "hint": "see the host's log"}})
            return
        stats = request.stats
        log.debug("%s %s: %d prompt tokens, %d reused, %d shifted, %d read; %d written; %s",
                  endpoint, request.priority, stats.prompt_tokens, stats.cached_tokens,
                  stats.shifted_tokens, stats.read_tokens, stats.generated_tokens,
                  stats.stopped_by or request.dropped)  # fmt: skip
        self._event({"assist_stats": {
            "stopped_by": stats.stopped_by, "dropped": request.dropped,
            "prompt_tokens": stats.prompt_tokens, "cached_tokens": stats.cached_tokens,
            "shifted_tokens": stats.shifted_tokens, "prompt_done": stats.prompt_done,
            "prompt_ms": stats.prompt_ms, "generated_tokens": stats.generated_tokens,
            "wait_ms": stats.wait_ms, "order": request.order,
        }})  # fmt: skip

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch_client(self, request: Request, done: threading.Event) -> None:
        """Cancel the request the moment its client closes the connection: while the model
        reads a long prompt nothing is written, so a failed write would come too late."""
        sock = self.connection
        while not done.is_set() and not request.cancel.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.05)
                if readable and not sock.recv(1, socket.MSG_PEEK):
                    request.drop("gone")
                    return
            except (OSError, ValueError):
                request.drop("gone")
                return
            if readable:
                time.sleep(0.05)  # a client sending more than its request: not ours to read


def read_request(body: dict[str, Any], endpoint: str, priority: Priority, lane: str) -> Request:
    """The request a client's body describes: its limits in llama-server's names."""

    def number(key: str) -> float | None:
        value = body.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        return float(value) if value >= 0 and math.isfinite(value) else None

    max_tokens = number("n_predict" if endpoint == "/infill" else "max_tokens")
    if endpoint == "/infill" and isinstance(body.get("n_predict"), int) and body["n_predict"] < 0:
        max_tokens = None  # llama-server's "no limit": ours is the configured one
    prompt_ms, predict_ms = number("t_max_prompt_ms"), number("t_max_predict_ms")
    temperature = number("temperature")
    grammar = body.get("grammar")
    return Request(
        max_tokens=None if max_tokens is None else int(max_tokens),
        temperature=None if temperature is None else min(temperature, 5.0),
        priority=priority,
        prompt_s=None if prompt_ms is None else prompt_ms / 1000,
        generate_s=None if predict_ms is None else predict_ms / 1000,
        grammar=grammar if isinstance(grammar, str) else None,
        lane=lane,
    )


def _start(
    model: LocalModel, endpoint: str, body: dict[str, Any], request: Request
) -> Iterator[str]:
    if endpoint == "/v1/completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise AssistError("a completion wants a string `prompt`", "")
        return model.complete(prompt, request)
    if endpoint == "/v1/chat/completions":
        messages = [
            Message(str(m.get("role", "user")), str(m.get("content", "")))  # type: ignore[arg-type]
            for m in body.get("messages") or []
            if isinstance(m, dict)
        ]
        return model.chat(messages, request)
    context = [
        ContextFile(str(c.get("filename", "")), str(c.get("text", "")))
        for c in body.get("input_extra") or []
        if isinstance(c, dict)
    ]
    hole = Hole(
        str(body.get("input_prefix", "")), str(body.get("input_suffix", "")),
        path=str(body.get("path", "")), context=context, typed=str(body.get("prompt", "")),
    )  # fmt: skip
    return model.infill(hole, request)


_PICKS: dict[str, Callable[[str], dict[str, Any]]] = {
    "/v1/completions": lambda text: {"choices": [{"text": text, "finish_reason": None}]},
    "/v1/chat/completions": lambda text: {"choices": [{"delta": {"content": text}}]},
    "/infill": lambda text: {"content": text},
}


def serve(spec: dict[str, Any]) -> int:
    """Load the model, serve it on `spec["socket"]` until idle or told to stop; exit status."""
    path = Path(spec["socket"])
    settings = ModelSettings(**spec["settings"])
    try:
        model = LocalModel.load(spec["model"], settings)
    except AssistError as exc:
        print(f"assist model host: {exc.message} ({exc.hint})", file=sys.stderr, flush=True)
        return 2
    if path.exists():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # a dead host's socket
            else:
                log.info("another host already serves %s; exiting", path)
                return 0
    server = HostServer(path, model, float(spec["idle_s"]))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: server.stopping.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    log.info("serving %s on %s (pid %d)", model.name, path, os.getpid())
    print("ready", flush=True)
    try:
        while not server.stopping.wait(0.5):
            if server.idle_for() > server.idle_s:
                log.info("idle for %.0f s; exiting", server.idle_s)
                break
    finally:
        server.remove_socket()  # first: no new client may find a host that is leaving
        server.shutdown()
        server.server_close()
    return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    return serve(json.loads(sys.stdin.read()))  # its starter writes the spec there


if __name__ == "__main__":
    sys.exit(main())
