"""The `assist lsp` language server: completions, inline completions and symbols from the index.

Each handler is protocol in → one core call (off the event loop) → protocol out. The core does
not know this module exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import from_fs_path, to_fs_path

from assistant import __version__
from assistant.completion import CompletionEngine
from assistant.docstrings import definition_at, docstring_edit
from assistant.errors import AssistError
from assistant.languages import language_for_path
from assistant.symbols import Symbol, extract_symbols
from assistant.workspace import Workspace

log = logging.getLogger("assist.lsp")

SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "type": types.SymbolKind.TypeParameter,
    "struct": types.SymbolKind.Struct,
    "interface": types.SymbolKind.Interface,
    "enum": types.SymbolKind.Enum,
    "constant": types.SymbolKind.Constant,
    "namespace": types.SymbolKind.Namespace,
    "module": types.SymbolKind.Module,
    "trait": types.SymbolKind.Interface,
    "macro": types.SymbolKind.Function,
    "impl": types.SymbolKind.Class,
}


class _Unanswerable:
    """A request whose params failed validation: it still gets an answer (InvalidParams)."""

    def __init__(self, msg_id: Any, method: str, error: JsonRpcException) -> None:
        self.id, self.method, self.error = msg_id, method, error


class AssistProtocol(LanguageServerProtocol):
    """pygls 2.1 drops a request whose params fail validation without answering it, so the
    editor waits forever; here such a request gets InvalidParams instead."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and "method" in data:
                return _Unanswerable(data["id"], str(data["method"]), exc)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unanswerable):
            log.warning("invalid params for %s (id %s)", message.method, message.id)
            error = JsonRpcInvalidParams(f"invalid params for {message.method}")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)


class AssistServer(LanguageServer):
    def __init__(self, repo: str | None = None) -> None:
        super().__init__("assist", __version__, protocol_cls=AssistProtocol, max_workers=4)
        self.repo = repo
        self.ws: Workspace | None = None
        self.engine: CompletionEngine | None = None
        self.watcher: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inflight: dict[str, threading.Event] = {}
        self.explicit = threading.Event()
        """Set while a model request the user asked for (a docstring) runs: completions,
        which fire by themselves as the cursor moves, wait their turn instead of cancelling it."""
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


def _rel(ws: Workspace, uri: str) -> str | None:
    path = to_fs_path(uri)
    if path is None:
        return None
    try:
        return ws.rules.relative(path)
    except AssistError:
        return None


def _doc_text(ls: AssistServer, uri: str) -> str | None:
    """The editor's text of the document (unsaved edits included), or None if unavailable."""
    doc = ls.workspace.get_text_document(uri)
    try:
        return doc.source
    except (OSError, UnicodeDecodeError) as exc:
        log.info("no text for %s: %s", uri, exc)
        return None


def _lsp_position_to_col(ls: AssistServer, uri: str, pos: types.Position) -> tuple[int, int]:
    """Client units (UTF-16 by default) to (line, Python character)."""
    doc = ls.workspace.get_text_document(uri)
    found = doc.position_codec.position_from_client_units(doc.lines, pos)
    return found.line, found.character


