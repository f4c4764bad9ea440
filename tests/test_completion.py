"""The completion engine: windows, shaping, repository context, cache, cancel, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from test_lsp import GEOMETRY, REPORT, git, lsp_env

from assistant.completion.context import Candidate, ContextChunk, imported_names
from assistant.completion.engine import CompletionEngine
from assistant.completion.ring import ContextRing
from assistant.completion.shaping import Shaper, open_brackets, wants_multiline
from assistant.completion.window import Places, Sizes, cursor_offset, cut
from assistant.errors import AssistError
from assistant.index.indexer import IndexReport
from assistant.llm.protocol import Request
from assistant.workspace import Workspace


def shape(prefix: str, suffix: str, raw: str, pieces: int = 3) -> tuple[str, str]:
    """(final text, what streamed) for `raw` fed in `pieces` parts."""
    shaper = Shaper(prefix, suffix, wants_multiline(prefix, suffix))
    streamed = ""
    step = max(1, len(raw) // pieces)
    for i in range(0, len(raw), step):
        streamed += shaper.feed(raw[i : i + step])
        if shaper.done:
            break
    streamed += shaper.finish()
    assert streamed == shaper.text  # the stream is exactly the final text
    return shaper.text, streamed


def test_single_or_multi_line_from_the_syntax() -> None:
    assert wants_multiline("def f(x):\n    ", "\n")  # empty line in a body
    assert wants_multiline("def f(x):", "\n")  # right after a block opener
    assert wants_multiline("if (x) {", "\n}")
    assert not wants_multiline("total = area_of", "(r)\n")  # code after the cursor
    assert not wants_multiline("x = compute(", ")\n")  # only closers after: still one line
    assert not wants_multiline("    # explain the", "\n")  # a comment
    assert not wants_multiline('msg = "hello ', '"\n')  # a string
    assert wants_multiline("x = 1", "\n", "always") and not wants_multiline("", "", "never")


def test_shaping_cuts_to_the_line_the_block_and_the_suffix() -> None:
    text, _ = shape("x = compute(", ")\n", "a, b)\ny = 2\n")
    assert text == "a, b"  # one line; the suffix already closes the call
    body = "    return a + b\n\n\ndef other():\n    pass\n"
    text, _ = shape("def add(a, b):\n", "\n", body)
    assert text == "    return a + b"  # the block ends where the indentation does
    text, _ = shape("def f():\n    x = 1\n    ", "\n    return x\n", "y = 2\n    return x\n")
    assert text == "y = 2"  # stops where the output repeats the suffix
    text, _ = shape("print(value", "\n", "))")
    assert text == ")"  # a bracket that closes nothing is cut
    text, _ = shape("if (ok) {\n", "\n", "  run();\n}\nmore();\n")
    assert text == "  run();\n}"  # the block's own closer is kept, then it stops
    assert open_brackets('f(a, "(", [1, {"k": ') == ["(", "[", "{"]


SIZES = Sizes(prefix=4000, suffix=500, cold=300)


def test_a_new_place_gets_a_small_window_that_stays_put_while_typing() -> None:
    text = "".join(f"line_{i} = {i}\n" for i in range(2000))
    places = Places()
    off = text.index("line_1500 = ")
    cold = places.window("a.py", text, off, SIZES)
    assert cold.cold and cold.typed == "" and cold.prefix.endswith("line_1499 = 1499\n")
    assert len(cold.prefix) + len(cold.suffix) <= SIZES.cold  # what the budget reads
    # Typing on the line: the same start, so the prompt's beginning is what the cache holds.
    typed = text[:off] + "xy" + text[off:]
    warm = places.window("a.py", typed, off + 2, SIZES)
    assert not warm.cold and warm.prefix == cold.prefix and warm.typed == "xy"
    # A few lines down: still the place, the window longer by what was passed.
    down = places.window("a.py", typed, typed.index("line_1503"), SIZES)
    assert not down.cold and down.prefix.startswith(cold.prefix)
    # A jump: a new place, small again.
    far = places.window("a.py", typed, typed.index("line_200 "), SIZES)
    assert far.cold and far.prefix.endswith("line_199 = 199\n")
    # Another file is a new place too.
    assert places.window("b.py", typed, typed.index("line_200 "), SIZES).cold
    assert cursor_offset("ab\ncd", 1, 1) == 4
    assert cursor_offset("ab\ncd", 9, 0) == 5
    with pytest.raises(AssistError):
        cursor_offset("ab", -1, 0)


def test_the_window_grows_a_step_at_a_time_to_full_size_and_then_moves_on() -> None:
    text = "".join(f"line_{i} = {i}\n" for i in range(2000))
    sizes = Sizes(prefix=2000, suffix=400, cold=300)
    places = Places()
    off = text.index("line_1000 = ")
    window = places.window("a.py", text, off, sizes)
    steps = 0
    while (grown := places.grown("a.py", text, off, sizes)) is not None:
        bigger, place = grown
        # Lines come before the window and after it; what it had stays, so its cache does.
        assert bigger.prefix.endswith(window.prefix) and bigger.suffix.startswith(window.suffix)
        assert len(bigger.before) + len(bigger.suffix) > len(window.before) + len(window.suffix)
        places.adopt(place)
        window, steps = places.window("a.py", text, off, sizes), steps + 1
        assert window == bigger
    assert steps > 4
    assert sizes.prefix - 20 < len(window.prefix) <= sizes.prefix
    assert sizes.suffix - 20 < len(window.suffix) <= sizes.suffix
    # Typing on down past the full size: the start moves on by a step, nothing new to read
    # before the cursor but what was typed.
    far = text.index("line_1015 = ")  # within what a cold window would read
    moved = places.window("a.py", text, far, sizes)
    assert not moved.cold and len(moved.prefix) <= sizes.prefix
    assert moved.start_line > window.start_line


def test_imported_names() -> None:
    text = (
        "from shapes.geometry import Rectangle, area_of_circle as aoc\n"
        "import { parseQuery, formatPrice } from './format';\n"
        "import React from 'react';\n"
        "use crate::net::{connect, Socket};\n"
        "import java.util.ArrayList;\n"
    )
    assert {"Rectangle", "area_of_circle", "parseQuery", "formatPrice", "React"} <= (
        imported_names(text)
    )
    assert {"connect", "Socket", "ArrayList"} <= imported_names(text)


@pytest.fixture
def indexed_ws(tmp_path: Path, make_gguf: Callable[..., Path]) -> Workspace:
    root = tmp_path / "repo"
    (root / "shapes").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "shapes" / "geometry.py").write_text(GEOMETRY)
    (root / "shapes" / "report.py").write_text(REPORT)
    (root / ".env").write_text("SECRET=1\n")
    env = lsp_env(tmp_path, make_gguf(family="qwen", metadata=True, favorite="a"))
    env["ASSIST_MODEL_HOST"] = "false"  # in this process: the tests read the llama.cpp state
    ws = Workspace.open(root, env=env)
    for item in ws.index(vectors=False):
        if isinstance(item, IndexReport):
            break
    return ws


def test_repository_context_in_the_models_repo_format(indexed_ws: Workspace) -> None:
    engine = CompletionEngine(indexed_ws)
    text = REPORT + "\n\ndef rect_report(w, h):\n    rect = Rectangle(w, h)\n    "
    line = text.count("\n")
    result = engine.complete(str(indexed_ws.root / "shapes" / "report.py"), text, line, 4)
    used = {(c.path, c.name, c.reason) for c in result.context}
    assert ("shapes/geometry.py", "area_of_circle", "imported") in used
    assert ("shapes/geometry.py", "Rectangle", "imported") in used
    assert result.multiline and result.text
    assert result.timings.prompt_tokens > 0 and result.timings.retrieval_ms >= 0
    # The prompt really was Qwen's repo-level format, with the other file's code in it.
    runtime = engine.model.runtime  # type: ignore[attr-defined]
    held = [t for t in runtime.cells if t >= 0]
    prompt = runtime.detokenize(held, special=True).decode()
    assert "<|repo_name|>" in prompt and "<|file_sep|>shapes/geometry.py" in prompt
    assert "def area_of_circle(radius: float)" in prompt
    assert prompt.index("shapes/geometry.py") < prompt.index("shapes/report.py")


def test_cache_kv_reuse_typing_ahead_and_cancel(indexed_ws: Workspace) -> None:
    engine = CompletionEngine(indexed_ws)
    path = str(indexed_ws.root / "shapes" / "report.py")
    text = REPORT + "\n\ndef rect_report(w, h):\n    x = "
    line, col = text.count("\n"), 8
    first = engine.complete(path, text, line, col)
    assert first.text.startswith("a") and first.source == "model"
    again = engine.complete(path, text, line, col)
    assert again.cached and again.text == first.text
    assert again.timings.prompt_tokens == 0  # a cache hit never reaches the model
    # The user types the first letter of the completion: the rest comes from the cache.
    typed = text + first.text[0]
    ahead = engine.complete(path, typed, line, col + 1)
    assert ahead.cached and ahead.text == first.text[1:]
    # A different request sharing the whole file before it: most of the prompt is cached.
    other = text.replace("x = ", "y = ")
    second = engine.complete(path, other, line, col)
    assert second.timings.cached_tokens > 0.8 * second.timings.prompt_tokens
    # Cancelling mid-stream stops generation at once.
    cancel = threading.Event()
    engine.cache.entries.clear()
    pieces: list[str] = []

    def stop_after_first(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    result = engine.complete(
        path, text.replace("x = ", "z = "), line, col, cancel=cancel, on_text=stop_after_first
    )
    assert result.note == "cancelled" and not result.text
    assert len(pieces) == 1


def test_private_file_is_refused(indexed_ws: Workspace) -> None:
    engine = CompletionEngine(indexed_ws)
    with pytest.raises(AssistError, match="private"):
        engine.complete(str(indexed_ws.root / ".env"), "SECRET=1\n", 0, 7)


def test_cli_complete_json(indexed_ws: Workspace, tmp_path: Path) -> None:
    env = lsp_env(tmp_path, Path(str(indexed_ws.settings.model.path)))
    file = indexed_ws.root / "shapes" / "report.py"
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "complete", str(file), "--line", "5", "--col", "13"],
        capture_output=True,
        text=True,
        env=env,
        cwd=indexed_ws.root,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    cmd = [sys.executable, "-m", "assistant", "complete", str(file), "--line", "5", "--col", "13"]
    proc = subprocess.run(
        [*cmd, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=indexed_ws.root,
        timeout=60,
    )
    data = json.loads(proc.stdout)
    assert data["text"] and data["multiline"] is False
    for key in ("retrieval_ms", "prompt_tokens", "cached_tokens", "prompt_ms", "generation_ms"):
        assert key in data["timings"]
    assert {c["name"] for c in data["context"]} >= {"area_of_circle"}
    bad = subprocess.run(
        [sys.executable, "-m", "assistant", "complete", str(file), "--line", "0", "--col", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "lines start at 1" in bad.stderr
    assert "demo model" not in proc.stderr and data["demo_model"] is False  # a chosen model


@pytest.mark.slow
def test_cli_complete_on_the_default_model_says_it_is_a_demo(
    indexed_ws: Workspace, tmp_path: Path
) -> None:
    env = {k: v for k, v in lsp_env(tmp_path, Path("unused")).items() if k != "ASSIST_MODEL"}
    file = indexed_ws.root / "shapes" / "report.py"
    cmd = [sys.executable, "-m", "assistant", "complete", str(file), "--line", "5", "--col", "13"]
    proc = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, env=env, cwd=indexed_ws.root, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "assist: note: the embedded demo model (SmolLM2-135M) is in use" in proc.stderr
    assert json.loads(proc.stdout)["demo_model"] is True


@pytest.mark.slow
def test_default_model_completes(indexed_ws: Workspace) -> None:
    """SmolLM2 has no FIM tokens: the emulated path, with repository context, end to end."""
    from assistant.config import ModelSettings
    from assistant.llm.local import LocalModel
    from assistant.llm.source import embedded_model_path

    model = LocalModel.load(embedded_model_path(), ModelSettings(temperature=0.0))
    engine = CompletionEngine(indexed_ws, model)
    text = REPORT + "\n\ndef circle_report(r):\n    return area_of_circle("
    result = engine.complete(str(indexed_ws.root / "shapes" / "report.py"), text, 9, 28)
    assert not result.multiline
    assert "\n" not in result.text
    assert any(c.name == "area_of_circle" for c in result.context)


def test_private_file_outside_the_repository_is_refused(
    indexed_ws: Workspace, tmp_path: Path
) -> None:
    """The privacy rules hold for files the editor opens outside the repository too."""
    engine = CompletionEngine(indexed_ws)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(AssistError, match="private"):
        engine.complete(str(elsewhere / ".env"), "AWS_SECRET=abc123\n", 0, 11)
    with pytest.raises(AssistError, match="private"):
        engine.complete(str(elsewhere / "deploy.pem"), "-----BEGIN", 0, 5)
    # An ordinary file there completes, without repository context.
    result = engine.complete(str(elsewhere / "notes.py"), "x = 1\ny = ", 1, 4)
    assert result.context == []


def test_a_minified_line_cannot_make_the_prompt_unbounded() -> None:
    line = "var a=1;" * 400_000  # 3.2 MB on one line, the cursor at its end
    text = "const x = 1;\n" + line + "\n" + line
    offset = len("const x = 1;\n") + len(line)
    window = cut(text, offset, 0, 1 << 30, Sizes(4000, 1000, 300))
    assert 0 < len(window.before) <= 4000 and len(window.suffix) <= 1000
    assert window.before == text[offset - len(window.before) : offset]
    cold = Places().window("a.js", text, offset, Sizes(4000, 1000, 300))
    assert 0 < len(cold.before) <= 4000 and len(cold.suffix) <= 1000


def test_context_ring_keeps_its_order_and_evicts_the_oldest_unwanted() -> None:
    def chunk(name: str, size: int = 10) -> Candidate:
        return Candidate(ContextChunk(f"{name}.py", name, 1, 2, "imported"), "x" * size)

    ring = ContextRing(budget_chars=30)
    assert not ring.filled
    assert ring.refresh([chunk("a"), chunk("b")])
    # Already there: nothing moves, so the prompt's beginning (and its cache) survives.
    assert not ring.refresh([chunk("b"), chunk("a")])
    assert [c.chunk.name for c in ring.snapshot()] == ["a", "b"]
    # New chunks go at the end; over budget, the oldest chunk no longer wanted leaves.
    assert ring.refresh([chunk("b"), chunk("c"), chunk("d")])
    assert [c.chunk.name for c in ring.snapshot()] == ["b", "c", "d"]
    # The file being edited never gets its own definitions as context.
    assert [c.chunk.name for c in ring.snapshot(exclude_path="c.py")] == ["b", "d"]


def test_idle_warm_ups_choose_the_ring_then_grow_the_window(indexed_ws: Workspace) -> None:
    engine = CompletionEngine(indexed_ws)
    path = str(indexed_ws.root / "shapes" / "report.py")
    text = REPORT + "\n\ndef rect_report(w, h):\n    rect = Rectangle(w, h)\n    "
    line = text.count("\n")
    # The cursor lands: a keystroke takes the ring as it is (empty so far), at a new place.
    landed = engine.complete(path, text, line, 4, editor=True)
    assert landed.cold and landed.context == []
    # Idle: the file's context ring is chosen and read, then the window grows to full size.
    steps = []
    while (done := engine.warm(path, text, line, 4)) is not None and done.more:
        steps.append(done)
        assert done.stats.generated_tokens == 0  # a warm-up only reads
    assert {s.what for s in steps} == {"grew the window", "read context"}  # in turns
    ring = [c.chunk.name for c in engine.ring.snapshot()]
    assert "Rectangle" in ring and "area_of_circle" in ring
    assert engine.places.place is not None and engine.places.place.start == 0  # all of it
    # The keystroke reads only what it typed: everything before it is in the cache.
    typed = text + "r"
    keyed = engine.complete(path, typed, line, 5, editor=True)
    reused = keyed.timings.cached_tokens + keyed.timings.shifted_tokens
    assert keyed.timings.read_tokens <= 3 and reused > 20
    assert [c.name for c in keyed.context] == ring and not keyed.cold
    # While typing, the ring holds still even when the cursor's names change.
    typed += "esult = Rectangle.area(rect)\n    "
    held = engine.complete(path, typed, line + 1, 4, editor=True)
    assert [c.name for c in held.context] == ring


def test_a_warm_up_never_pre_empts_a_request(indexed_ws: Workspace) -> None:
    engine = CompletionEngine(indexed_ws)
    path = str(indexed_ws.root / "shapes" / "report.py")
    scheduler = engine.model.scheduler  # type: ignore[attr-defined]
    busy = Request(priority="background")
    assert scheduler.admit(busy)  # a request is running
    try:
        assert engine.warm(path, REPORT, 4, 13) is None
        assert not busy.cancelled  # it was not cancelled
    finally:
        scheduler.release(busy)
    # A cancelled warm-up stops before reading anything more.
    stopped = threading.Event()
    stopped.set()
    assert engine.warm(path, REPORT, 4, 13, cancel=stopped) is None


REPEATING = REPORT + "\n\ndef twice(w, h):\n    rect = Rectangle(w, h)\n    print(rect)\n"


def test_a_late_model_is_replaced_by_recalled_text_and_its_answer_cached(
    indexed_ws: Workspace,
) -> None:
    """The model is held busy by a request a person made: the editor's completion cannot
    start writing in time, so known text answers at the deadline; the model's answer, once
    it comes, is what the next request here gets."""
    engine = CompletionEngine(indexed_ws)
    engine.settings = replace(engine.settings, prompt_ms=50)
    path = str(indexed_ws.root / "shapes" / "report.py")
    text = REPEATING + "    rect = "
    line, col = text.count("\n"), 11
    scheduler = engine.model.scheduler  # type: ignore[attr-defined]
    docstring = Request()  # explicit: an editor's completion waits behind it
    assert scheduler.admit(docstring)
    try:
        late = engine.complete(path, text, line, col, editor=True)
    finally:
        scheduler.release(docstring)
    assert late.source == "recall:file" and late.text == "Rectangle(w, h)"
    assert "completion.prompt_ms" in late.note
    # The model went on in the background; its answer is cached for this place.
    deadline = time.monotonic() + 60
    while not engine.cache.entries and time.monotonic() < deadline:
        time.sleep(0.01)
    again = engine.complete(path, text, line, col, editor=True)
    assert again.source == "cache" and again.text.startswith("a")


def test_an_empty_model_answer_is_replaced_by_recalled_text(
    indexed_ws: Workspace, make_gguf: Callable[..., Path]
) -> None:
    from assistant.config import ModelSettings
    from assistant.llm.local import LocalModel

    silent = make_gguf(family="qwen", metadata=True, favorite="<|endoftext|>")
    engine = CompletionEngine(indexed_ws, LocalModel.load(silent, ModelSettings()))
    path = str(indexed_ws.root / "shapes" / "report.py")
    text = REPEATING + "    rect = "
    done = engine.complete(path, text, text.count("\n"), 11, editor=True)
    assert done.source == "recall:file" and done.text == "Rectangle(w, h)"
    assert done.note.startswith("the model ended at once")
    assert "recalled" in done.note
    # `assist complete` says so too, when its model has nothing.
    whole = engine.complete(path, text, text.count("\n"), 11)
    assert whole.source == "recall:file" and whole.as_json()["source"] == "recall:file"
