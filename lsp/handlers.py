"""What the language server does for each request: protocol in, one core call, protocol out.

Every handler is a module-level function of (server, params), so each can be called alone in a
test; `server.py` registers them. Core calls run off the event loop (`run_in_executor`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import threading
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path, to_fs_path

from assistant.completion.engine import CompletionEngine
from assistant.docstrings.edit import definition_at, docstring_edit
from assistant.errors import AssistError
from assistant.index.languages import language_for_path
from assistant.index.symbols import Symbol, extract_symbols
from assistant.workspace import Workspace
from lsp import warming
from lsp.progress import LongRequestProgress, index_then_watch

if TYPE_CHECKING:
    from lsp.server import AssistServer

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
COMPLETION_OPTIONS = types.CompletionOptions(trigger_characters=[".", "(", ",", " "])
CODE_ACTION_OPTIONS = types.CodeActionOptions(
    code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True
)


MAX_UNOPENED_BYTES = 2_000_000
"""An unopened document is read from disk only when it is a regular file this small: a FIFO
would block the server and `/dev/zero` would fill its memory."""


def _doc_text(ls: AssistServer, uri: str) -> str | None:
    """The editor's text of the document (unsaved edits included), or None if unavailable."""
    if uri not in ls.workspace.text_documents:
        path = to_fs_path(uri)
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size > MAX_UNOPENED_BYTES:
            log.info("not reading %s: not an open document nor a small regular file", uri)
            return None
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
        target=index_then_watch, args=(ls, token if progress else None), daemon=True
    ).start()


def shutdown(ls: AssistServer, params: None) -> None:
    ls.stopping.set()
    warming.stop(ls)
    for event in list(ls.inflight.values()):
        event.set()
    if ls.watcher is not None:
        ls.watcher.stop()
        ls.watcher = None


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
    start = types.Position(line=params.position.line, character=params.position.character - width)
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


async def workspace_symbol(
    ls: AssistServer, params: types.WorkspaceSymbolParams
) -> list[types.SymbolInformation]:
    ws = ls.ws
    if ws is None:
        return []

    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, ws.find_symbols, params.query, 200)
    out = []
    for path, sym in found:
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


async def resolve_code_action(ls: AssistServer, action: types.CodeAction) -> types.CodeAction:
    edit = await _docstring_edit(ls, action.data)
    if edit is not None:
        action.edit = edit
    return action


async def generate_docstring(ls: AssistServer, data: dict[str, Any]) -> None:
    edit = await _docstring_edit(ls, data)
    if edit is not None:
        await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit))


def undocumented_at(ws: Workspace, path: str, text: str, line: int) -> str | None:
    """The name of the undocumented definition around 1-based `line`, if there is one."""
    try:
        rel = ws.rules.check(path).rel or path
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
    progress = LongRequestProgress(ls, "assist: writing a docstring")

    def run() -> Any:
        try:
            return docstring_edit(ws, path, text, line, cancel=cancel, progress=progress.report)
        except AssistError as exc:
            ls.warn_once(f"assist: {exc.message} ({exc.hint})")
            return None

    try:
        found = await asyncio.get_running_loop().run_in_executor(None, run)
    except asyncio.CancelledError:
        cancel.set()
        raise
    finally:
        progress.end()
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
    if engine is None or ws is None:
        return None
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
    ls.cursors[uri] = (line, col)
    # A newer request for the same document supersedes this one.
    cancel = threading.Event()
    old = ls.inflight.get(uri)
    if old is not None:
        old.set()
    ls.inflight[uri] = cancel

    def run() -> str:
        try:
            done = engine.complete(path, text, line, col, cancel=cancel, editor=True)
        except AssistError as exc:
            ls.warn_once(f"assist: {exc.message} ({exc.hint})")
            return ""
        if done.note:
            log.info("completion at %s:%d:%d: %s", path, line + 1, col, done.note)
        t = done.timings
        log.debug(
            "completion at %s:%d:%d: %s%s, %d prompt tokens: reused %d, shifted %d, read %d; "
            "%.0f ms, waited %.0f ms, overhead %.1f ms, recall %.1f ms",
            path, line + 1, col, done.source or "empty", " (a new place)" if done.cold else "",
            t.prompt_tokens, t.cached_tokens, t.shifted_tokens, t.read_tokens, t.total_ms,
            t.wait_ms, t.overhead_ms, t.recall_ms,
        )  # fmt: skip
        return done.text

    try:
        result = await asyncio.get_running_loop().run_in_executor(None, run)
    except asyncio.CancelledError:
        cancel.set()  # $/cancelRequest: stop generating, not only stop waiting
        raise
    finally:
        if ls.inflight.get(uri) is cancel:
            del ls.inflight[uri]
            warming.schedule(ls, uri)
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