def create_server(repo: str | None = None) -> AssistServer:
    server = AssistServer(repo)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: AssistServer, params: types.InitializedParams) -> None:
        ls.loop = asyncio.get_running_loop()
        root = ls.repo or ls.workspace.root_path or os.getcwd()
        try:
            # Not outside a repository: an editor opened in $HOME must not index all of it.
            ls.ws = Workspace.open(root, require_repo=True)
        except AssistError as exc:
            ls.warn_once(f"assist: {exc.message} ({exc.hint})")
            return
        ls.engine = CompletionEngine(ls.ws)
        token = "assist-index"
        progress = bool(
            ls.client_capabilities.window and ls.client_capabilities.window.work_done_progress
        )
        if progress:
            try:
                await ls.work_done_progress.create_async(token)
            except (JsonRpcException, asyncio.CancelledError) as exc:
                log.info("client refused a progress token: %s", exc)
                progress = False
        threading.Thread(
            target=_index_then_watch, args=(ls, token if progress else None), daemon=True
        ).start()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: AssistServer, params: None) -> None:
        for event in list(ls.inflight.values()):
            event.set()
        if ls.watcher is not None:
            ls.watcher.stop()
            ls.watcher = None

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", ",", " "]),
    )
    async def completion(
        ls: AssistServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        found = await _complete(ls, params.text_document.uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        text, word = found
        first = text.split("\n", 1)[0]
        label = (word + first).strip() or text.strip().split("\n", 1)[0]
        # The word before the cursor is replaced by itself plus the completion, so that clients
        # that filter items by that word keep this one. Its length in client (UTF-16) units:
        width = len(word.encode("utf-16-le")) // 2
        start = types.Position(
            line=params.position.line, character=params.position.character - width
        )
        item = types.CompletionItem(
            label=label[:80],
            kind=types.CompletionItemKind.Text,
            detail="assist",
            documentation=types.MarkupContent(
                kind=types.MarkupKind.Markdown, value=f"```\n{word}{text}\n```"
            ),
            filter_text=word + text,
            sort_text="0",
            text_edit=types.TextEdit(
                range=types.Range(start=start, end=params.position), new_text=word + text
            ),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: AssistServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        found = await _complete(ls, params.text_document.uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        text, _ = found
        here = types.Range(start=params.position, end=params.position)
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=text, range=here)]
        )

    @server.feature(types.WORKSPACE_SYMBOL)
    async def workspace_symbol(
        ls: AssistServer, params: types.WorkspaceSymbolParams
    ) -> list[types.SymbolInformation]:
        ws = ls.ws
        if ws is None:
            return []

        def find() -> list[tuple[str, Symbol]]:
            return ws.store.find_symbols(params.query, limit=200) if ws.has_index() else []

        found = await asyncio.get_running_loop().run_in_executor(None, find)
        out = []
        for path, sym in found:
            if not ws.rules.allows(path):
                continue
            uri = from_fs_path(str(ws.root / path)) or ""
            out.append(
                types.SymbolInformation(
                    name=sym.name,
                    kind=SYMBOL_KINDS.get(sym.kind, types.SymbolKind.Variable),
                    location=types.Location(uri=uri, range=_range(sym.start_line, sym.end_line)),
                    container_name=sym.parent,
                )
            )
        return out

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def document_symbol(
        ls: AssistServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol]:
        uri = params.text_document.uri
        path = to_fs_path(uri) or ""
        lang = language_for_path(path)
        text = _doc_text(ls, uri)
        if lang is None or text is None:
            return []
        loop = asyncio.get_running_loop()
        symbols = await loop.run_in_executor(None, extract_symbols, text.encode(), lang)
        return _symbol_tree(symbols)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True
        ),
    )
    async def code_action(
        ls: AssistServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        """Offer "Generate docstring" on an undocumented definition; the model runs only when
        the user picks it (codeAction/resolve), not on every cursor move."""
        ws, uri = ls.ws, params.text_document.uri
        text = _doc_text(ls, uri)
        path = to_fs_path(uri)
        if ws is None or text is None or path is None:
            return None
        line = params.range.start.line + 1
        loop = asyncio.get_running_loop()
        target = await loop.run_in_executor(None, undocumented_at, ws, path, text, line)
        if target is None:
            return None
        data = {"uri": uri, "line": line}
        action = types.CodeAction(
            title=f"Generate docstring for {target}",
            kind=types.CodeActionKind.RefactorRewrite,
            data=data,
        )
        caps = ls.client_capabilities.text_document
        resolves = bool(caps and caps.code_action and caps.code_action.resolve_support)
        if not resolves:  # the client cannot resolve: a command does the work instead
            action.command = types.Command(
                title=action.title, command="assist.generateDocstring", arguments=[data]
            )
        return [action]

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve_code_action(ls: AssistServer, action: types.CodeAction) -> types.CodeAction:
        edit = await _docstring_edit(ls, action.data)
        if edit is not None:
            action.edit = edit
        return action

    @server.command("assist.generateDocstring")
    async def generate_docstring(ls: AssistServer, data: dict[str, Any]) -> None:
        edit = await _docstring_edit(ls, data)
        if edit is not None:
            await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit))

    return server


def undocumented_at(ws: Workspace, path: str, text: str, line: int) -> str | None:
    """The name of the undocumented definition around 1-based `line`, if there is one."""
    try:
        rel = ws.rules.check(path)
    except AssistError:
        return None
    target = definition_at(text, language_for_path(rel), line)
    return None if target is None or target.doc else target.qualified_name


async def _docstring_edit(ls: AssistServer, data: Any) -> types.WorkspaceEdit | None:
    ws = ls.ws
    if ws is None or not isinstance(data, dict) or "uri" not in data or "line" not in data:
        return None
    uri, line = str(data["uri"]), int(data["line"])
    text, path = _doc_text(ls, uri), to_fs_path(uri)
    if text is None or path is None:
        return None
    cancel = threading.Event()

    def run() -> Any:
        try:
            return docstring_edit(ws, path, text, line, cancel=cancel)
        except AssistError as exc:
            ls.warn_once(f"assist: {exc.message} ({exc.hint})")
            return None

    ls.explicit.set()
    try:
        found = await asyncio.get_running_loop().run_in_executor(None, run)
    except asyncio.CancelledError:
        cancel.set()
        raise
    finally:
        ls.explicit.clear()
    if found is None:
        if cancel.is_set():
            ls.warn_once("assist: docstring generation was interrupted; ask again")
        return None
    doc = ls.workspace.get_text_document(uri)
    start = doc.position_codec.position_to_client_units(
        doc.lines, types.Position(line=found.line, character=found.character)
    )
    end = doc.position_codec.position_to_client_units(
        doc.lines, types.Position(line=found.end_line, character=found.end_character)
    )
    change = types.TextEdit(range=types.Range(start=start, end=end), new_text=found.new_text)
    return types.WorkspaceEdit(changes={uri: [change]})


