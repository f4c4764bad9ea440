"""`assist lsp` as a subprocess, driven over its real stdio by a raw JSON-RPC client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_client import RawLspClient

GEOMETRY = '''"""Shapes."""


def area_of_circle(radius: float) -> float:
    """Area of a circle."""
    return 3.14159 * radius * radius


class Rectangle:
    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height

    def area(self) -> float:
        return self.width * self.height
'''
REPORT = """from shapes.geometry import Rectangle, area_of_circle


def describe(r: float) -> str:
    total = area_of_circle(r)
    return f"circle {total}"
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def lsp_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "shapes").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "shapes" / "geometry.py").write_text(GEOMETRY)
    (root / "shapes" / "report.py").write_text(REPORT)
    (root / ".env").write_text("SECRET=1\n")
    git(root, "add", "-A")
    return root


def lsp_env(tmp_path: Path, model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        ASSIST_MODEL=str(model),
        ASSIST_INDEX_VECTORS="false",  # keyword index only: these tests are about the protocol
        # No time budgets: on a loaded machine they would (rightly) cut completions short.
        ASSIST_COMPLETION_PROMPT_MS="600000",
        ASSIST_COMPLETION_GENERATE_MS="600000",
        # The tiny model writes "a" until its limit; 8 tokens make one word, not a refused loop.
        ASSIST_DOCSTRING_MAX_TOKENS="8",
    )
    return env


@pytest.fixture
def fim_gguf(make_gguf: Callable[..., Path]) -> Path:
    return make_gguf(family="qwen", metadata=True, favorite="a")


@pytest.fixture
def client(tmp_path: Path, lsp_repo: Path, fim_gguf: Path) -> Iterator[RawLspClient]:
    cmd = [sys.executable, "-m", "assistant", "lsp"]
    c = RawLspClient(cmd, lsp_repo, lsp_env(tmp_path, fim_gguf), tmp_path / "lsp.err")
    yield c
    c.close()


def open_doc(c: RawLspClient, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    c.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": uri,
                "languageId": "python",
                "version": 1,
                "text": path.read_text() if text is None else text,
            }
        },
    )
    return uri


def indexed(c: RawLspClient) -> None:
    """Wait for the end of the indexing progress the server reports."""
    c.wait_notification(
        lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "end"
    )


def test_completion_inline_completion_and_progress(client: RawLspClient, lsp_repo: Path) -> None:
    init = client.initialize(lsp_repo)
    caps = init["result"]["capabilities"]
    assert caps["completionProvider"]
    assert caps["inlineCompletionProvider"] is not None
    assert caps["workspaceSymbolProvider"]
    assert caps["documentSymbolProvider"]
    begin = client.wait_notification(
        lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "begin"
    )
    assert begin["params"]["value"]["title"] == "assist: indexing"
    indexed(client)
    uri = open_doc(client, lsp_repo / "shapes" / "report.py")
    pos = {"line": 4, "character": 13}  # after "total = a"
    resp = client.call("textDocument/completion", {"textDocument": {"uri": uri}, "position": pos})
    items = resp["result"]["items"]
    assert len(items) == 1
    edit = items[0]["textEdit"]
    # The word before the cursor ("a") is replaced by itself plus the completion.
    assert edit["range"]["start"] == {"line": 4, "character": 12}
    assert edit["newText"].startswith("a") and len(edit["newText"]) > 1
    resp = client.call(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": uri}, "position": pos, "context": {"triggerKind": 1}},
    )
    inline = resp["result"]["items"]
    assert inline and inline[0]["insertText"]
    assert inline[0]["range"]["start"] == pos
    assert not client.garbage


