"""Code completion at a cursor: one engine for the CLI and the language server.

A request goes: window of text around the cursor → repository context chosen by retrieval →
the model's own FIM prompt (or the chat emulation) → streamed text shaped to the hole
(`completion_shape.py`) → a cache that also serves the user typing ahead into a completion.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.completion.shaping import Shaper, wants_multiline
from assistant.errors import AssistError
from assistant.index.search import is_test_code
from assistant.llm.fim import ContextFile, path_comment
from assistant.llm.protocol import Budget

if TYPE_CHECKING:
    from assistant.index.store import ChunkRow
    from assistant.llm.protocol import GenerationStats, Model
    from assistant.workspace import Workspace

CHARS_PER_TOKEN = 3.5
"""Code averages 3–4 characters a token; windows are cut in characters so that choosing them
costs no tokenizer call on every keystroke."""
WINDOW_STEP = 2048
"""The prefix window's start moves in steps of this many characters, so that while a person
types, the prompt's beginning stays the same and llama.cpp reuses its KV cache."""
NEARBY_LINES = 12
"""Lines around the cursor whose identifiers are looked up when no enclosing symbol is known."""
CONTEXT_CHUNK_CHARS = 700
"""A definition shown as context is cut to this: its signature and first lines matter most."""
MAX_NAMES = 24
"""Names looked up in the index per request: the closest to the cursor and the imports."""
PER_NAME = 2
"""Definitions shown per name: a name defined in many places is a guess past the first few."""
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINED = re.compile(r"(?:def|class|function|func|fn|struct|interface|type)\s+(\w+)")
_KEYWORDS_TEXT = """
    and as assert async await break case catch class const continue def default defer del do
    elif else enum except export extends false fn for from func function go if impl implements
    import in interface is let loop match mod new nil none not null or package pass pub raise
    return self static struct super switch this throw true try type use var void while with
    yield int str float bool string list dict len print public private protected final
"""
_KEYWORDS = frozenset(_KEYWORDS_TEXT.split())
_IMPORTS = (
    re.compile(r"^\s*from\s+[\w.]+\s+import\s+\(?([\w\s,]+)\)?", re.M),  # Python
    re.compile(r"^\s*import\s+(?:type\s+)?\{([^}]*)\}\s+from", re.M),  # JS / TS named
    re.compile(r"^\s*import\s+(\w+)\s*(?:,|\s+from)", re.M),  # JS / TS default
    re.compile(r"^\s*use\s+[\w:]+::\{?([\w\s,:]+)\}?\s*;", re.M),  # Rust
    re.compile(r"^\s*import\s+(?:static\s+)?[\w.]+\.(\w+)\s*;", re.M),  # Java / Kotlin
)


@dataclass(frozen=True)
class ContextChunk:
    """A definition from another file that went into the prompt, and why it was chosen."""

    path: str
    name: str
    start_line: int
    end_line: int
    reason: str


@dataclass
class CompletionTimings:
    retrieval_ms: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    first_token_ms: float = 0.0
    """From the request to the first completion text out of the model."""
    total_ms: float = 0.0
    overhead_ms: float = 0.0
    """Everything that is not the model: windowing, retrieval, prompt building, shaping."""


@dataclass
class Completion:
    text: str
    multiline: bool
    cached: bool = False
    model: str = ""
    context: list[ContextChunk] = field(default_factory=list)
    timings: CompletionTimings = field(default_factory=CompletionTimings)
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "multiline": self.multiline,
            "cached": self.cached,
            "model": self.model,
            "note": self.note,
            "timings": {k: round(v, 3) for k, v in asdict(self.timings).items()},
            "context": [asdict(c) for c in self.context],
        }


@dataclass(frozen=True)
class Window:
    """The text the model sees around the cursor."""

    prefix: str
    suffix: str
    start_line: int
    """0-based document line where `prefix` starts."""


def cursor_offset(text: str, line: int, col: int) -> int:
    """Offset of (0-based line, 0-based column in characters); out-of-range values clamp."""
    if line < 0 or col < 0:
        raise AssistError(f"position {line + 1}:{col} is invalid", "lines and columns start at 1:0")
    lines = text.split("\n")
    if line >= len(lines):
        return len(text)
    start = sum(len(s) + 1 for s in lines[:line])
    return start + min(col, len(lines[line]))


