"""What the agent's tools do.

Every path a tool touches goes through `confine.confine` (every name it goes by, inside the
workspace, no private or excluded file), and files are read and written through handles that no
symlink swapped in meanwhile can redirect. Reading tools run at once; a tool that
writes or runs something is first turned into an `ApprovalRequest` holding the exact diff or the
exact command line, and only `Action.run` (called after approval) changes anything.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from assistant.agent.calls import ToolCall
from assistant.agent.commands import run_command
from assistant.agent.confine import (
    Place,
    ToolError,
    confine,
    read_bytes,
    remove,
    sensitive_reason,
    write_bytes,
)
from assistant.agent.grep import bounded_grep
from assistant.agent.patches import DEV_NULL, apply_hunks, parse_unified, replace_once, unified_diff
from assistant.index.languages import language_for_path
from assistant.index.search import Mode
from assistant.repo.files import list_paths
from assistant.repo.secrets import redact
from assistant.repo.vetted import Vetted
from assistant.untrusted import visible
from assistant.workspace import Workspace

MAX_LISTED = 400


@dataclass(frozen=True)
class ApprovalRequest:
    tool: str
    kind: Literal["edit", "command"]
    summary: str
    """One line: `edit src/app.py`, `run: pytest -q`."""
    detail: str
    """Exactly what would happen: the unified diff, or the command line as it will run."""
    paths: tuple[str, ...] = ()
    warning: str = ""
    """Set for sensitive writes; such a request is always asked, whatever was approved before."""

    @property
    def sensitive(self) -> bool:
        return bool(self.warning)

    @property
    def shown(self) -> str:
        """`detail` safe to print: control characters (a terminal escape that would hide part
        of a command) appear escaped, so what the user reads is what runs."""
        return visible(self.detail)

    @property
    def shown_summary(self) -> str:
        """`summary` safe to print (it holds model-chosen paths and commands)."""
        return visible(self.summary)

    @property
    def shown_warning(self) -> str:
        return visible(self.warning)


@dataclass(frozen=True)
class Action:
    call: ToolCall
    request: ApprovalRequest | None
    """None for reading tools, which run without asking."""
    run: Callable[[threading.Event], Vetted]
    """Does it; returns the result text for the model (vetted: secrets cut, whatever the tool
    read or ran). Takes the stop key's event."""


Change = tuple[Place, str | None, str | None]
"""A file change: where, the text before (None: created), the text after (None: deleted)."""