def test_symbols_and_unsaved_edits(client: RawLspClient, lsp_repo: Path) -> None:
    client.initialize(lsp_repo)
    indexed(client)
    resp = client.call("workspace/symbol", {"query": "area"})
    found = {(s["name"], s["location"]["uri"].rsplit("/", 1)[-1]) for s in resp["result"]}
    assert ("area_of_circle", "geometry.py") in found
    assert ("area", "geometry.py") in found
    uri = open_doc(client, lsp_repo / "shapes" / "geometry.py")
    # An unsaved edit, sent incrementally: a new function appended at the end.
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": 16, "character": 0},
                        "end": {"line": 16, "character": 0},
                    },
                    "text": "\n\ndef brand_new_helper():\n    return 1\n",
                }
            ],
        },
    )
    resp = client.call("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    tree = {s["name"]: [c["name"] for c in s.get("children", [])] for s in resp["result"]}
    assert tree["Rectangle"] == ["__init__", "area"]
    assert "brand_new_helper" in tree
    assert (lsp_repo / "shapes" / "geometry.py").read_text() == GEOMETRY  # never written


def test_bad_input_gets_answers_not_hangs(client: RawLspClient, lsp_repo: Path) -> None:
    client.initialize(lsp_repo)
    client.write_bytes(b"{this is not json")
    bad = client.call("textDocument/completion", {"textDocument": {"uri": 5}, "position": "x"})
    assert bad["error"]["code"] == -32602  # InvalidParams, where stock pygls never answers
    unknown = client.call("assist/noSuchMethod", {})
    assert unknown["error"]["code"] == -32601
    # A file never opened and not on disk: an empty answer.
    ghost = (lsp_repo / "ghost.py").as_uri()
    resp = client.call(
        "textDocument/completion",
        {"textDocument": {"uri": ghost}, "position": {"line": 0, "character": 0}},
    )
    assert resp["result"]["items"] == []
    # A private file: no completion, since its text would reach the model.
    env_uri = open_doc(client, lsp_repo / ".env")
    resp = client.call(
        "textDocument/completion",
        {"textDocument": {"uri": env_uri}, "position": {"line": 0, "character": 7}},
    )
    assert resp["result"]["items"] == []
    # A huge message (4 MB) is read and handled.
    big = "x = 1\n" * 700_000
    uri = open_doc(client, lsp_repo / "big.py", big)
    resp = client.call("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert resp["result"] == []
    # And after all that, the server still works.
    resp = client.call("workspace/symbol", {"query": "Rectangle"})
    assert resp["result"][0]["name"] == "Rectangle"
    assert client.close() == 0


def test_model_that_fails_to_load(tmp_path: Path, lsp_repo: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a gguf file")
    cmd = [sys.executable, "-m", "assistant", "lsp"]
    c = RawLspClient(cmd, lsp_repo, lsp_env(tmp_path, broken), tmp_path / "lsp.err")
    try:
        c.initialize(lsp_repo)
        uri = open_doc(c, lsp_repo / "shapes" / "report.py")
        resp = c.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 13}},
        )
        assert resp["result"]["items"] == []
        shown = c.wait_notification(lambda m: m.get("method") == "window/showMessage")
        assert "not a GGUF model" in shown["params"]["message"]
        indexed(c)
        resp = c.call("workspace/symbol", {"query": "area"})
        assert resp["result"]
    finally:
        c.close()


def test_cancel_stops_a_completion_in_flight(
    tmp_path: Path, lsp_repo: Path, make_gguf: Callable[..., Path]
) -> None:
    """The tiny model writes "a" for 4,000 tokens (a second or more on any machine); the cancel
    arrives within milliseconds, so the request is always in flight when it lands."""
    model = make_gguf(family="qwen", metadata=True, favorite="a", context_length=8192)
    env = {
        **lsp_env(tmp_path, model),
        "ASSIST_MODEL_N_CTX": "8192",
        "ASSIST_COMPLETION_MAX_TOKENS": "4000",
        "ASSIST_COMPLETION_MULTILINE": "never",
    }
    c = RawLspClient([sys.executable, "-m", "assistant", "lsp"], lsp_repo, env,
                     tmp_path / "lsp.err")  # fmt: skip
    try:
        c.initialize(lsp_repo)
        indexed(c)
        uri = open_doc(c, lsp_repo / "shapes" / "report.py")
        pos = {"line": 4, "character": 13}
        params = {"textDocument": {"uri": uri}, "position": pos}
        msg_id = c.request("textDocument/completion", params)
        c.notify("$/cancelRequest", {"id": msg_id})
        assert c.response(msg_id)["error"]["code"] == -32800  # RequestCancelled
        # The model was released at once: a second request is answered in full.
        again = c.call("textDocument/completion", params, timeout=120)
        assert again["result"]["items"]
    finally:
        c.close()


def test_stdout_carries_only_the_protocol(tmp_path: Path, lsp_repo: Path, fim_gguf: Path) -> None:
    """Even a model load (llama.cpp's chatter) writes nothing to stdout but protocol frames."""
    cmd = [sys.executable, "-m", "assistant", "-v", "lsp"]
    env = lsp_env(tmp_path, fim_gguf)
    env["ASSIST_MODEL_HOST"] = "false"  # the model loads in this process, chatter and all
    c = RawLspClient(cmd, lsp_repo, env, tmp_path / "lsp.err")
    try:
        c.initialize(lsp_repo)
        uri = open_doc(c, lsp_repo / "shapes" / "report.py")
        resp = c.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 13}},
        )
        assert "result" in resp
    finally:
        assert c.close() == 0
    assert c.garbage == []
    log = (tmp_path / "lsp.err").read_text()
    assert "llama" in log.lower()  # llama.cpp's chatter went to stderr (-v logs it)
    json.dumps(resp)


