"""What the agent's tools do, and the walls around them.

Every path a tool touches goes through `confine`: resolved with realpath (symlinks followed),
compared with the workspace root component by component (so `/repo-evil` is not inside `/repo`),
and checked against the privacy rules both as asked and as resolved, so no tool can read a
private or excluded file into a prompt, or write one. Reading tools run at once; a tool that
writes or runs something is first turned into an `ApprovalRequest` holding the exact diff or the
exact command line, and only `Action.run` (called after approval) changes anything.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pathspec

from assistant.checkpoints import write_atomic
from assistant.command_runner import run_command
from assistant.errors import AssistError
from assistant.languages import language_for_path
from assistant.patches import DEV_NULL, apply_hunks, parse_unified, replace_once, unified_diff
from assistant.repo_files import git_paths, walk_paths
from assistant.tool_calls import ToolCall
from assistant.workspace import Workspace

# Files that make tools run things later (hooks, build and test configuration, editor tasks,
# environment loaders): writing one is never approved in advance, by `--yes` or by "always".
SENSITIVE = (
    ".githooks/", ".husky/", ".pre-commit-config.yaml", ".pre-commit-hooks.yaml",
    "pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "noxfile.py", "conftest.py",
    "pytest.ini", "sitecustomize.py", "usercustomize.py", "*.pth",
    "Makefile", "makefile", "GNUmakefile", "*.mk", "justfile", "Justfile", "Taskfile.yml",
    "Taskfile.yaml", "Rakefile", "package.json", ".npmrc", ".yarnrc", ".yarnrc.yml",
    ".vscode/", ".idea/", ".devcontainer/", ".github/workflows/", ".gitlab-ci.yml",
    ".gitattributes", ".gitmodules", ".gitconfig", ".envrc", ".direnv/", ".tool-versions",
    ".mise.toml", ".cargo/config.toml", ".cargo/config", ".assistignore",
    "build.rs", "Cargo.toml", "CMakeLists.txt", "*.cmake", "CMakePresets.json",
    "CMakeUserPresets.json", "meson.build", "build.gradle*", "settings.gradle*",
    "gradle.properties", "gradlew*", "gradle/wrapper/", "pom.xml", ".mvn/", "build.xml",
    "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "*.csproj",
    "*.fsproj", "*.vbproj", "*.sln", "Gemfile", "*.gemspec", "lefthook.yml", "lefthook.yaml",
    ".lefthook.yml", ".lefthook.yaml", "lefthook-local.yml", ".lintstagedrc*",
    "lint-staged.config.*", "*.config.js", "*.config.cjs", "*.config.mjs", "*.config.ts",
    ".eslintrc.js", ".eslintrc.cjs", "WORKSPACE", "WORKSPACE.bazel", "MODULE.bazel", "BUILD",
    "BUILD.bazel", "*.bzl", ".bazelrc", "Pipfile", "flake.nix", "shell.nix", "default.nix",
)  # fmt: skip
# Matched on the casefolded path: on a case-insensitive filesystem `.VSCode/Tasks.json` is the
# same file as `.vscode/tasks.json`.
_SENSITIVE = pathspec.GitIgnoreSpec.from_lines(p.casefold() for p in SENSITIVE)
_TOOLS_DIRS = frozenset((".git", ".assist", ".hg", ".svn"))
"""Never touched by the agent in any letter case (privacy.ALWAYS_EXCLUDED, case-insensitively)."""
MAX_READ_BYTES = 2 * 1024 * 1024
MAX_LISTED = 400


class ToolError(AssistError):
    """A tool call that cannot be done; the message goes back to the model."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "")


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