async def _complete(ls: AssistServer, uri: str, position: types.Position) -> tuple[str, str] | None:
    """Run one completion off the loop: (text, the word before the cursor) or None."""
    engine, ws = ls.engine, ls.ws
    if engine is None or ws is None or ls.explicit.is_set():
        return None  # a docstring the user asked for is generating: it is not pre-empted
    text = _doc_text(ls, uri)
    path = to_fs_path(uri)
    if text is None or path is None:
        return None
    line, col = _lsp_position_to_col(ls, uri, position)
    lines = text.split("\n")
    if line >= len(lines):
        return None
    before = lines[line][:col]
    word = re.search(r"\w*$", before)[0]  # type: ignore[index]
    # A newer request for the same document supersedes this one.
    cancel = threading.Event()
    old = ls.inflight.get(uri)
    if old is not None:
        old.set()
    ls.inflight[uri] = cancel

    def run() -> str:
        try:
            return engine.complete(path, text, line, col, cancel=cancel).text
        except AssistError as exc:
            ls.warn_once(f"assist: {exc.message} ({exc.hint})")
            return ""

    try:
        result = await asyncio.get_running_loop().run_in_executor(None, run)
    except asyncio.CancelledError:
        cancel.set()  # $/cancelRequest: stop generating, not only stop waiting
        raise
    finally:
        if ls.inflight.get(uri) is cancel:
            del ls.inflight[uri]
    if cancel.is_set() or not result:
        return None
    return result, word


def _range(start_line: int, end_line: int) -> types.Range:
    return types.Range(
        start=types.Position(line=max(0, start_line - 1), character=0),
        end=types.Position(line=max(0, end_line - 1), character=10_000),
    )


def _symbol_tree(symbols: list[Symbol]) -> list[types.DocumentSymbol]:
    """Nest symbols under their parents (by qualified name), in source order."""
    nodes: dict[str, types.DocumentSymbol] = {}
    children: dict[str, list[types.DocumentSymbol]] = {}
    roots: list[types.DocumentSymbol] = []
    for sym in sorted(symbols, key=lambda s: (s.start_line, -s.end_line)):
        whole = _range(sym.start_line, sym.end_line)
        name_line = types.Position(line=max(0, sym.def_line - 1), character=0)
        node = types.DocumentSymbol(
            name=sym.name,
            detail=sym.signature[:120],
            kind=SYMBOL_KINDS.get(sym.kind, types.SymbolKind.Variable),
            range=whole,
            selection_range=types.Range(start=name_line, end=name_line),
            children=children.setdefault(sym.qualified_name, []),
        )
        if sym.parent and sym.parent in nodes:
            children[sym.parent].append(node)
        else:
            roots.append(node)
        nodes.setdefault(sym.qualified_name, node)
    return roots


def _index_then_watch(ls: AssistServer, token: str | None) -> None:
    """Bring the index up to date with `$/progress`, then keep it fresh with the watcher."""
    from assistant.indexer import IndexReport, Progress
    from assistant.watcher import Watcher

    ws = ls.ws
    assert ws is not None
    progress = ls.work_done_progress

    def send(value: Any) -> None:
        if token is not None:
            ls.notify_later(lambda: progress.report(token, value))

    if token is not None:
        begin = types.WorkDoneProgressBegin(title="assist: indexing", percentage=0)
        ls.notify_later(lambda: progress.begin(token, begin))
    message = "index up to date"
    try:
        last = -1
        for item in ws.index():
            if isinstance(item, Progress) and item.total:
                pct = int(100 * item.done / item.total)
                if pct != last:
                    last = pct
                    label = "symbols" if item.phase == "parse" else "vectors"
                    send(
                        types.WorkDoneProgressReport(
                            message=f"{label} {item.done}/{item.total}", percentage=pct
                        )
                    )
            elif isinstance(item, IndexReport):
                message = f"indexed: {item.parsed} parsed, {len(item.skipped)} skipped"
        ls.watcher = Watcher(ws)
        ls.watcher.start()
    except AssistError as exc:
        message = f"indexing failed: {exc.message}"
        ls.warn_once(f"assist: {exc.message} ({exc.hint})")
    finally:
        if token is not None:
            end = types.WorkDoneProgressEnd(message=message)
            ls.notify_later(lambda: progress.end(token, end))


def serve(repo: str | None = None, tcp: str | None = None) -> None:
    """Run until the client exits. Stdout carries the protocol and nothing else."""
    server = create_server(repo)
    if tcp:
        host, _, port = tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
        return
    # Keep the protocol on a private copy of fd 1, then point fd 1 (and sys.stdout) at stderr:
    # a stray print, or C code writing to stdout, can then never corrupt the stream.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdout: BinaryIO = os.fdopen(proto_fd, "wb", buffering=0)
    server.start_io(sys.stdin.buffer, stdout)