def test_generate_docstring_code_action(client: RawLspClient, lsp_repo: Path) -> None:
    client.initialize(lsp_repo)
    uri = open_doc(client, lsp_repo / "shapes" / "report.py")
    action = docstring_action(client, uri)
    assert action["title"] == "Generate docstring for describe"
    assert "edit" not in action  # the model runs only when the action is chosen
    resolved = client.call("codeAction/resolve", action)["result"]
    (change,) = resolved["edit"]["changes"][uri]
    assert change["range"]["start"]["line"] == 4  # inserted under `def describe(...)`
    assert change["newText"].lstrip().startswith('"""')
    # A definition that has its docstring gets no action.
    geo = open_doc(client, lsp_repo / "shapes" / "geometry.py")
    there = {"start": {"line": 5, "character": 4}, "end": {"line": 5, "character": 4}}
    resp = client.call(
        "textDocument/codeAction",
        {"textDocument": {"uri": geo}, "range": there, "context": {"diagnostics": []}},
    )
    assert resp["result"] is None


def test_outside_a_repository_nothing_is_indexed(tmp_path: Path, fim_gguf: Path) -> None:
    """An editor opened in a plain folder (say $HOME) must not index all of it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.py").write_text("def f():\n    return 1\n")
    cmd = [sys.executable, "-m", "assistant", "lsp"]
    c = RawLspClient(cmd, home, lsp_env(tmp_path, fim_gguf), tmp_path / "lsp.err")
    try:
        c.initialize(home)
        shown = c.wait_notification(lambda m: m.get("method") == "window/showMessage")
        assert "not inside a git repository" in shown["params"]["message"]
        assert c.call("workspace/symbol", {"query": "f"})["result"] == []
    finally:
        c.close()
    assert not (home / ".assist").exists()


def docstring_action(c: RawLspClient, uri: str) -> dict[str, Any]:
    """The one code action offered under `def describe(...)`: "Generate docstring"."""
    here = {"start": {"line": 4, "character": 4}, "end": {"line": 4, "character": 4}}
    (action,) = c.call(
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": here, "context": {"diagnostics": []}},
    )["result"]
    return action  # type: ignore[no-any-return]


def slow_client(tmp_path: Path, lsp_repo: Path, make_gguf: Callable[..., Path]) -> RawLspClient:
    """A server whose model writes "a" for thousands of tokens: every request is long."""
    model = make_gguf(family="qwen", metadata=True, favorite="a", context_length=8192)
    env = {**lsp_env(tmp_path, model), "ASSIST_MODEL_N_CTX": "8192",
           "ASSIST_COMPLETION_MAX_TOKENS": "4000", "ASSIST_COMPLETION_MULTILINE": "never",
           "ASSIST_DOCSTRING_MAX_TOKENS": "4000"}  # fmt: skip
    return RawLspClient(
        [sys.executable, "-m", "assistant", "-v", "lsp"], lsp_repo, env, tmp_path / "lsp.err"
    )


def test_a_newer_keystroke_supersedes_the_completion_in_flight(
    tmp_path: Path, lsp_repo: Path, make_gguf: Callable[..., Path]
) -> None:
    c = slow_client(tmp_path, lsp_repo, make_gguf)
    try:
        c.initialize(lsp_repo)
        indexed(c)
        uri = open_doc(c, lsp_repo / "shapes" / "report.py")
        first = c.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 12}},
        )
        second = c.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 13}},
        )
        assert c.response(first)["result"]["items"] == []  # dropped, not finished
        assert c.response(second, timeout=120)["result"]["items"]
    finally:
        c.close()


def test_a_docstring_the_user_asked_for_is_not_pre_empted_by_completions(
    tmp_path: Path, lsp_repo: Path, make_gguf: Callable[..., Path]
) -> None:
    c = slow_client(tmp_path, lsp_repo, make_gguf)
    try:
        c.initialize(lsp_repo)
        uri = open_doc(c, lsp_repo / "shapes" / "report.py")
        action = docstring_action(c, uri)
        resolving = c.request("codeAction/resolve", action)
        # While the docstring is written, a completion (fired by the cursor) waits its turn:
        # it is answered empty at once instead of cancelling the docstring.
        done = c.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 13}},
        )
        assert done["result"]["items"] == []
        resolved = c.response(resolving, timeout=120)["result"]
        # It ran to its end: 4,000 tokens of "a" are a loop, refused, and the user told why
        # (a pre-empted request would have been cut short and said nothing).
        assert "edit" not in resolved
        said = c.wait_notification(lambda m: m.get("method") == "window/showMessage")
        assert said["params"]["message"].startswith(
            "assist: no docstring for describe: generated doc refused: it repeats itself"
        )
    finally:
        c.close()


def test_a_long_docstring_request_shows_progress(
    tmp_path: Path, lsp_repo: Path, make_gguf: Callable[..., Path]
) -> None:
    """A request the user asked for shows `$/progress` once it has taken a second, and a quick
    one shows none. How long it takes depends on the machine, so both outcomes are checked."""
    # Wider and deeper than the other tiny models: the docstring takes seconds on 2 cores.
    model = make_gguf(family="qwen", metadata=True, favorite="a", context_length=8192,
                      n_embd=256, n_layers=6)  # fmt: skip
    env = {**lsp_env(tmp_path, model), "ASSIST_MODEL_N_CTX": "8192",
           "ASSIST_DOCSTRING_MAX_TOKENS": "1500"}  # fmt: skip
    c = RawLspClient([sys.executable, "-m", "assistant", "lsp"], lsp_repo, env,
                     tmp_path / "lsp.err")  # fmt: skip
    try:
        c.initialize(lsp_repo)
        uri = open_doc(c, lsp_repo / "shapes" / "report.py")
        action = docstring_action(c, uri)
        started = time.monotonic()
        c.response(c.request("codeAction/resolve", action), timeout=300)
        took = time.monotonic() - started

        def ours(m: dict[str, Any]) -> bool:
            return (
                m.get("method") == "$/progress"
                and str(m["params"]["token"]).startswith("assist-")
                and m["params"]["token"] != "assist-index"
            )

        shown = [m for m in list(c.notifications) if ours(m)]
        if not shown:
            assert took < 1.5  # a quick request (progress is reported every 0.1 s)
            return
        begin = shown[0]["params"]["value"]
        assert begin["kind"] == "begin" and begin["title"] == "assist: writing a docstring"
        assert begin["message"].startswith(("reading", "writing"))
        assert took >= 1.0
        c.wait_notification(lambda m: ours(m) and m["params"]["value"]["kind"] == "end")
    finally:
        c.close()


def test_an_idle_editor_warms_the_cache_for_the_next_keystroke(
    tmp_path: Path, lsp_repo: Path, fim_gguf: Path
) -> None:
    """A file opening and a pause after a completion each read the next prompt in the
    background; the keystroke after the pause then reads only what it typed."""
    cmd = [sys.executable, "-m", "assistant", "-v", "lsp"]
    env = {**lsp_env(tmp_path, fim_gguf), "ASSIST_COMPLETION_IDLE_MS": "100"}
    log_path = tmp_path / "lsp.err"
    c = RawLspClient(cmd, lsp_repo, env, log_path)

    def wait_log(pattern: str, count: int) -> list[str]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = [ln for ln in log_path.read_text().splitlines() if re.search(pattern, ln)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not logged {count} times:\n{log_path.read_text()}")

    try:
        c.initialize(lsp_repo)
        indexed(c)
        # The cursor at the end of the file: no text after it to read again (a FIM prompt
        # puts the suffix after the prefix, so mid-file the suffix is read again too).
        text = REPORT + "\n\ndef rect_report(w, h):\n    rect = Rectangle(w, h)\n    r"
        last = text.count("\n")
        uri = open_doc(c, lsp_repo / "shapes" / "report.py", text)
        wait_log("warmed", 1)  # on open
        pos = {"line": last, "character": 5}
        c.call("textDocument/completion", {"textDocument": {"uri": uri}, "position": pos})
        wait_log(rf"warmed .*report\.py:{last + 1}:", 1)  # after the answer, from its cursor
        c.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [{"text": text + "e"}],
            },
        )
        c.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": last, "character": 6}},
        )
        counts = r"prompt tokens: reused (\d+), shifted (\d+), read (\d+)"
        line = wait_log(rf"report\.py:{last + 1}:6: .*reused", 1)[-1]
        reused, shifted, read = (int(n) for n in re.findall(counts, line)[0])
        assert read <= 3 and reused + shifted > 20, line
    finally:
        assert c.close() == 0
