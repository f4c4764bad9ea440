"""The language server's transport, ours from end to end: the bytes in and out of stdio or a
socket, framed by `lsp/framing.py`.

pygls's own loops (`start_io`, `start_tcp`) read with a framing that trusts its input, and
swapping in ours meant patching a module-level name inside pygls that any release may rename.
Here pygls is only the protocol: it is handed each message we read (`Endpoint.receive`), and it
writes through `set_writer(writer, include_headers=False)`, its public hook (the one its
websocket transport uses), which passes us bare JSON bodies to frame.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO, Protocol

from lsp.framing import MAX_CONTENT_LENGTH, AsyncReader, frame, frames

log = logging.getLogger("assist.lsp")


class FrameWriter:
    """Where pygls (and our own error answers) write: each bare JSON body goes out framed and
    whole. Locked, since pygls also answers from worker threads; once the client is gone (it
    sent `exit`, or a write failed) writes are dropped rather than raised into a handler."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.closed = False

    def write(self, body: bytes) -> None:
        with self._lock:
            if self.closed:
                log.debug("dropped a message for a client that is gone: %.80r", body)
                return
            try:
                self._stream.write(frame(body))
                self._stream.flush()
            except (OSError, ValueError) as exc:  # a closed pipe or socket, a closed file
                log.warning("the client is gone: %s", exc)
                self.closed = True

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._stream.close()
            except OSError as exc:
                log.debug("closing the output: %s", exc)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[bytes]", Callable[[int], bytes], int]


def _settle(done: asyncio.Future[bytes], data: bytes) -> None:
    if not done.done():
        done.set_result(data)


class BlockingReader:
    """`frames` reading a blocking stream (stdin, a socket's file) on a daemon thread of its own:
    the handlers' thread pools never lose a worker to a client that sends nothing, and the
    process never waits at exit for a read that may not return."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def readline(self) -> bytes:
        # Bounded like a body: a "line" of endless bytes without a newline is not memory.
        return await self._call(self._stream.readline, MAX_CONTENT_LENGTH)

    async def readexactly(self, n: int) -> bytes:
        return await self._call(self._stream.read, n)

    def _call(self, read: Callable[[int], bytes], n: int) -> asyncio.Future[bytes]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="lsp-read", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        self._jobs.put((loop, done, read, n))
        return done

    def _work(self) -> None:
        while True:
            loop, done, read, n = self._jobs.get()
            try:
                data = read(n) or b""
            except (OSError, ValueError) as exc:  # a reset connection, a closed file: the end
                log.info("reading stopped: %s", exc)
                data = b""
            try:
                loop.call_soon_threadsafe(_settle, done, data)
            except RuntimeError:  # the loop has closed: nobody is reading any more
                return


class Endpoint(Protocol):
    """The protocol side (`AssistProtocol`): what the transport connects to."""

    exited: bool

    def connect(self, writer: FrameWriter) -> None: ...
    def receive(self, body: bytes) -> None: ...


async def pump(endpoint: Endpoint, reader: AsyncReader) -> None:
    """Hand each well-formed frame's body to `endpoint` until the stream ends or the client has
    sent `exit`. pygls ends `exit` with `sys.exit`: the status is `serve`'s to decide."""
    async for body in frames(reader, log):
        try:
            endpoint.receive(body)
        except SystemExit:
            return
        if endpoint.exited:
            return


def run_streams(endpoint: Endpoint, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Serve one client over a pair of blocking streams until it leaves."""
    writer = FrameWriter(stdout)
    endpoint.connect(writer)
    try:
        asyncio.run(pump(endpoint, BlockingReader(stdin)))
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        writer.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on HOST:PORT (OSError if it cannot be had)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family)


def run_tcp(endpoint: Endpoint, listener: socket.socket) -> None:
    """Serve the first client that connects, then stop listening: one editor, one server."""
    with listener:
        log.info("listening on %s", listener.getsockname())
        conn, peer = listener.accept()
    log.info("client connected from %s", peer)
    with conn, conn.makefile("rb") as rfile, conn.makefile("wb") as wfile:
        run_streams(endpoint, rfile, wfile)
