"""The `assist lsp` language server: the pygls server, its protocol fixes, and `serve`.

The handlers are in `handlers.py`; this module registers them. The core does not know either
module exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from assistant import __version__
from assistant.completion.engine import CompletionEngine
from assistant.errors import AssistError
from assistant.workspace import Workspace
from lsp import handlers, warming
from lsp.framing import run_robust

if TYPE_CHECKING:
    from assistant.watcher import Watcher

log = logging.getLogger("assist.lsp")


class _Unanswerable:
    """A request pygls would not answer: it still gets an error response."""

    def __init__(self, msg_id: Any, method: str, error: JsonRpcException) -> None:
        self.id, self.method, self.error = msg_id, method, error


SERVER_NOT_INITIALIZED = -32002
INVALID_REQUEST = -32600


class AssistProtocol(LanguageServerProtocol):
    """The lifecycle as LSP defines it, where pygls 2.1 is silent: a request whose params fail
    validation gets InvalidParams (pygls drops it, and the editor waits for ever), a request
    before `initialize` gets ServerNotInitialized, one after `shutdown` InvalidRequest, and a
    notification sent with an id InvalidRequest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialized = False
        self.shut_down = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        method = data.get("method")
        known = isinstance(method, str) and method in types.METHOD_TO_TYPES
        if "id" in data and known and types.METHOD_TO_TYPES[str(method)][1] is None:
            error = JsonRpcException(f"{method} is a notification: it takes no id")
            error.code = INVALID_REQUEST
            return _Unanswerable(data["id"], str(method), error)
        try:
            return super().structure_message(data)
        except JsonRpcException:
            if "id" in data and "method" in data:
                invalid = JsonRpcInvalidParams(f"invalid params for {data['method']}")
                return _Unanswerable(data["id"], str(data["method"]), invalid)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unanswerable):
            log.warning("%s (id %s): %s", message.method, message.id, message.error)
            self._send_response(message.id, error=message.error.to_response_error())
            return
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        if method is not None and msg_id is not None and method != types.EXIT:
            if self.shut_down:
                self._refuse(msg_id, INVALID_REQUEST, "the server is shutting down")
                return
            if not self.initialized and method != types.INITIALIZE:
                self._refuse(msg_id, SERVER_NOT_INITIALIZED, "send initialize first")
                return
        super().handle_message(message)
        if method == types.INITIALIZE:
            self.initialized = True
        elif method == types.SHUTDOWN:
            self.shut_down = True

    def _refuse(self, msg_id: Any, code: int, message: str) -> None:
        error = JsonRpcException(message)
        error.code = code
        self._send_response(msg_id, error=error.to_response_error())


class AssistServer(LanguageServer):
    def __init__(self, repo: str | None = None) -> None:
        super().__init__("assist", __version__, protocol_cls=AssistProtocol, max_workers=4)
        self.repo = repo
        self.ws: Workspace | None = None
        self.engine: CompletionEngine | None = None
        self.watcher: Watcher | None = None
        self.stopping = threading.Event()
        """Set at shutdown: the first index stops, the watcher is not started."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inflight: dict[str, threading.Event] = {}
        self.cursors: dict[str, tuple[int, int]] = {}
        """The last completion position per document: where an idle warm-up reads from."""
        self.warm_timer: asyncio.TimerHandle | None = None
        self.warming: threading.Event | None = None
        self._warned: set[str] = set()

    def notify_later(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the event loop: worker threads never write to the stream themselves."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn)

    def warn_once(self, message: str) -> None:
        if message in self._warned:
            return
        self._warned.add(message)
        log.warning("%s", message)
        params = types.ShowMessageParams(type=types.MessageType.Warning, message=message)
        self.notify_later(lambda: self.window_show_message(params))


def create_server(repo: str | None = None) -> AssistServer:
    server = AssistServer(repo)
    server.feature(types.INITIALIZED)(handlers.initialized)
    server.feature(types.SHUTDOWN)(handlers.shutdown)
    server.feature(types.TEXT_DOCUMENT_COMPLETION, handlers.COMPLETION_OPTIONS)(handlers.completion)
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        handlers.inline_completion
    )
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(warming.did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(warming.did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(warming.did_close)
    server.feature(types.WORKSPACE_SYMBOL)(handlers.workspace_symbol)
    server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)(handlers.document_symbol)
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION, handlers.CODE_ACTION_OPTIONS)(
        handlers.code_action
    )
    server.feature(types.CODE_ACTION_RESOLVE)(handlers.resolve_code_action)
    server.command("assist.generateDocstring")(handlers.generate_docstring)
    return server


def serve(repo: str | None = None, tcp: str | None = None) -> int:
    """Run until the client exits. Stdout carries the protocol and nothing else."""
    import pygls.server

    # pygls's stdio and TCP loops both call `run_async` by this name: ours survives any bytes.
    pygls.server.run_async = run_robust  # type: ignore[attr-defined,assignment]
    server = create_server(repo)
    if tcp:
        host, _, port = tcp.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise AssistError(f"--tcp {tcp}: not HOST:PORT", "for example --tcp 127.0.0.1:2087")
        try:
            server.start_tcp(host or "127.0.0.1", int(port))
        except OSError as exc:
            raise AssistError(
                f"cannot listen on {host or '127.0.0.1'}:{port}: {exc.strerror}",
                "pick another port, or stop what is using it",
            ) from None
        return exit_code(server)
    # Keep the protocol on a private copy of fd 1, then point fd 1 (and sys.stdout) at stderr:
    # a stray print, or C code writing to stdout, can then never corrupt the stream.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdout: BinaryIO = os.fdopen(proto_fd, "wb", buffering=0)
    server.start_io(sys.stdin.buffer, stdout)
    return exit_code(server)


def exit_code(server: AssistServer) -> int:
    """0 after `shutdown` then `exit`; 1 when the client left without `shutdown` (LSP's rule)."""
    protocol = server.protocol
    return 0 if isinstance(protocol, AssistProtocol) and protocol.shut_down else 1