class Toolbox:
    """Turns validated calls into actions on one workspace."""

    def __init__(self, ws: Workspace, *, output_limit: int, command_timeout: float) -> None:
        self.ws = ws
        self.root = ws.rules.root
        self.limit = output_limit
        self.timeout = command_timeout

    def prepare(self, call: ToolCall) -> Action:
        handler = getattr(self, f"_{call.tool}", None)
        if handler is None:
            raise ToolError(f"unknown tool {call.tool!r}")
        action: Action = handler(call)
        return action

    def _cap(self, text: str) -> str:
        if len(text) <= self.limit:
            return text
        return text[: self.limit] + f"\n[output cut at {self.limit} characters]\n"

    # -- reading -------------------------------------------------------------------------------

    def _read_text(self, rel: str) -> str:
        try:
            data = read_bytes(self.root, rel)
        except FileNotFoundError:
            raise ToolError(f"{rel}: no such file") from None
        except IsADirectoryError:
            raise ToolError(f"{rel}: a directory; use list_files") from None
        except OSError as exc:
            raise ToolError(f"{rel}: cannot read: {exc.strerror}") from None
        if b"\0" in data[:8192]:
            raise ToolError(f"{rel}: a binary file")
        # Secrets found by content never reach the model (repo/secrets.py).
        return redact(data.decode("utf-8", "replace")).text

    def _files_under(self, place: Place) -> Iterator[str]:
        """Files the agent may see under a directory (or the file itself), in path order."""
        if place.real.is_file():
            yield place.rel
            return
        if not place.real.is_dir():
            raise ToolError(f"{place.rel}: no such file or directory")
        prefix = "" if place.rel == "." else place.rel + "/"
        for path in list_paths(self.root):
            if not path.startswith(prefix) or not self.ws.rules.allows(path):
                continue
            try:
                inner = confine(self.ws, path)
            except ToolError:
                continue  # a link out of the workspace, or to a private file
            if inner.real.is_file():
                yield inner.rel

    def _read(self, call: ToolCall, action: Callable[[threading.Event], str]) -> Action:
        """A reading tool's action; what it reports is vetted on its way to the model."""
        return Action(call, None, lambda cancel: self.ws.vet_output(action(cancel)))

    def _list_files(self, call: ToolCall) -> Action:
        place = confine(self.ws, call.text("path") or ".")
        paths = list(self._files_under(place))
        shown = paths[:MAX_LISTED]
        more = f"\n[{len(paths) - MAX_LISTED} more files]" if len(paths) > MAX_LISTED else ""
        text = "\n".join(shown) + more if shown else "(no files)"
        return self._read(call, lambda _: self._cap(text))

    def _read_file(self, call: ToolCall) -> Action:
        place = confine(self.ws, call.text("path"))
        rel = place.rel
        lines = self._read_text(rel).splitlines()
        start = max(call.number("start"), 1)
        end = call.number("end") or len(lines)
        if start > max(len(lines), 1) or end < start:
            raise ToolError(f"{rel}: lines {start}-{end} are not in a {len(lines)}-line file")
        body = "".join(f"{n:>5}  {lines[n - 1]}\n" for n in range(start, min(end, len(lines)) + 1))
        text = f"{rel} (lines {start}-{min(end, len(lines))} of {len(lines)})\n{body}"
        return self._read(call, lambda _: self._cap(text))

    def _grep(self, call: ToolCall) -> Action:
        pattern = call.text("pattern")
        try:  # `re` checks the syntax without compiling the pattern out (agent/grep.py)
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            raise ToolError(f"bad regular expression: {exc}") from None
        place = confine(self.ws, call.text("path") or ".")

        def texts() -> Iterator[tuple[str, str]]:
            for path in self._files_under(place):
                try:
                    yield path, self._read_text(path)
                except ToolError:
                    continue

        def run(cancel: threading.Event) -> str:
            found = bounded_grep(pattern, texts(), limit=self.limit, cancel=cancel)
            return self._cap("\n".join(found) if found else "(no matches)")

        return self._read(call, run)

    def _search(self, call: ToolCall) -> Action:
        if not self.ws.has_index():
            raise ToolError("there is no index here yet; use grep instead")
        mode: Mode = "hybrid" if self.ws.vector_index() is not None else "keyword"
        hits = self.ws.search(call.text("query"), k=10, mode=mode)
        lines = [
            f"{h.path}:{h.start_line}-{h.end_line} {h.kind} {h.name}  {h.signature}".rstrip()
            for h in hits
        ]
        text = "\n".join(lines) if lines else "(no results)"
        return self._read(call, lambda _: self._cap(text))

    def _find_symbol(self, call: ToolCall) -> Action:
        from assistant.index.symbols import extract_symbols

        name = call.text("name").strip()
        if not re.fullmatch(r"[\w.$:]+", name):
            raise ToolError(f"{name!r} is not a symbol name")
        short = re.split(r"[.:]+", name)[-1]
        word = re.compile(rf"(?<![\w$]){re.escape(short)}(?![\w$])")
        defs: list[str] = []
        refs: list[str] = []
        for path in self._files_under(confine(self.ws, ".")):
            language = language_for_path(path)
            try:
                text = self._read_text(path)
            except ToolError:
                continue
            if not word.search(text):
                continue
            def_lines: set[int] = set()
            if language:
                for sym in extract_symbols(text.encode("utf-8"), language):
                    if sym.name == short or sym.qualified_name == name:
                        defs.append(f"{path}:{sym.start_line}-{sym.end_line} {sym.kind} "
                                    f"{sym.qualified_name}  {sym.signature}")  # fmt: skip
                        def_lines.add(sym.def_line)
            for n, line in enumerate(text.splitlines(), 1):
                if n not in def_lines and word.search(line):
                    refs.append(f"{path}:{n}: {line.strip()[:200]}")
        text = "definitions:\n" + ("\n".join(defs) or "(none found)")
        text += "\nreferences:\n" + ("\n".join(refs[:200]) or "(none found)")
        return self._read(call, lambda _: self._cap(text))

    # -- writing -------------------------------------------------------------------------------

    def _edit_request(self, call: ToolCall, changes: list[Change]) -> Action:
        """One approval for a set of changes."""
        diff = "".join(unified_diff(old, new, place.rel) for place, old, new in changes)
        if not diff:
            raise ToolError("the edit changes nothing")
        rels = tuple(place.rel for place, _, _ in changes)
        warning = "; ".join(w for w in (sensitive_reason(p) for p, _, _ in changes) if w)
        verb = {True: "create", False: "edit"}
        names = ", ".join(f"{verb[old is None] if new is not None else 'delete'} {place.rel}"
                          for place, old, new in changes)  # fmt: skip
        request = ApprovalRequest(call.tool, "edit", names, diff, rels, warning)

        def run(cancel: threading.Event) -> Vetted:
            for place, old, _new in changes:
                # The tree may have changed while the user read the diff (a command, an editor).
                if confine(self.ws, place.rel).real != place.real:
                    raise ToolError(f"{place.rel} now leads somewhere else; read it again")
                try:
                    now: str | None = read_bytes(self.root, place.rel).decode("utf-8", "replace")
                except FileNotFoundError:
                    now = None
                if now != old:
                    raise ToolError(
                        f"{place.rel} changed since the edit was proposed; read it again"
                    )
            for place, _old, new in changes:
                if new is None:
                    remove(self.root, place.rel)
                else:
                    write_bytes(self.root, place.rel, new.encode("utf-8"))
            added = sum(1 for x in diff.splitlines() if x.startswith("+") and x[:3] != "+++")
            gone = sum(1 for x in diff.splitlines() if x.startswith("-") and x[:3] != "---")
            return self.ws.vet_output(f"done: {names} (+{added} -{gone} lines)")

        return Action(call, request, run)

    def _existing_text(self, place: Place) -> str:
        if not place.real.is_file():
            raise ToolError(f"{place.rel}: no such file (use create_file for a new one)")
        try:
            return read_bytes(self.root, place.rel).decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(
                f"{place.rel}: not UTF-8 text; the agent edits text files only"
            ) from None

    def _edit_file(self, call: ToolCall) -> Action:
        place = confine(self.ws, call.text("path"))
        old = self._existing_text(place)
        new = replace_once(old, call.text("search"), call.text("replace"))
        return self._edit_request(call, [(place, old, new)])

    def _create_file(self, call: ToolCall) -> Action:
        place = confine(self.ws, call.text("path"))
        if place.real.exists() or place.real.is_symlink():
            raise ToolError(f"{place.rel}: already exists; use edit_file to change it")
        return self._edit_request(call, [(place, None, call.text("content"))])

    def _apply_patch(self, call: ToolCall) -> Action:
        changes: list[Change] = []
        for patch in parse_unified(call.text("diff")):
            if DEV_NULL not in (patch.old_path, patch.new_path) and (
                patch.old_path != patch.new_path
            ):
                raise ToolError(f"{patch.old_path} -> {patch.new_path}: renames are not supported")
            place = confine(self.ws, patch.path)
            if any(place.rel == c[0].rel for c in changes):
                raise ToolError(f"{place.rel}: appears twice in the diff; merge its hunks")
            if patch.old_path == DEV_NULL:
                if place.real.exists():
                    raise ToolError(
                        f"{place.rel}: already exists; diff it against the current file"
                    )
                changes.append((place, None, apply_hunks("", patch.hunks)))
                continue
            old = self._existing_text(place)
            new = apply_hunks(old, patch.hunks)
            changes.append((place, old, None if patch.new_path == DEV_NULL else new))
        return self._edit_request(call, changes)

    def _run_command(self, call: ToolCall) -> Action:
        command = call.text("command")
        if not command.strip():
            raise ToolError("the command is empty")
        request = ApprovalRequest(call.tool, "command", f"run: {command}", command)

        def run(cancel: threading.Event) -> Vetted:
            result = run_command(
                command, self.root, timeout=self.timeout, limit=self.limit, cancel=cancel
            )
            # The output may print any file (`cat .env`): its secrets are cut by content.
            return self.ws.vet_output(result.report())

        return Action(call, request, run)
