"""Undo and redo for agent steps, kept in git without touching the user's branch, index or HEAD.

A checkpoint is a commit, built with plumbing only: blobs from `hash-object --no-filters` (the
exact bytes, no clean filters or line-ending conversion), a tree from a throw-away index file
(`GIT_INDEX_FILE`), `commit-tree`, and `update-ref` on refs under `refs/assist/agent/`. The
snapshot holds every tracked and untracked-but-not-ignored file as it is on disk, so a dirty tree
comes back exactly; ignored files (`.venv`, build output) are never read, written or deleted.

The chain: each commit's parent is the state before it. `current` is where the files are now,
`head` the newest step (redo walks back from it). A `start` commit records the files as the user
left them when a task began; undo stops there, because going further would revert the user's own
changes made between tasks.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from assistant.errors import AssistError
from assistant.repo.atomic import write_atomic
from assistant.repo.git import GitError, git, ignored, rev
from assistant.repo.own_files import directory

REF_PREFIX = "refs/assist/agent"
HEAD_REF = f"{REF_PREFIX}/head"
CURRENT_REF = f"{REF_PREFIX}/current"
SAVED_PREFIX = f"{REF_PREFIX}/saved"
MAX_FILE_BYTES = 100 * 1024 * 1024
"""Larger untracked files are left out of snapshots (and so never restored or deleted)."""

_IDENTITY = {
    "GIT_AUTHOR_NAME": "assist",
    "GIT_AUTHOR_EMAIL": "assist@localhost",
    "GIT_COMMITTER_NAME": "assist",
    "GIT_COMMITTER_EMAIL": "assist@localhost",
}
Kind = Literal["start", "step"]


@dataclass(frozen=True)
class Checkpoint:
    commit: str
    tree: str
    parent: str | None
    kind: Kind
    label: str


@dataclass(frozen=True)
class Restored:
    checkpoint: Checkpoint
    written: tuple[str, ...]
    deleted: tuple[str, ...]
    kept: tuple[str, ...] = ()
    """Paths changed since the checkpoint that the restore did not touch: left as they are."""


class Checkpoints:
    """The undo/redo chain of one repository."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        try:
            top = self._git("rev-parse", "--show-toplevel").decode().strip()
        except GitError:
            raise AssistError(
                f"{root}: not a git repository; agent checkpoints (undo) need one",
                "run `git init` there first (no commit is needed)",
            ) from None
        if Path(os.path.realpath(top)) != self.root:
            raise AssistError(f"{root}: not the top of its git repository ({top})", "use the top")
        # Blob ids by path, valid while (size, mtime, ctime, inode) are unchanged: any write,
        # ours included, changes ctime, so the cache never needs clearing.
        self._hashes: dict[str, tuple[tuple[int, int, int, int], str]] = {}

    # -- git -----------------------------------------------------------------------------------

    def _git(
        self, *args: str, data: bytes | None = None, env: dict[str, str] | None = None
    ) -> bytes:
        return git(self.root, *args, data=data, env=env)

    def _ref(self, ref: str) -> str | None:
        return rev(self.root, ref)

    def load(self, commit: str) -> Checkpoint:
        raw = self._git("log", "-1", "--format=%T%x00%P%x00%s", commit).decode().strip()
        tree, parents, subject = raw.split("\0", 2)
        kind: Kind = "start" if subject.startswith("assist start:") else "step"
        label = subject.split(":", 1)[1].strip() if ":" in subject else subject
        return Checkpoint(commit, tree, parents.split()[0] if parents else None, kind, label)

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> str:
        """The tree of every tracked and untracked, not ignored file, exactly as on disk."""
        listed = self._git("ls-files", "-z", "-c", "-o", "--exclude-standard")
        entries: list[tuple[str, str, str]] = []
        to_hash: list[tuple[str, tuple[int, int, int, int]]] = []
        modes: dict[str, str] = {}
        for rel in sorted(set(listed.decode("utf-8", "surrogateescape").split("\0"))):
            if not rel or rel.endswith("/") or rel.split("/", 1)[0] in (".git", ".assist"):
                continue
            full = self.root / rel
            try:
                st = full.lstat()
            except OSError:
                continue  # tracked but deleted on disk: absent from the snapshot
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(full).encode("utf-8", "surrogateescape")
                sha = self._git("hash-object", "-w", "--stdin", data=target).decode().strip()
                entries.append(("120000", sha, rel))
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
                continue
            modes[rel] = "100755" if st.st_mode & 0o111 else "100644"
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            cached = self._hashes.get(rel)
            if cached and cached[0] == key:
                entries.append((modes[rel], cached[1], rel))
            else:
                to_hash.append((rel, key))
        for (rel, key), sha in zip(to_hash, self._hash_files([r for r, _ in to_hash]), strict=True):
            self._hashes[rel] = (key, sha)
            entries.append((modes[rel], sha, rel))
        with tempfile.TemporaryDirectory(prefix="assist-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            info = b"".join(
                f"{mode} {sha}\t".encode() + rel.encode("utf-8", "surrogateescape") + b"\0"
                for mode, sha, rel in entries
            )
            self._git("update-index", "-z", "--index-info", data=info, env=env)
            return self._git("write-tree", env=env).decode().strip()

    def _hash_files(self, rels: list[str]) -> list[str]:
        # --stdin-paths is newline-separated; the rare path with a newline is hashed alone.
        plain = [r for r in rels if "\n" not in r]
        shas: dict[str, str] = {}
        if plain:
            out = self._git(
                "hash-object", "-w", "--no-filters", "--stdin-paths",
                data="".join(r + "\n" for r in plain).encode("utf-8", "surrogateescape"),
            ).decode().split()  # fmt: skip
            shas.update(zip(plain, out, strict=True))
        for r in rels:
            if r not in shas:
                data = (self.root / r).read_bytes()
                shas[r] = self._git("hash-object", "-w", "--stdin", data=data).decode().strip()
        return [shas[r] for r in rels]

    def _commit(self, tree: str, parent: str | None, kind: Kind, label: str) -> Checkpoint:
        first_line = " ".join(label.split())[:200]
        args = ["commit-tree", tree, "-m", f"assist {kind}: {first_line}"]
        if parent:
            args += ["-p", parent]
        commit = self._git(*args, env=_IDENTITY).decode().strip()
        return Checkpoint(commit, tree, parent, kind, first_line)

    def _move(self, ref: str, cp: Checkpoint) -> None:
        self._git("update-ref", ref, cp.commit)

    # -- the chain -----------------------------------------------------------------------------

    def current(self) -> Checkpoint | None:
        commit = self._ref(CURRENT_REF)
        return self.load(commit) if commit else None

    def begin(self, label: str) -> Checkpoint:
        """Before a task's first change: the files as they are now (dirty, untracked and all)."""
        tree = self.snapshot()
        cur = self.current()
        if cur is not None and cur.tree == tree:
            return cur  # nothing changed since the last checkpoint: keep one chain
        cp = self._commit(tree, cur.commit if cur else None, "start", label)
        self._move(CURRENT_REF, cp)
        self._move(HEAD_REF, cp)
        return cp

    def record(self, label: str) -> Checkpoint | None:
        """After a step; None when it changed no file. Drops whatever could be redone."""
        tree = self.snapshot()
        cur = self.current()
        if cur is None:
            raise AssistError("no checkpoint to build on", "call begin() before the first step")
        if cur.tree == tree:
            return None
        cp = self._commit(tree, cur.commit, "step", label)
        self._move(CURRENT_REF, cp)
        self._move(HEAD_REF, cp)
        return cp

    def changed_since(self, start: Checkpoint) -> list[str]:
        """Paths whose content differs between `start` and the current checkpoint."""
        cur = self.current()
        if cur is None or cur.tree == start.tree:
            return []
        return sorted({path for _, _, path in self._changes(start.tree, cur.tree)})

    def undo(self, *, force: bool = False) -> Restored:
        cur = self.current()
        if cur is None or cur.kind == "start" or cur.parent is None:
            raise AssistError("nothing to undo", "undo reaches back to where the last task began")
        return self._go(cur, self.load(cur.parent), force)

    def redo(self, *, force: bool = False) -> Restored:
        cur = self.current()
        head = self._ref(HEAD_REF)
        if cur is None or head is None:
            raise AssistError("nothing to redo", "redo follows an undo")
        child: Checkpoint | None = None
        commit: str | None = head
        while commit and commit != cur.commit:
            cp = self.load(commit)
            if cp.parent == cur.commit:
                child = cp
                break
            commit = cp.parent
        if child is None:
            raise AssistError("nothing to redo", "redo follows an undo, before any new step")
        return self._go(cur, child, force)

    def _go(self, cur: Checkpoint, target: Checkpoint, force: bool) -> Restored:
        """From `cur` to `target`. Files changed since `cur` that the restore does not touch are
        left as they are; if it would overwrite or delete any, it refuses unless forced, and a
        forced one first keeps the current files under `refs/assist/agent/saved/`."""
        now = self.snapshot()
        theirs = [p for _, _, p in self._changes(cur.tree, now)] if now != cur.tree else []
        ours = [p for _, _, p in self._changes(cur.tree, target.tree)]
        clash = _overlapping(theirs, ours)
        if clash and not force:
            names = ", ".join(clash[:5]) + (" …" if len(clash) > 5 else "")
            raise AssistError(
                f"files changed since the agent's last checkpoint: {names}",
                "save your changes elsewhere first, or force it (your current files are then "
                f"kept under {SAVED_PREFIX}/)",
            )
        if clash:
            saved = self._commit(now, cur.commit, "step", "files before a forced undo/redo")
            self._git("update-ref", f"{SAVED_PREFIX}/{saved.commit[:12]}", saved.commit)
        return self._restore(cur.tree, target, keep=set(theirs) - set(clash))

    def _changes(self, a: str, b: str) -> list[tuple[str, str, str]]:
        """(status, new blob, path) for every path that differs between two trees."""
        raw = self._git("diff-tree", "-r", "-z", "--no-renames", a, b)
        parts = raw.decode("utf-8", "surrogateescape").split("\0")
        out = []
        for meta, path in zip(parts[0::2], parts[1::2], strict=False):
            if not meta.startswith(":"):
                continue
            _, new_mode, _, new_sha, status = meta[1:].split(" ")
            out.append((status, f"{new_mode} {new_sha}", path))
        return out

    def _restore(self, from_tree: str, target: Checkpoint, keep: set[str]) -> Restored:
        changes = self._changes(from_tree, target.tree)
        writes = [(spec, p) for status, spec, p in changes if status != "D"]
        deletes = [p for status, _, p in changes if status == "D"]
        blobs = dict(zip(writes, self._blobs([spec.split()[1] for spec, _ in writes]), strict=True))
        # Ignore files first: whether a path may be deleted depends on the target's rules.
        first = [w for w in writes if w[1].rsplit("/", 1)[-1] == ".gitignore"]
        for spec, p in first:
            self._write(p, spec.split()[0], blobs[(spec, p)])
        kept = self._ignored(deletes)
        for p in deletes:  # before the other writes, so a file can become a directory and back
            if p not in kept:
                self._delete(p)
        for spec, p in writes:
            if (spec, p) not in first:
                self._write(p, spec.split()[0], blobs[(spec, p)])
        self._move(CURRENT_REF, target)
        after = self.snapshot()
        wrong = [p for _, _, p in self._changes(target.tree, after) if p not in keep]
        if after != target.tree and wrong:
            raise AssistError(
                f"the files do not match the checkpoint after restoring it: {', '.join(wrong[:5])}",
                f"compare with `git diff {target.tree}`; something else is writing the tree",
            )
        return Restored(
            target,
            tuple(p for _, p in writes),
            tuple(p for p in deletes if p not in kept),
            tuple(sorted(keep)),
        )

    def _ignored(self, paths: list[str]) -> set[str]:
        # A file that is ignored once the target's .gitignore is back (a .venv the agent had
        # un-ignored) is the user's, not a snapshot's: never delete it.
        return ignored(self.root, paths)

    def _blobs(self, shas: list[str]) -> list[bytes]:
        if not shas:
            return []
        raw = self._git("cat-file", "--batch", data="".join(s + "\n" for s in shas).encode())
        out, pos = [], 0
        for _ in shas:
            end = raw.index(b"\n", pos)
            size = int(raw[pos:end].split()[2])
            out.append(raw[end + 1 : end + 1 + size])
            pos = end + 1 + size + 1
        return out

    def _inside(self, rel: str) -> Path:
        full = self.root / rel
        parent = Path(os.path.realpath(full.parent))
        if parent != self.root and self.root not in parent.parents:
            raise AssistError(
                f"{rel}: its directory leads outside the repository", "fix it by hand"
            )
        return full

    def _delete(self, rel: str) -> None:
        full = self._inside(rel)
        with contextlib.suppress(FileNotFoundError):
            full.unlink()
        parent = full.parent
        while parent != self.root:
            try:
                parent.rmdir()  # only succeeds when empty: directories the agent created
            except OSError:
                break
            parent = parent.parent

    def _write(self, rel: str, mode: str, data: bytes) -> None:
        full = self._inside(rel)
        if full.is_dir() and not full.is_symlink():
            raise AssistError(f"{rel}: a directory is in the way of a restored file", "move it")
        folder, _, name = rel.rpartition("/")
        with directory(self.root, folder, create=True) as dir_fd:  # no link followed on the way
            if mode == "120000":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dir_fd)
                os.symlink(data.decode("utf-8", "surrogateescape"), name, dir_fd=dir_fd)
                return
            write_atomic(Path(name), data, executable=mode == "100755", dir_fd=dir_fd)


def _overlapping(theirs: list[str], ours: list[str]) -> list[str]:
    """The paths of `theirs` that `ours` would overwrite or delete: the same path, or one a
    directory of the other (a file that must become a directory, or the other way round)."""
    mine = set(ours)
    dirs = {d for p in ours for d in _parents(p)}
    return [p for p in theirs if p in mine or p in dirs or any(d in mine for d in _parents(p))]


def _parents(rel: str) -> list[str]:
    return [rel.rsplit("/", i)[0] for i in range(1, rel.count("/") + 1)]
