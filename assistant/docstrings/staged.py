"""Documenting what is staged: the pre-commit hook's work, on the index git hands it.

The run works on what is staged, read from the index that `GIT_INDEX_FILE` names (git points it
at a temporary index for `git commit -a` and `git commit PATHS`; every git command started here
inherits it, and nothing reads `.git/index` directly). A doc is written into a new blob in that
index and, at the same place, into the work-tree file, but only where the lines around it are the
same in both; beside an unstaged hunk the symbol is left for later, so unstaged work is never
committed and never lost. The work tree is written first (and only if it still holds what was
read), then the index. Under the pre-commit framework (`PRE_COMMIT=1`) only the work tree is
written: pre-commit has stashed the unstaged hunks and re-applies them itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from assistant.docstrings import conventions, generate
from assistant.docstrings.generate import FileReport
from assistant.docstrings.run import resolve_style, unwritten, wants_sections
from assistant.errors import AssistError
from assistant.index.languages import language_for_path
from assistant.repo.atomic import write_atomic
from assistant.repo.git import EMPTY_TREE, diff_lines, git_dir, has_head, text, unquote_path

_REGULAR_MODES = ("100644", "100755")


@dataclass
class HookResult:
    reports: list[FileReport] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fail_on_change: bool = True


def document_staged(start: Path, files: list[str] | None = None) -> HookResult:
    """Document the changed symbols of the staged files (of `files`, when given)."""
    from assistant.workspace import Workspace

    env = dict(os.environ)
    top = Path(text(start, "rev-parse", "--show-toplevel").strip())
    ws = Workspace.open(top, require_repo=True)
    result = HookResult(fail_on_change=ws.settings.docstring.hook_fail_on_change)
    base = "HEAD" if has_head(top, env) else EMPTY_TREE
    staged, renamed = _staged_paths(top, base)
    if files is not None:
        wanted = {ws.rules.relative(f) for f in files}
        staged = [p for p in staged if p in wanted]
    # pre-commit stashes the unstaged hunks, runs hooks on the work tree, and re-applies the
    # stash; it stages nothing itself. Writing the index too would make its rollback fail.
    under_pre_commit = env.get("PRE_COMMIT") == "1"
    stashed = _pre_commit_stash(env) if under_pre_commit else {}
    style: conventions.Style | None = None
    for rel in staged:
        language = language_for_path(rel)
        if language is None or language not in conventions.CONVENTIONS:
            continue
        if not ws.rules.allows(rel):
            result.notes.append(f"{rel}: {ws.rules.reason(rel)}; not documented")
            continue
        entry = text(top, "ls-files", "-s", "-z", "--", rel, env=env).split("\0")[0]
        meta, _, _ = entry.partition("\t")
        parts = meta.split()
        if len(parts) != 3 or parts[0] not in _REGULAR_MODES or parts[2] != "0":
            continue  # a symlink, a submodule, or a conflict: nothing to document
        mode, blob = parts[0], parts[1]
        # A renamed file is compared with its old self, not counted as all new.
        paths = [rel, renamed[rel]] if rel in renamed else [rel]
        diff = text(
            top, "diff", "--cached", "-U0", "-M", "--no-color", "--no-ext-diff", base, "--", *paths
        )
        lines = diff_lines(diff).get(rel, set())
        try:
            staged_text = (
                text(top, "cat-file", "blob", blob, env=env)
                .encode("utf-8", "surrogateescape")
                .decode("utf-8")
            )
        except UnicodeDecodeError:
            result.notes.append(f"{rel}: the staged file is not UTF-8 text; not documented")
            continue
        planned = generate.plan(rel, staged_text, language, changed=lines)
        if not planned.targets:
            continue  # the common case: no model is loaded at all
        full = top / rel
        if full.is_symlink():
            # Staged as a file, a link in the work tree (an unstaged type change): writing
            # would go through the link, or replace the user's link with a file.
            result.notes.append(f"{rel}: is a symlink in the work tree; not documented")
            continue
        raw = _read(full)
        if raw is None and (full.exists() or full.is_symlink()):
            result.notes.append(
                f"{rel}: the work-tree file cannot be read as UTF-8; not documented"
            )
            continue
        worktree = None if raw is None else raw.decode("utf-8")
        rows, mapping = _safe_rows(staged_text, worktree)
        if rel in stashed:
            # pre-commit re-applies its stash with `git apply`, which needs each hunk's context
            # lines as they were: a doc inside one would make it roll the doc back, and every
            # retry would repeat that. Such symbols wait, like those beside an unstaged hunk.
            rows = (set(range(staged_text.count("\n") + 2)) if rows is None else rows) - {
                r for hunk in stashed[rel] for r in _inside(hunk, staged_text.count("\n"))
            }
        style = style or resolve_style(ws)
        sections = wants_sections(ws)
        permit = ws.permit(top / rel)
        report = generate.document_text(
            ws.model,
            rel,
            staged_text,
            language,
            style=style,
            changed=lines,
            max_tokens=ws.settings.docstring.max_tokens,
            rows=rows,
            sections=sections,
            permit=permit,
        )
        result.reports.append(report)
        if not report.changed:
            continue
        new_worktree = None
        if worktree is not None:
            new_worktree = _apply(worktree, report.edits, mapping)
            if new_worktree is None or not generate.parses(new_worktree, language):
                result.notes.append(f"{rel}: the work tree differs too much; not documented")
                continue
        new_blob = text(
            top, "hash-object", "-w", "--no-filters", "--stdin", env=env,
            data=report.new.encode("utf-8"),
        ).strip()  # fmt: skip
        # The work tree first, so the index never holds a doc the work tree lacks.
        rewrite = raw is not None and new_worktree is not None and new_worktree != worktree
        if rewrite and not write_atomic(full, new_worktree or "", expected=raw):
            unwritten(report, "the file changed during the run; not written")
            continue
        if under_pre_commit:
            if not rewrite:
                continue
            result.notes.append(f"{rel}: docs written to the work tree only (pre-commit); add them")
        else:
            try:
                for index_env in _indexes(top, env):
                    cacheinfo = f"{mode},{new_blob},{rel}"
                    text(top, "update-index", "--cacheinfo", cacheinfo, env=index_env)
            except AssistError:
                if rewrite and worktree is not None:
                    write_atomic(full, worktree)  # put the work tree back as it was
                raise
        report.written = True
        result.changed_files.append(rel)
    return result


def _staged_paths(top: Path, base: str) -> tuple[list[str], dict[str, str]]:
    """The staged files that have content (added, copied, modified, renamed), and the renames
    among them (git's own detection, as `git status` shows them): new path -> old. One git
    call: the hook runs on every commit."""
    out = text(top, "diff", "--cached", "--name-status", "-z", "-M", "--diff-filter=ACMR", base)
    fields = out.split("\0")
    paths: list[str] = []
    renamed: dict[str, str] = {}
    i = 0
    while i + 1 < len(fields):
        status = fields[i]
        if status[:1] in ("R", "C"):  # two names: old, new
            old, new = fields[i + 1], fields[i + 2]
            if status[0] == "R":
                renamed[new] = old
            paths.append(new)
            i += 3
        else:
            paths.append(fields[i + 1])
            i += 2
    return [p for p in paths if p], renamed


def _inside(hunk: tuple[int, int], lines: int) -> range:
    """Insertion rows that `git apply` would no longer match the hunk around: between two of
    its lines, or before/after it where it is anchored to the file's start/end."""
    first, count = hunk
    start = first - 1 if first <= 1 else first
    end = first + count if first + count - 1 >= lines else first + count - 1
    return range(max(start, 0), end)


def _ancestors() -> list[int]:
    """This process's parent, grandparent… (pre-commit may start the hook through a shell)."""
    found: list[int] = []
    pid = os.getppid()
    while pid > 1 and len(found) < 8:
        found.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _pre_commit_stash(env: dict[str, str]) -> dict[str, list[tuple[int, int]]]:
    """The hunks pre-commit stashed before running hooks: path -> (first line, line count) of
    each hunk on the staged side, context included. pre-commit writes them to
    `<its home>/patch<time>-<its pid>` and applies them again after the hooks."""
    homes = [env.get("PRE_COMMIT_HOME", "")]
    homes.append(os.path.join(env.get("XDG_CACHE_HOME", "") or os.path.expanduser("~/.cache"),
                              "pre-commit"))  # fmt: skip
    patches: list[Path] = []
    for pid in _ancestors():
        for home in filter(None, homes):
            patches.extend(Path(home).glob(f"patch*-{pid}"))
    if not patches:
        return {}
    newest = max(patches, key=lambda p: p.stat().st_mtime)
    hunks: dict[str, list[tuple[int, int]]] = {}
    current = ""
    for line in newest.read_bytes().decode("utf-8", "surrogateescape").split("\n"):
        if line.startswith("--- "):
            name = unquote_path(line[4:])
            current = name[2:] if name.startswith("a/") else ""
        elif line.startswith("@@ -") and current:
            old = line[4:].split(" ", 1)[0]
            first, _, count = old.partition(",")
            hunks.setdefault(current, []).append((int(first), int(count or 1)))
    return hunks


def _indexes(top: Path, env: dict[str, str]) -> list[dict[str, str]]:
    """The index to commit from, and for `git commit PATHS` also the real one being rewritten.

    For `git commit PATHS` git builds a temporary `next-index-*.lock` to commit from and, at the
    same time, updates the real index as `index.lock`, renamed into place after the commit. A
    doc written only into the first would show up afterwards as staged-removed, unstaged-added.
    """
    found = [env]
    named = env.get("GIT_INDEX_FILE", "")
    if Path(named).name.startswith("next-index-"):
        lock = git_dir(top, env) / "index.lock"
        if lock.is_file():
            found.append({**env, "GIT_INDEX_FILE": str(lock)})
    return found


def _read(path: Path) -> bytes | None:
    """The file's bytes if they are UTF-8 text; None when missing or unreadable."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return data


def _safe_rows(staged: str, worktree: str | None) -> tuple[set[int] | None, dict[int, int]]:
    """Rows of the staged text before which an insertion lands in the same place in the work
    tree (both neighbours unchanged there), with where each such row is in the work tree."""
    if worktree is None:
        return None, {}
    # Compared without "\r": with core.autocrlf the index has LF where the work tree has CRLF.
    a = [line.rstrip("\r") for line in staged.split("\n")]
    b = [line.rstrip("\r") for line in worktree.split("\n")]
    if a == b:
        return None, {i: i for i in range(len(a) + 1)}
    same: dict[int, int] = {}
    for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            same[block.a + k] = block.b + k
    # An insertion before row r lands between rows r-1 and r: both must be unchanged and still
    # next to each other in the work tree, or the doc would end up beside an unstaged line.
    rows = {r for r in range(len(a)) if r in same and same.get(r - 1, -1) == same[r] - 1}
    mapping = {r: same[r] for r in rows}
    return rows, mapping


def _apply(text: str, edits: list[tuple[int, int, list[str]]], rows: dict[int, int]) -> str | None:
    """The same edits on another version of the text, through a row mapping; None if one
    cannot be placed."""
    lines = text.split("\n")
    cr = "\r" if generate.line_ending(text) == "\r\n" else ""
    for start, end, new in edits:  # already bottom-up
        if start not in rows or end != start:
            return None
        at = rows[start]
        lines[at:at] = [line + cr for line in new]
    return "\n".join(lines)