def visible(text: str) -> str:
    """Model- or repository-derived text made safe for a terminal: control and format
    characters (escape sequences, carriage returns, bidi overrides) appear escaped."""
    return "".join(
        c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


@dataclass(frozen=True)
class Action:
    call: ToolCall
    request: ApprovalRequest | None
    """None for reading tools, which run without asking."""
    run: Callable[[threading.Event], str]
    """Does it; returns the result text for the model. Takes the stop key's event."""


def sensitive_reason(rel: str) -> str:
    if not _SENSITIVE.match_file(rel.casefold()):
        return ""
    return (f"{rel} can make tools run commands later (hooks, build or test configuration, "
            "editor tasks, environment loaders): approve only if you meant this")  # fmt: skip


@functools.lru_cache(maxsize=64)
def folds_case(root: Path) -> bool:
    """Whether the filesystem at `root` ignores letter case (macOS APFS, NTFS): an entry of
    the root, asked for with its case swapped, is the same file."""
    try:
        names = [n for n in os.listdir(root) if n.swapcase() != n][:8]
        probes = [(root / n, root / n.swapcase()) for n in names]
        if root.name.swapcase() != root.name:
            probes.append((root, root.parent / root.name.swapcase()))
        for real, swapped in probes:
            if os.path.lexists(swapped):
                return os.path.samefile(real, swapped)
            return False
    except OSError:
        pass
    return False


def _disk_case(root: Path, rel: str) -> str:
    """`rel` spelled as the entries are stored on disk, as far as they exist (on a filesystem
    that folds case, realpath keeps the case the model typed)."""
    parts: list[str] = []
    here = root
    for i, part in enumerate(rel.split("/")):
        try:
            names = os.listdir(here)
        except OSError:
            return "/".join([*parts, *rel.split("/")[i:]])
        same = [n for n in names if n.casefold() == part.casefold()]
        part = part if part in names or len(same) != 1 else same[0]
        parts.append(part)
        here = here / part
    return "/".join(parts)


def confine(ws: Workspace, raw: str, *, fold: bool | None = None) -> tuple[Path, str]:
    """`raw` (relative to the root, or absolute) as (real path, repository-relative path).

    Refuses anything whose real location is outside the workspace, and anything private or
    excluded, whether by the name asked for or by where a symlink leads. `.git/` and the like
    are refused in any letter case; where the filesystem folds case (`fold`, detected when
    None), the privacy rules are also checked on the on-disk spelling and the casefolded path.
    """
    if not raw.strip() or "\0" in raw:
        raise ToolError(f"invalid path {raw!r}")
    root = Path(os.path.realpath(ws.root))
    asked = Path(raw)
    full = asked if asked.is_absolute() else root / asked
    real = Path(os.path.realpath(full))
    if real.parts[: len(root.parts)] != root.parts:
        raise ToolError(f"{raw}: outside the workspace; only paths inside {root} can be used")
    rel = real.relative_to(root).as_posix()
    lexical = os.path.relpath(os.path.normpath(full), root).replace(os.sep, "/")
    candidates = {rel, lexical} - {"."}
    if fold if fold is not None else folds_case(root):
        candidates |= {_disk_case(root, c) for c in candidates if not c.startswith("../")}
        candidates |= {c.casefold() for c in candidates}
    for candidate in candidates:
        if candidate.startswith("../"):
            continue
        if _TOOLS_DIRS.intersection(part.casefold() for part in candidate.split("/")):
            raise ToolError(f"{raw}: not available to the agent: a version-control or assist "
                            "directory")  # fmt: skip
        why = ws.rules.reason(candidate) or ws.rules.reason(candidate + "/")
        if why:
            raise ToolError(f"{raw}: not available to the agent: {why}")
    return real, "." if rel == "." else rel


class Toolbox:
    """Turns validated calls into actions on one workspace."""

    def __init__(self, ws: Workspace, *, output_limit: int, command_timeout: float) -> None:
        self.ws = ws
        self.root = Path(os.path.realpath(ws.root))
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

    def _read_text(self, real: Path, rel: str) -> str:
        if not real.is_file():
            raise ToolError(f"{rel}: no such file")
        if real.stat().st_size > MAX_READ_BYTES:
            raise ToolError(f"{rel}: larger than {MAX_READ_BYTES // 1024} KB; use grep on it")
        data = real.read_bytes()
        if b"\0" in data[:8192]:
            raise ToolError(f"{rel}: a binary file")
        return data.decode("utf-8", "replace")

    def _files_under(self, real: Path, rel: str) -> Iterator[tuple[Path, str]]:
        """Files the agent may see under a directory (or the file itself), in path order."""
        if real.is_file():
            yield real, rel
            return
        if not real.is_dir():
            raise ToolError(f"{rel}: no such file or directory")
        listed = git_paths(self.root) or walk_paths(self.root)
        prefix = "" if rel == "." else rel + "/"
        for path in listed:
            if not path.startswith(prefix) or not self.ws.rules.allows(path):
                continue
            full = self.root / path
            resolved = Path(os.path.realpath(full))
            if resolved.parts[: len(self.root.parts)] != self.root.parts:
                continue  # a symlink that leads out of the workspace
            inner = resolved.relative_to(self.root).as_posix()
            if inner != path and not self.ws.rules.allows(inner):
                continue
            if resolved.is_file():
                yield resolved, path

    def _read(self, call: ToolCall, action: Callable[[threading.Event], str]) -> Action:
        return Action(call, None, action)

    def _list_files(self, call: ToolCall) -> Action:
        real, rel = confine(self.ws, call.text("path") or ".")
        paths = [p for _, p in self._files_under(real, rel)]
        shown = paths[:MAX_LISTED]
        more = f"\n[{len(paths) - MAX_LISTED} more files]" if len(paths) > MAX_LISTED else ""
        text = "\n".join(shown) + more if shown else "(no files)"
        return self._read(call, lambda _: self._cap(text))

    def _read_file(self, call: ToolCall) -> Action:
        real, rel = confine(self.ws, call.text("path"))
        lines = self._read_text(real, rel).splitlines()
        start = max(call.number("start"), 1)
        end = call.number("end") or len(lines)
        if start > max(len(lines), 1) or end < start:
            raise ToolError(f"{rel}: lines {start}-{end} are not in a {len(lines)}-line file")
        body = "".join(f"{n:>5}  {lines[n - 1]}\n" for n in range(start, min(end, len(lines)) + 1))
        text = f"{rel} (lines {start}-{min(end, len(lines))} of {len(lines)})\n{body}"
        return self._read(call, lambda _: self._cap(text))

    def _grep(self, call: ToolCall) -> Action:
        try:
            pattern = re.compile(call.text("pattern"))
        except re.error as exc:
            raise ToolError(f"bad regular expression: {exc}") from None
        real, rel = confine(self.ws, call.text("path") or ".")
        out: list[str] = []
        size = 0
        for full, path in self._files_under(real, rel):
            try:
                text = self._read_text(full, path)
            except ToolError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    out.append(f"{path}:{n}: {line.strip()[:200]}")
                    size += len(out[-1]) + 1
            if size > self.limit:
                break
        text = "\n".join(out) if out else "(no matches)"
        return self._read(call, lambda _: self._cap(text))

    def _search(self, call: ToolCall) -> Action:
        if not self.ws.has_index():
            raise ToolError("there is no index here yet; use grep instead")
        mode = "hybrid" if self.ws.vector_index() is not None else "keyword"
        hits = self.ws.search(call.text("query"), k=10, mode=mode)  # type: ignore[arg-type]
        lines = [
            f"{h.path}:{h.start_line}-{h.end_line} {h.kind} {h.name}  {h.signature}".rstrip()
            for h in hits
            if self.ws.rules.allows(h.path)
        ]
        text = "\n".join(lines) if lines else "(no results)"
        return self._read(call, lambda _: self._cap(text))

    def _find_symbol(self, call: ToolCall) -> Action:
        from assistant.symbols import extract_symbols

        name = call.text("name").strip()
        if not re.fullmatch(r"[\w.$:]+", name):
            raise ToolError(f"{name!r} is not a symbol name")
        short = re.split(r"[.:]+", name)[-1]
        word = re.compile(rf"(?<![\w$]){re.escape(short)}(?![\w$])")
        defs: list[str] = []
        refs: list[str] = []
        for full, path in self._files_under(self.root, "."):
            language = language_for_path(path)
            try:
                text = self._read_text(full, path)
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

    def _edit_request(
        self, call: ToolCall, changes: list[tuple[Path, str, str | None, str | None]]
    ) -> Action:
        """One approval for a set of (real path, rel, old text, new text) changes."""
        diff = "".join(unified_diff(old, new, rel) for _, rel, old, new in changes)
        if not diff:
            raise ToolError("the edit changes nothing")
        rels = tuple(rel for _, rel, _, _ in changes)
        warning = "; ".join(w for w in (sensitive_reason(r) for r in rels) if w)
        verb = {True: "create", False: "edit"}
        names = ", ".join(f"{verb[old is None] if new is not None else 'delete'} {rel}"
                          for _, rel, old, new in changes)  # fmt: skip
        request = ApprovalRequest(call.tool, "edit", names, diff, rels, warning)

        def run(cancel: threading.Event) -> str:
            for real, rel, old, _new in changes:
                # The tree may have changed while the user read the diff (a command, an editor).
                if confine(self.ws, rel)[0] != real:
                    raise ToolError(f"{rel} now leads somewhere else; read it again")
                now = real.read_bytes().decode("utf-8", "replace") if real.exists() else None
                if now != old:
                    raise ToolError(f"{rel} changed since the edit was proposed; read it again")
            for real, _rel, _old, new in changes:
                if new is None:
                    real.unlink()
                else:
                    real.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(real, new.encode("utf-8"))
            added = sum(1 for x in diff.splitlines() if x.startswith("+") and x[:3] != "+++")
            gone = sum(1 for x in diff.splitlines() if x.startswith("-") and x[:3] != "---")
            return f"done: {names} (+{added} -{gone} lines)"

        return Action(call, request, run)

    def _existing_text(self, real: Path, rel: str) -> str:
        if not real.is_file():
            raise ToolError(f"{rel}: no such file (use create_file for a new one)")
        try:
            return real.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{rel}: not UTF-8 text; the agent edits text files only") from None

    def _edit_file(self, call: ToolCall) -> Action:
        real, rel = confine(self.ws, call.text("path"))
        old = self._existing_text(real, rel)
        new = replace_once(old, call.text("search"), call.text("replace"))
        return self._edit_request(call, [(real, rel, old, new)])

    def _create_file(self, call: ToolCall) -> Action:
        real, rel = confine(self.ws, call.text("path"))
        if real.exists() or real.is_symlink():
            raise ToolError(f"{rel}: already exists; use edit_file to change it")
        return self._edit_request(call, [(real, rel, None, call.text("content"))])

    def _apply_patch(self, call: ToolCall) -> Action:
        changes: list[tuple[Path, str, str | None, str | None]] = []
        for patch in parse_unified(call.text("diff")):
            if DEV_NULL not in (patch.old_path, patch.new_path) and (
                patch.old_path != patch.new_path
            ):
                raise ToolError(f"{patch.old_path} -> {patch.new_path}: renames are not supported")
            real, rel = confine(self.ws, patch.path)
            if any(rel == c[1] for c in changes):
                raise ToolError(f"{rel}: appears twice in the diff; merge its hunks")
            if patch.old_path == DEV_NULL:
                if real.exists():
                    raise ToolError(f"{rel}: already exists; diff it against the current file")
                changes.append((real, rel, None, apply_hunks("", patch.hunks)))
                continue
            old = self._existing_text(real, rel)
            new = apply_hunks(old, patch.hunks)
            changes.append((real, rel, old, None if patch.new_path == DEV_NULL else new))
        return self._edit_request(call, changes)

    def _run_command(self, call: ToolCall) -> Action:
        command = call.text("command")
        if not command.strip():
            raise ToolError("the command is empty")
        request = ApprovalRequest(call.tool, "command", f"run: {command}", command)

        def run(cancel: threading.Event) -> str:
            result = run_command(
                command, self.root, timeout=self.timeout, limit=self.limit, cancel=cancel
            )
            return result.report()

        return Action(call, request, run)
