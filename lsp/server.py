"""The `assist lsp` language server: the pygls server, its lifecycle answers, and `serve`.

The handlers are in `handlers.py`; this module registers them. The core does not know either
module exists.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from lsprotocol.types import EXIT, INITIALIZE, METHOD_TO_TYPES, SHUTDOWN, ErrorCodes
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from assistant import __version__
from assistant.completion.engine import CompletionEngine
from assistant.errors import AssistError
from assistant.workspace import Workspace
from lsp import handlers, transport, warming
from lsp.transport import FrameWriter

if TYPE_CHECKING:
    from assistant.watcher import Watcher

log = logging.getLogger("assist.lsp")


class AssistProtocol(LanguageServerProtocol):
    """pygls's protocol behind our transport (`lsp/transport.py`), answering as LSP defines
    where pygls 2.1 is silent: a request whose params fail validation gets InvalidParams (pygls
    drops it, and the editor waits for ever), a request before `initialize` ServerNotInitialized,
    one after `shutdown` InvalidRequest, and a notification sent with an id InvalidRequest.
    Only pygls's public methods are used: `set_writer`, `structure_message`, `handle_message`."""

    def __init__(self, server: LanguageServer, converter: Any) -> None:
        super().__init__(server, converter)
        self.owner = server
        self.out: FrameWriter | None = None
        self.initialized = False
        self.shut_down = False
        self.exited = False

    def connect(self, writer: FrameWriter) -> None:
        """pygls writes bare JSON bodies to `writer`, which frames them."""
        self.out = writer
        self.set_writer(writer, include_headers=False)

    def receive(self, body: bytes) -> None:
        """One message body from the client: answered, handed to pygls, or reported."""
        try:
            self._receive(json.loads(body))
        except Exception as exc:  # a message that is not one (bad JSON, not JSON-RPC)
            log.exception("unable to handle a message: %.80r", body)
            try:
                self.owner.report_server_error(exc, JsonRpcException)
            except Exception:
                log.warning("could not report the error to the client")

    def _receive(self, data: Any) -> None:
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
            raise ValueError("not a JSON-RPC 2.0 message")
        method = data.get("method")
        request = isinstance(method, str) and "id" in data
        if request and (refusal := self._refusal(str(method))):
            self.reply_error(data["id"], *refusal)
            return
        if isinstance(method, str) and not request and not self.initialized and method != EXIT:
            log.info("dropped %s: it came before initialize", method)  # as LSP says
            return
        try:
            message = self.structure_message(data)
        except Exception:
            if not request:
                raise
            log.info("invalid params for %s", method, exc_info=True)
            self.reply_error(data["id"], ErrorCodes.InvalidParams, f"invalid params for {method}")
            return
        self.exited = self.exited or method == EXIT  # before: pygls's `exit` raises SystemExit
        self.handle_message(message)
        if request and method == INITIALIZE:
            self.initialized = True
        elif request and method == SHUTDOWN:
            self.shut_down = True

    def _refusal(self, method: str) -> tuple[int, str] | None:
        if method in METHOD_TO_TYPES and METHOD_TO_TYPES[method][1] is None:
            return ErrorCodes.InvalidRequest, f"{method} is a notification: it takes no id"
        if self.shut_down:
            return ErrorCodes.InvalidRequest, "the server is shutting down"
        if not self.initialized and method != INITIALIZE:
            return ErrorCodes.ServerNotInitialized, "send initialize first"
        return None

    def reply_error(self, msg_id: Any, code: int, message: str) -> None:
        """An error response, written as pygls writes its own: a bare body to the writer."""
        log.warning("refused request %s: %s", msg_id, message)
        if self.out is not None:
            error = {"code": int(code), "message": message}
            self.out.write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": error}).encode())


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
    server = create_server(repo)
    protocol = server.protocol
    assert isinstance(protocol, AssistProtocol)
    if tcp:
        host, _, port = tcp.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise AssistError(f"--tcp {tcp}: not HOST:PORT", "for example --tcp 127.0.0.1:2087")
        try:
            listener = transport.listen(host or "127.0.0.1", int(port))
        except OSError as exc:
            raise AssistError(
                f"cannot listen on {host or '127.0.0.1'}:{port}: {exc.strerror}",
                "pick another port, or stop what is using it",
            ) from None
        transport.run_tcp(protocol, listener)
        return exit_code(server)
    # Keep the protocol on a private copy of fd 1, then point fd 1 (and sys.stdout) at stderr:
    # a stray print, or C code writing to stdout, can then never corrupt the stream.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    transport.run_streams(protocol, sys.stdin.buffer, os.fdopen(proto_fd, "wb"))
    return exit_code(server)


def exit_code(server: AssistServer) -> int:
    """0 after `shutdown` then `exit`; 1 when the client left without `shutdown` (LSP's rule)."""
    protocol = server.protocol
    return 0 if isinstance(protocol, AssistProtocol) and protocol.shut_down else 1
