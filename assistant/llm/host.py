"""The model host: one process per user and model that holds the weights for every front-end.

The TUI, the language server, the pre-commit hook and the CLI each used to load their own copy
of the model. A host loads it once and serves it on a Unix socket in a directory only its user
may enter (llm/hosting.py finds or starts it); the socket is owner-only too, and on Linux each
connection's peer user is checked. Requests speak the same HTTP and server-sent events as
llama-server, so clients are `RemoteModel`s; the host adds the prompt's progress and its own
account of each request, and serves them one at a time in the order llm/schedule.py decides.

It holds its lock (llm/host_files.py) from start to exit: that, not its answers, says it is
alive. Every client is untrusted input (llm/host_requests.py): a connection idle past
`ASSIST_HOST_CONNECTION_S` is closed, at most `ASSIST_HOST_CONNECTIONS` are served at once,
and the log (next to the socket) is emptied at `ASSIST_HOST_LOG_BYTES`.

A client that closes its connection cancels its request at once, whether it is running or still
queued. The host exits after `model.host_idle` seconds without a request, and at once when its
socket is removed (nobody could find it any more).

Run by `python -m assistant.llm.host` with its spec (JSON) on stdin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.host_files import (
    CappedLog,
    host_limit,
    open_dir,
    open_private,
    try_lock,
    write_pid,
)
from assistant.llm.host_requests import (
    MAX_BODY,
    PICKS,
    PRIORITIES,
    BadRequest,
    Job,
    brief,
    parse_body,
    prepare,
    read_request,
)
from assistant.llm.local import LocalModel
from assistant.llm.protocol import GenerationStats, Priority, Request

log = logging.getLogger("assistant.llm.host")

LISTEN_BACKLOG = 256
"""Connections the kernel queues for the host: every front-end of a busy day at once."""


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
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, path: Path, model: LocalModel, idle_s: float) -> None:
        self.model = model
        self.idle_s = idle_s
        self.connection_s = host_limit("CONNECTION_S", 60.0)
        self.max_connections = int(host_limit("CONNECTIONS", 128))
        self.started = time.time()
        self.requests = 0
        self.active = 0
        self.connections = 0
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

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, up to `max_connections`; past that, a 503 in words."""
        with self.counter:
            room = self.connections < self.max_connections
            if room:
                self.connections += 1
        if not room:
            self._turn_away(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self.counter:
                self.connections -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.counter:
                self.connections -= 1

    def _turn_away(self, request: socket.socket) -> None:
        message = f"the model host serves {self.max_connections} connections, its most"
        data = json.dumps({"message": message, "hint": "try again"}).encode()
        head = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(data))  # fmt: skip
        with contextlib.suppress(OSError):
            request.settimeout(0.2)
            request.sendall(head + data)
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed: one line in the log, not a traceback per client."""
        exc = sys.exc_info()[1]
        if exc is not None:
            log.warning("a connection ended in %s: %s", type(exc).__name__, brief(exc))

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
            "connections": self.connections,
            "idle_s": self.idle_s,
            "idle_for_s": round(self.idle_for(), 1),
            "resident_bytes": resident_bytes(),
        }

    def findable(self) -> bool:
        """Its socket is still where clients look: a host nobody can find should not live."""
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def remove_socket(self) -> None:
        """Unlink the socket if it is still ours (a newer host may have replaced it)."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)


class HostHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostServer

    def setup(self) -> None:
        self.streaming = False
        super().setup()
        # Every read and write on the connection: an idle or stalled client is let go.
        self.connection.settimeout(self.server.connection_s)

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
            self._json(404, {"message": f"no {self.path[:100]} here", "hint": "see llm/host.py"})

    def do_POST(self) -> None:
        try:
            self._post()
        except AssistError as exc:  # BadRequest, or a prompt the model refuses
            log.info("refused a request to %s: %s", self.path[:100], brief(exc))
            if not self.streaming:
                self._json(400, {"message": exc.message, "hint": exc.hint})
            self.close_connection = True  # what is left of its body is not read
        except (ValueError, TypeError, LookupError, RecursionError, OverflowError) as exc:
            log.info("refused a request to %s: %s", self.path[:100], brief(exc))
            if not self.streaming:
                self._json(400, {"message": f"the model host cannot read this request: "
                                 f"{brief(exc)}", "hint": ""})  # fmt: skip
            self.close_connection = True

    def _post(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            raise BadRequest("bad Content-Length", f"at most {MAX_BODY} bytes")
        body = parse_body(self.rfile.read(length))
        if self.path == "/tokenize":
            text = body.get("content")
            if not isinstance(text, str):
                raise BadRequest("tokenize wants a string `content`")
            self._json(200, {"tokens": self.server.model.tokenize(text)})
        elif self.path == "/shutdown":
            self._json(200, {"status": "stopping"})
            self.server.stopping.set()
        elif self.path in PICKS:
            self._generate(self.path, body)
        else:
            self._json(404, {"message": f"no {self.path[:100]} here", "hint": "see llm/host.py"})

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
        priority: Priority = next((p for p in PRIORITIES if p == wanted), "explicit")
        # A client that names no lane is one of its own: nobody else's request supersedes it.
        lane = self.headers.get("X-Assist-Lane") or f"connection-{id(self):x}"
        server = self.server
        request = read_request(body, endpoint, priority, lane, n_ctx=server.model.context_window())
        made = self.headers.get("X-Assist-Made", "")
        if made.isascii() and made.isdigit() and len(made) < 19:
            request.made = int(made)
        job = prepare(server.model, endpoint, body)  # refused with a 400 before the reply begins
        server.track(+1)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_client, args=(request, done), daemon=True)
        watcher.start()
        try:
            self.streaming = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._run(endpoint, job, request)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except OSError:
            request.drop("gone")  # the client left (or stalled past the timeout): cancelled
        finally:
            done.set()
            server.track(-1)
            self.close_connection = True

    def _run(self, endpoint: str, job: Job, request: Request) -> None:
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
        pick = PICKS[endpoint]
        try:
            stream = job(request)
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


def serve(spec: dict[str, Any]) -> int:
    """Take the host's lock, load the model, serve it on `spec["socket"]` until idle, told to
    stop or no longer findable; the exit status."""
    path = Path(spec["socket"])
    try:
        lock_fd = spec.get("lock_fd")  # its starter took the lock and handed it over
        if not isinstance(lock_fd, int):
            lock_fd = open_private(path.parent, path.with_suffix(".lock").name, os.O_RDWR)
    except (AssistError, OSError) as exc:
        print(f"assist model host: cannot open its lock: {exc}", file=sys.stderr, flush=True)
        return 2
    if not try_lock(lock_fd):
        log.info("another host holds the lock of %s; exiting", path)
        return 0
    write_pid(lock_fd)  # held until this process ends, however it ends
    settings = ModelSettings(**spec["settings"])
    try:
        model = LocalModel.load(spec["model"], settings)
    except AssistError as exc:
        print(f"assist model host: {exc.message} ({exc.hint})", file=sys.stderr, flush=True)
        return 2
    with open_dir(path.parent) as dir_fd, contextlib.suppress(FileNotFoundError):
        os.unlink(path.name, dir_fd=dir_fd)  # a dead host's socket: we hold the lock
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
            if not server.findable():
                log.info("its socket %s was removed or replaced; exiting", path)
                break
    finally:
        server.remove_socket()  # first: no new client may find a host that is leaving
        server.shutdown()
        server.server_close()
    return 0


def main() -> int:
    handler = CappedLog(sys.stderr, int(host_limit("LOG_BYTES", 1 << 20)))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return serve(json.loads(sys.stdin.read()))  # its starter writes the spec there


if __name__ == "__main__":
    sys.exit(main())
