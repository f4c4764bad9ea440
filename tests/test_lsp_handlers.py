"""Language-server handlers called one at a time, as plain functions, on a real workspace and a
real pygls server object (no stdio): what each returns for one request."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from lsprotocol import types
from pygls.uris import from_fs_path

from assistant.workspace import Workspace
from lsp import handlers
from lsp.server import AssistServer, create_server

CODE = '''def upload_file(path):
    """Send one file."""
    return path


class Uploader:
    def retry(self):
        return upload_file("x")
'''


def server_on(tmp_path: Path) -> AssistServer:
    root = tmp_path / "repo"
    (root / "secrets").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "upload.py").write_text(CODE)
    (root / "secrets" / "keys.py").write_text("def upload_token():\n    return 1\n")
    ws = Workspace.open(root)
    for _ in ws.index(vectors=False):
        pass
    # The index holds the private file's symbols only if a rule changed after indexing; the
    # workspace must filter them anyway.
    with ws.store.transaction():
        ws.store.replace_file(
            "secrets/keys.py", content_hash="x", size=1, mtime_ns=1, language="python",
            symbols=[("upload_token", "upload_token", "function", "def upload_token()", "",
                      1, 2, 1, None)],
            chunks=[], keywords=[],
        )  # fmt: skip
    server = create_server(str(root))
    # What the client's `initialize` does first: pygls makes its in-memory workspace.
    params = types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(root))
    )
    list(server.protocol.lsp_initialize(params))
    server.ws = ws
    return server


def test_workspace_symbols_come_from_the_index_without_private_files(tmp_path: Path) -> None:
    ls = server_on(tmp_path)
    params = types.WorkspaceSymbolParams(query="upload")
    found = asyncio.run(handlers.workspace_symbol(ls, params))
    assert sorted(s.name for s in found) == ["Uploader", "upload_file"]  # not upload_token
    assert all(s.location.uri.endswith("/upload.py") for s in found)
    assert {s.name: s.kind for s in found}["upload_file"] == types.SymbolKind.Function


def test_document_symbols_nest_methods_under_their_class(tmp_path: Path) -> None:
    ls = server_on(tmp_path)
    assert ls.ws is not None
    uri = from_fs_path(str(ls.ws.root / "upload.py")) or ""
    ls.workspace.put_text_document(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=CODE)
    )
    params = types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    tree = asyncio.run(handlers.document_symbol(ls, params))
    assert [s.name for s in tree] == ["upload_file", "Uploader"]
    assert [c.name for c in tree[1].children or []] == ["retry"]


def test_no_workspace_means_empty_answers_not_errors(tmp_path: Path) -> None:
    ls = create_server(str(tmp_path))
    params = types.WorkspaceSymbolParams(query="x")
    assert asyncio.run(handlers.workspace_symbol(ls, params)) == []