def make_window(text: str, offset: int, prefix_chars: int, suffix_chars: int) -> Window:
    """Cut prefix and suffix at whole lines, the prefix start quantised to `WINDOW_STEP`.

    Neither side ever exceeds its budget: a line longer than the budget (minified code) is cut
    inside the line rather than sent whole.
    """
    start = 0
    if offset > prefix_chars:
        start = offset - prefix_chars
        start = -(-start // WINDOW_STEP) * WINDOW_STEP  # round up: the window never grows
        start = min(start, offset)
        newline = text.find("\n", start, offset)
        if newline >= 0:
            start = newline + 1
    end = len(text)
    if end - offset > suffix_chars:
        newline = text.rfind("\n", offset, offset + suffix_chars)
        end = newline + 1 if newline >= 0 else offset + suffix_chars
    return Window(text[start:offset], text[offset:end], text.count("\n", 0, start))


class _Cache:
    """Completions by the text around the cursor; also serves a user typing into one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def _key(prefix: str, suffix: str) -> tuple[str, str]:
        digest = hashlib.blake2b(prefix.encode("utf-8", "surrogatepass"), digest_size=16)
        suffix_digest = hashlib.blake2b(suffix.encode("utf-8", "surrogatepass"), digest_size=16)
        return digest.hexdigest(), suffix_digest.hexdigest()

    def get(self, prefix: str, suffix: str) -> str | None:
        if self.size <= 0:
            return None
        key = self._key(prefix, suffix)
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
                return hit[1]
            # Typed ahead: an earlier prefix plus the start of its completion is this prefix.
            for (_, suffix_key), (old_prefix, text) in reversed(self.entries.items()):
                if suffix_key != key[1] or not prefix.startswith(old_prefix):
                    continue
                typed = prefix[len(old_prefix) :]
                if typed and len(typed) < len(text) and text.startswith(typed):
                    return text[len(typed) :]
        return None

    def put(self, prefix: str, suffix: str, text: str) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.entries[self._key(prefix, suffix)] = (prefix, text)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


class CompletionEngine:
    """Completions for one workspace; safe to call from several threads."""

    def __init__(self, ws: Workspace, model: Model | None = None) -> None:
        self.ws = ws
        self._model = model
        self.settings = ws.settings.completion
        self.cache = _Cache(self.settings.cache_size)

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = self.ws.model
        return self._model

    def complete(
        self,
        path: str,
        text: str,
        line: int,
        col: int,
        *,
        cancel: threading.Event | None = None,
        on_text: Callable[[str], None] | None = None,
        budget: Budget | None = None,
    ) -> Completion:
        """Complete at 0-based (`line`, `col`) of `text`, the editor's (maybe unsaved) buffer.

        `on_text` receives the completion as it streams, in pieces that are final. `budget`
        bounds the model's time (an editor passes `editor_budget()`); a completion that ends
        empty says why in `note`.
        """
        rel = self._relative(path)
        model = self.model  # loaded before the clock starts: a load is not a completion's cost
        started = time.perf_counter()
        offset = cursor_offset(text, line, col)
        settings = self.settings
        window = make_window(
            text,
            offset,
            int(settings.prefix_tokens * CHARS_PER_TOKEN),
            int(settings.suffix_tokens * CHARS_PER_TOKEN),
        )
        multiline = wants_multiline(window.prefix, window.suffix, settings.multiline)
        result = Completion(text="", multiline=multiline)
        cached = self.cache.get(window.prefix, window.suffix)
        if cached is not None:
            result.text, result.cached = cached, True
            if on_text and cached:
                on_text(cached)
            result.timings.total_ms = (time.perf_counter() - started) * 1000
            result.timings.overhead_ms = result.timings.total_ms
            return result

        t0 = time.perf_counter()
        context, chosen = self.context_for(rel, text, offset) if rel is not None else ([], [])
        result.context = chosen
        result.timings.retrieval_ms = (time.perf_counter() - t0) * 1000
        if cancel is not None and cancel.is_set():
            result.note = "cancelled"
            return result

        result.model = model.name
        shaper = Shaper(window.prefix, window.suffix, multiline)
        if settings.emulation == "continue" and model.fim_kind == "emulated":
            # No FIM tokens: continue the text before the cursor, context files above it.
            # The shaper still cuts at the block's end and where the suffix repeats.
            head = "".join(path_comment(c.path, c.text) for c in context)
            prompt = head + path_comment(rel or Path(path).name, "").rstrip("\n") + "\n"
            stream = model.complete(
                prompt + window.prefix,
                max_tokens=settings.max_tokens,
                stop=() if multiline else ("\n",),
                cancel=cancel,
                budget=budget,
            )
        else:
            stream = model.infill(
                window.prefix,
                window.suffix,
                path=rel or path,
                context=context,
                max_tokens=settings.max_tokens,
                cancel=cancel,
                budget=budget,
            )
        first: float | None = None
        try:
            for piece in stream:
                if first is None:
                    first = time.perf_counter()
                out = shaper.feed(piece)
                if out and on_text:
                    on_text(out)
                if shaper.done:
                    break
        finally:
            if isinstance(stream, Iterator) and hasattr(stream, "close"):
                stream.close()  # stops generation when the shaper has all it needs
        rest = shaper.finish()
        if rest and on_text:
            on_text(rest)
        result.text = shaper.text
        stats = model.last_stats
        t = result.timings
        t.prompt_tokens, t.cached_tokens = stats.prompt_tokens, stats.cached_tokens
        t.prompt_ms, t.generation_ms = stats.prompt_ms, stats.generation_ms
        t.first_token_ms = ((first or time.perf_counter()) - started) * 1000
        t.total_ms = (time.perf_counter() - started) * 1000
        t.overhead_ms = max(0.0, t.total_ms - t.prompt_ms - t.generation_ms)
        if cancel is not None and cancel.is_set():
            result.note = "cancelled"
        elif stats.stopped_by == "budget" and not result.text:
            result.note = (
                f"the prompt was not read within completion.prompt_ms ({stats.prompt_done} of "
                f"{stats.prompt_tokens} tokens); the next request continues from there"
            )
        else:
            if not result.text:
                result.note = empty_reason(stats, shaper)
            self.cache.put(window.prefix, window.suffix, result.text)
        return result

    def editor_budget(self) -> Budget:
        """The time limits of a completion an editor asked for while the user types."""
        s = self.settings
        return Budget(prompt_s=s.prompt_ms / 1000, generate_s=s.generate_ms / 1000)

    def _relative(self, path: str) -> str | None:
        """The repository path of the file, or None for a file outside the repository.

        A private or excluded file refuses completion: its text would go to the model.
        """
        resolved = self.ws.rules.resolve(path)
        why = self.ws.rules.refusal(resolved)  # every name: as opened, through links, outside
        if why:
            shown = resolved.rel if resolved.rel not in (None, ".") else path
            raise AssistError(
                f"{shown}: {why}; no completions here, since the text would go to a model",
                "remove the rule from .assistignore / config if this is wrong",
            )
        return resolved.rel if resolved.rel != "." else None

    # -- repository context --------------------------------------------------------------------

    def context_for(
        self, rel: str, text: str, offset: int
    ) -> tuple[list[ContextFile], list[ContextChunk]]:
        """Definitions from other files that the code at the cursor uses, within the budget."""
        budget = int(self.settings.context_tokens * CHARS_PER_TOKEN)
        if budget <= 0 or not self.ws.has_index():
            return [], []
        line = text.count("\n", 0, offset) + 1
        nearby = self._names_at(rel, text, offset, line)
        imported = imported_names(text)
        # Closest to the cursor first, then what the file imports.
        wanted = [*nearby, *sorted(imported - set(nearby))][:MAX_NAMES]
        rows: list[ChunkRow] = []
        if wanted:
            in_tests = is_test_code(rel, "")
            rows = [
                r
                for r in self.ws.chunks_named(wanted, limit=80)
                if r.path != rel and (in_tests or not is_test_code(r.path, r.qualified_name))
            ]
        order = {n.lower(): i for i, n in enumerate(wanted)}
        rows.sort(key=lambda r: (order.get(r.name.lower(), len(order)), r.path, r.start_line))
        picked: list[tuple[ChunkRow, str]] = []
        used = 0
        seen: set[tuple[str, int]] = set()
        per_name: dict[str, int] = {}
        for row in rows:
            if (row.path, row.symbol_start) in seen:
                continue
            if per_name.get(row.name, 0) >= PER_NAME:
                continue  # `get` defined in twenty classes: which one is meant is a guess
            per_name[row.name] = per_name.get(row.name, 0) + 1
            body = row.text[:CONTEXT_CHUNK_CHARS]
            if used + len(body) > budget:
                continue
            seen.add((row.path, row.symbol_start))
            reason = "imported" if row.name in imported else "used near the cursor"
            picked.append((row, reason))
            used += len(body)
        # Stable order (by file, then line) keeps the prompt's beginning the same between
        # keystrokes, so llama.cpp's prefix cache is reused.
        picked.sort(key=lambda p: (p[0].path, p[0].start_line))
        files: dict[str, list[str]] = {}
        for row, _ in picked:
            files.setdefault(row.path, []).append(row.text[:CONTEXT_CHUNK_CHARS].rstrip())
        context = [ContextFile(p, "\n...\n".join(parts)) for p, parts in files.items()]
        chosen = [
            ContextChunk(r.path, r.qualified_name, r.start_line, r.end_line, why)
            for r, why in picked
        ]
        return context, chosen

    def _names_at(self, rel: str, text: str, offset: int, line: int) -> list[str]:
        """Identifiers of the enclosing definition (or the lines around the cursor), closest
        to the cursor first; names this file defines itself are left out."""
        lines = text.split("\n")
        lo, hi = max(0, line - 1 - NEARBY_LINES), min(len(lines), line + 3)
        enclosing = [
            s
            for s in self.ws.symbols_in(rel)
            if s.start_line <= line <= s.end_line and s.end_line - s.start_line < 200
        ]
        if enclosing:
            inner = min(enclosing, key=lambda s: s.end_line - s.start_line)
            lo, hi = min(lo, inner.start_line - 1), max(hi, min(len(lines), inner.end_line))
        here = offset - sum(len(x) + 1 for x in lines[:lo])
        region = "\n".join(lines[lo:hi])
        local = set(_DEFINED.findall(text))
        distance: dict[str, int] = {}
        for m in _IDENT.finditer(region):
            w = m.group(0)
            if len(w) < 3 or w.startswith("__") or w.lower() in _KEYWORDS or w in local:
                continue
            d = here - m.start() if m.start() <= here else 4 * (m.start() - here)
            distance[w] = min(distance.get(w, d), d)
        return sorted(distance, key=distance.__getitem__)


def empty_reason(stats: GenerationStats, shaper: Shaper) -> str:
    """Why a finished completion is empty, in words for `--json` and the editor's log."""
    if stats.generated_tokens == 0:
        return f"the model ended at once ({stats.stopped_by or 'no tokens'})"
    if shaper.raw and not shaper.text:
        return (
            f"the model wrote {stats.generated_tokens} tokens, none of which fit the hole "
            "(they repeated the text after the cursor, or closed a bracket opened before it)"
        )
    return f"the model wrote only white space ({stats.stopped_by})"


def imported_names(text: str) -> set[str]:
    """Names a file imports from elsewhere (Python, JS/TS, Rust, Java)."""
    found: set[str] = set()
    for pattern in _IMPORTS:
        for m in pattern.finditer(text[:20000]):
            for part in re.split(r"[,\s]+", m.group(1)):
                name = part.split("::")[-1].strip()
                if name and name not in ("as", "self", "*") and _IDENT.fullmatch(name):
                    found.add(name)
    return found


def complete_file(
    ws: Workspace,
    path: str,
    line: int,
    col: int,
    *,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """`assist complete`: complete a file on disk at 1-based `line`, 0-based `col`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AssistError(f"{path}: not UTF-8 text", "completions work on text files") from None
    except OSError as exc:
        raise AssistError(f"{path}: cannot read: {exc.strerror}", "check the path") from None
    if line < 1:
        raise AssistError(f"line {line} is invalid", "lines start at 1")
    return CompletionEngine(ws).complete(str(file.resolve()), text, line - 1, col, on_text=on_text)
