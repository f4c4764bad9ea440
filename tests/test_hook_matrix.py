"""The pre-commit hook across git situations, each compared with the same commit made with
`--no-verify` (the shadow): HEAD, index and work tree must equal the shadow's plus doc
insertions only, and nothing may be left behind (stash entries, lock files).

Every situation is built twice, identically, in two fresh repositories: one gets the hook and
commits normally, the other commits with `--no-verify`. Real git, real pre-commit, the tiny
generated model (its doc is always `Aaaaaaaa.`, so a doc insertion is recognisable).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hook_repo import git_env, run_git, use_pre_commit

Setup = Callable[[Path, dict[str, str]], None]

_DOCS = [
    re.compile(rb'^[ \t]*"""Aaaaaaaa\."""\r?\n', re.M),  # Python
    re.compile(rb"^[ \t]*/\*\*\r?\n[ \t]*\* Aaaaaaaa\.\r?\n[ \t]*\*/\r?\n", re.M),  # JSDoc
    re.compile(rb"^[ \t]*// \w+ aaaaaaaa\.\r?\n", re.M),  # godoc
]


def strip_docs(data: bytes) -> bytes:
    for pattern in _DOCS:
        data = pattern.sub(b"", data)
    return data


def w(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode())


def a(root: Path, rel: str, text: str) -> None:
    w(root, rel, (root / rel).read_text() + text)


BASE = '"""Calculator."""\n\n\ndef one():\n    """One."""\n    return 1\n'
LONG = BASE + "".join(f'\n\ndef k{i}():\n    """K."""\n    return {i}\n' for i in range(6))
SUB = "\n\ndef sub(a, b):\n    return a - b\n"


def base(root: Path, env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    run_git(root, env, "init", "-q", "-b", "main")
    w(root, "calc.py", LONG)
    w(root, "util.py", '"""Util."""\n')
    w(root, "web/app.js", "/** Start. */\nfunction start() {\n  return 1;\n}\n")
    w(root, "go/m.go", "package m\n\n// One is one.\nfunc One() int { return 1 }\n")
    run_git(root, env, "add", ".")
    run_git(root, env, "commit", "-q", "-m", "base")


def staged_then_edited(rel: str, staged: str, worktree: str) -> Setup:
    def setup(root: Path, env: dict[str, str]) -> None:
        w(root, rel, staged)
        run_git(root, env, "add", rel)
        w(root, rel, worktree)

    return setup


def stage(*rels: str) -> Callable[[Path, dict[str, str]], None]:
    def do(root: Path, env: dict[str, str]) -> None:
        run_git(root, env, "add", *rels)

    return do


def steps(*parts: Setup) -> Setup:
    def setup(root: Path, env: dict[str, str]) -> None:
        for part in parts:
            part(root, env)

    return setup


def write(rel: str, text: str | bytes) -> Setup:
    return lambda root, env: w(root, rel, text)


def append(rel: str, text: str) -> Setup:
    return lambda root, env: a(root, rel, text)


def sh(*args: str) -> Setup:
    return lambda root, env: run_git(root, env, *args)


def symlink(rel: str, target: str) -> Setup:
    def do(root: Path, env: dict[str, str]) -> None:
        (root / rel).unlink()
        (root / rel).symlink_to(target)

    return do


def chmod(rel: str, mode: int) -> Setup:
    return lambda root, env: (root / rel).chmod(mode)


def unlink(rel: str) -> Setup:
    return lambda root, env: (root / rel).unlink()


def branch_merge(conflict: bool) -> Setup:
    def do(root: Path, env: dict[str, str]) -> None:
        run_git(root, env, "checkout", "-q", "-b", "side")
        a(root, "calc.py", SUB)
        if conflict:
            w(root, "util.py", '"""Util, side."""\n')
        run_git(root, env, "commit", "-q", "-am", "side")
        run_git(root, env, "checkout", "-q", "main")
        a(root, "web/app.js", "\nfunction mul(a, b) {\n  return a * b;\n}\n")
        if conflict:
            w(root, "util.py", '"""Util, main."""\n')
        run_git(root, env, "commit", "-q", "-am", "main side")
        run_git(root, env, "merge", "--no-ff", "--no-commit", "side", check=False)
        if conflict:
            w(root, "util.py", '"""Util, merged."""\n')
            run_git(root, env, "add", "util.py")

    return do


def worktree(root: Path, env: dict[str, str]) -> None:
    run_git(root, env, "worktree", "add", "-q", "-b", "wt", str(root.parent / "wt"))
    a(root.parent / "wt", "calc.py", SUB)
    run_git(root.parent / "wt", env, "add", "calc.py")


@dataclass(frozen=True)
class Situation:
    name: str
    setup: Setup
    args: tuple[str, ...] = ()
    cwd: str = ""
    framework: bool = False


NEW = "def fresh(a):\n    return a\n"
NEAR = "def fresh(a):\n    return a  # edited\n"
FAR_STAGED = NEW + "".join(f"\n\nX{i} = {i}\n" for i in range(4))

SITUATIONS = [
    Situation("new file", steps(write("new.py", NEW), stage("new.py"))),
    Situation("new file, unstaged hunk far",
              staged_then_edited("new.py", FAR_STAGED, FAR_STAGED + "\nY = 9\n")),
    Situation("new file, unstaged hunk near", staged_then_edited("new.py", NEW, NEAR)),
    Situation("new file, unstaged append right after",
              staged_then_edited("new.py", NEW, NEW + "\n\ndef b():\n    return 2\n")),
    Situation("function added", steps(append("calc.py", SUB), stage("calc.py"))),
    Situation("function added, unstaged edit far",
              steps(append("calc.py", SUB), stage("calc.py"),
                    lambda r, e: w(r, "calc.py", (r / "calc.py").read_text().replace(
                        '"""Calculator."""', '"""Calculator, unstaged."""')))),
    Situation("function added, unstaged edit in it",
              steps(append("calc.py", SUB), stage("calc.py"),
                    lambda r, e: w(r, "calc.py", (r / "calc.py").read_text().replace(
                        "return a - b", "return a - b  # mine")))),
    Situation("two functions, one near an unstaged edit",
              steps(append("calc.py", SUB + "\n\ndef mul(a, b):\n    return a * b\n"),
                    stage("calc.py"),
                    lambda r, e: w(r, "calc.py", (r / "calc.py").read_text().replace(
                        "return a * b", "return a * b  # mine")))),
    Situation("commit -a", append("calc.py", SUB), ("-a",)),
    Situation("commit -a, untracked file left", steps(append("calc.py", SUB),
                                                       write("loose.py", NEW)), ("-a",)),
    Situation("commit -a, a deletion", steps(append("calc.py", SUB), unlink("util.py")), ("-a",)),
    Situation("commit PATHS", steps(append("calc.py", SUB), write("new.py", NEW),
                                    stage("new.py")), ("calc.py",)),
    Situation("commit -i PATHS", steps(append("calc.py", SUB), write("new.py", NEW),
                                       stage("new.py")), ("-i", "calc.py")),
    Situation("commit -o PATHS, other file staged", steps(append("calc.py", SUB),
              append("util.py", SUB), stage("util.py")), ("-o", "calc.py")),
    Situation("amend with a new function", steps(append("calc.py", SUB), stage("calc.py")),
              ("--amend",)),
    Situation("amend, message only", sh("status"), ("--amend",)),
    Situation("pure rename", sh("mv", "calc.py", "maths.py")),
    Situation("rename and edit", steps(sh("mv", "calc.py", "maths.py"), append("maths.py", SUB),
                                       stage("maths.py"))),
    Situation("staged deletion and an addition", steps(sh("rm", "-q", "util.py"),
                                                        append("calc.py", SUB),
                                                        stage("calc.py"))),
    Situation("staged file is a symlink in the work tree",
              steps(append("calc.py", SUB), stage("calc.py"), symlink("calc.py", "util.py"))),
    Situation("staged file deleted in the work tree",
              steps(write("new.py", NEW), stage("new.py"), unlink("new.py"))),
    Situation("staged file, unstaged mode change",
              steps(write("new.py", NEW), stage("new.py"), chmod("new.py", 0o755))),
    Situation("executable file", steps(write("tool.py", "#!/usr/bin/env python3\n" + NEW),
                                       chmod("tool.py", 0o755), stage("tool.py"))),
    Situation("CRLF file", steps(write("win.py", NEW.replace("\n", "\r\n")), stage("win.py"))),
    Situation("no final newline", steps(write("nonl.py", NEW.rstrip("\n")), stage("nonl.py"))),
    Situation("UTF-8 BOM", steps(write("bom.py", b"\xef\xbb\xbf" + NEW.encode()),
                                 stage("bom.py"))),
    Situation("Latin-1 file", steps(write("latin.py", ("# caf\u00e9\n" + NEW).encode("latin-1")),
                                    stage("latin.py"))),
    Situation("does not parse", steps(write("bad.py", "def f(:\n    pass\n"), stage("bad.py"))),
    Situation("private file", steps(write("secrets/keys.py", NEW), stage("secrets/keys.py"))),
    Situation("space and unicode in the name", steps(write("d\u00e9j\u00e0 vu/my file.py", NEW),
                                                     stage("d\u00e9j\u00e0 vu"))),
    Situation("nested class", steps(write("nest.py", "class A:\n    class B:\n        def m(self):"
                                                     "\n            return 1\n"),
                                    stage("nest.py"))),
    Situation("JavaScript function", steps(append("web/app.js",
                                                  "\nfunction stop(code) {\n  return code;\n}\n"),
                                           stage("web/app.js"))),
    Situation("Go function", steps(append("go/m.go", "\nfunc Two() int { return 2 }\n"),
                                   stage("go/m.go"))),
    Situation("merge without conflict", branch_merge(False)),
    Situation("merge with a resolved conflict", branch_merge(True)),
    Situation("linked worktree", worktree, cwd="../wt"),
    Situation("commit from a subdirectory", steps(write("pkg/deep/mod.py", NEW),
                                                  stage("pkg")), cwd="pkg/deep"),
    Situation("intent to add", steps(write("later.py", NEW), sh("add", "-N", "later.py"),
                                     write("now.py", NEW), stage("now.py"))),
    Situation("comment-only change", steps(append("calc.py", "# a note\n"), stage("calc.py"))),
    Situation("documented function added", steps(append("calc.py", '\n\ndef d():\n    """D."""\n'
                                                                   "    return 0\n"),
                                                 stage("calc.py"))),
    Situation("empty commit", sh("status"), ("--allow-empty",)),
    Situation("pre-commit: new file", steps(write("new.py", NEW), stage("new.py")),
              framework=True),
    Situation("pre-commit: unstaged hunk far",
              staged_then_edited("new.py", FAR_STAGED, FAR_STAGED + "\nY = 9\n"), framework=True),
    Situation("pre-commit: unstaged hunk near", staged_then_edited("new.py", NEW, NEAR),
              framework=True),
    Situation("pre-commit: unstaged append right after",
              staged_then_edited("new.py", NEW, NEW + "\n\ndef b():\n    return 2\n"),
              framework=True),
    Situation("pre-commit: commit -a", append("calc.py", SUB), ("-a",), framework=True),
]  # fmt: skip


NOTHING_TO_WRITE = {
    "new file, unstaged hunk near",  # the doc's place is beside the unstaged lines
    "function added, unstaged edit in it",
    "amend, message only",
    "pure rename",
    "staged file is a symlink in the work tree",
    "Latin-1 file",
    "does not parse",
    "private file",
    "comment-only change",
    "documented function added",
    "empty commit",
    "pre-commit: unstaged hunk near",
    "pre-commit: unstaged append right after",
}


def tree_of(root: Path, env: dict[str, str], spec: str) -> dict[str, bytes]:
    """path -> mode and content of a tree-ish (HEAD) or of the index (`:`)."""
    out: dict[str, bytes] = {}
    if spec == ":":
        listing = run_git(root, env, "ls-files", "-s", "-z").split("\0")
        for entry in filter(None, listing):
            meta, path = entry.split("\t", 1)
            mode, blob, stage_ = meta.split()
            out[f"{path}@{stage_}"] = mode.encode() + b" " + _blob(root, env, blob)
        return out
    if run_git(root, env, "rev-parse", "-q", "--verify", spec, check=False).strip() == "":
        return out
    for entry in filter(None, run_git(root, env, "ls-tree", "-r", "-z", spec).split("\0")):
        meta, path = entry.split("\t", 1)
        mode, _, blob = meta.split()
        out[path] = mode.encode() + b" " + _blob(root, env, blob)
    return out


def _blob(root: Path, env: dict[str, str], blob: str) -> bytes:
    return subprocess.run(["git", "-C", str(root), "cat-file", "blob", blob], env=env,
                          capture_output=True, check=True).stdout  # fmt: skip


def work_tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".assist")]
        for name in filenames:
            if name == ".git":  # a linked worktree's pointer: an absolute path, side-specific
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = b"-> " + os.readlink(path).encode()
            else:
                mode = b"x " if os.access(path, os.X_OK) else b"- "
                out[rel] = mode + path.read_bytes()
    return out


def state(root: Path, env: dict[str, str]) -> dict[str, dict[str, bytes]]:
    return {"HEAD": tree_of(root, env, "HEAD"), "index": tree_of(root, env, ":"),
            "work tree": work_tree(root)}  # fmt: skip


def same_but_docs(mine: dict[str, dict[str, bytes]], shadow: dict[str, dict[str, bytes]]) -> None:
    for part in ("HEAD", "index", "work tree"):
        assert set(mine[part]) == set(shadow[part]), part
        for path, data in mine[part].items():
            assert strip_docs(data) == shadow[part][path], (part, path)


def leftovers(root: Path, env: dict[str, str]) -> list[str]:
    gitdir = Path(run_git(root, env, "rev-parse", "--absolute-git-dir").strip())
    found = [p.name for p in gitdir.glob("*.lock")] + [p.name for p in gitdir.glob("next-index*")]
    if run_git(root, env, "stash", "list").strip():
        found.append("stash entries")
    return found


@pytest.mark.parametrize("situation", SITUATIONS, ids=[s.name for s in SITUATIONS])
def test_the_hook_leaves_what_no_verify_leaves_plus_docs(
    situation: Situation, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    env = git_env(tmp_path, make_gguf)
    env["ASSIST_DOCSTRING_HOOK_FAIL_ON_CHANGE"] = "false"
    roots = {}
    for side in ("hooked", "shadow"):
        root = tmp_path / side / "repo"
        base(root, env)
        if situation.framework:
            use_pre_commit(root, env, tmp_path, install=side == "hooked")  # one hook repository
        situation.setup(root, env)
        roots[side] = root
    hooked, shadow = roots["hooked"], roots["shadow"]
    if not situation.framework:
        done = subprocess.run([sys.executable, "-m", "assistant", "hook", "install"], cwd=hooked,
                              env=env, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
    before = state(hooked, env)

    def commit(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        cwd = (root / situation.cwd).resolve()
        argv = ["git", "commit", "-q", "-m", "change", *situation.args, *extra]
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)

    theirs = commit(shadow, "--no-verify")
    mine = commit(hooked)
    if situation.framework and mine.returncode != 0:
        # pre-commit fails a hook that changed files and stages nothing: the docs are in the
        # work tree only, nothing else moved, and the retry commits what was staged.
        now = state(hooked, env)
        assert now["HEAD"] == before["HEAD"] and now["index"] == before["index"]
        for path, data in now["work tree"].items():
            assert strip_docs(data) == before["work tree"][path], path
        assert now["work tree"] != before["work tree"], mine.stdout + mine.stderr
        mine = commit(hooked)
    assert mine.returncode == theirs.returncode, (mine.stdout + mine.stderr, theirs.stderr)
    wt = situation.cwd == "../wt"
    mine_root, their_root = (hooked.parent / "wt", shadow.parent / "wt") if wt else (hooked, shadow)
    mine_state = state(mine_root, env)
    same_but_docs(mine_state, state(their_root, env))
    assert leftovers(mine_root, env) == []
    # And the hook did document where it should: count the files with doc insertions.
    inserted = {part: sum(len(data) != len(strip_docs(data)) for data in files.values())
                for part, files in mine_state.items()}  # fmt: skip
    where = "work tree" if situation.framework else "HEAD"
    assert bool(inserted[where]) == (situation.name not in NOTHING_TO_WRITE), inserted


def test_the_matrix_is_big_enough() -> None:
    assert len(SITUATIONS) >= 40
    assert shutil.which("git")
