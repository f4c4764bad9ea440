"""File selection on real git repositories and plain directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from assistant.errors import AssistError
from assistant.index.languages import language_for_path
from assistant.repo.files import content_problem, scan
from assistant.repo.privacy import PathRules


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def make_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def test_git_repo_selection(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "r",
        {
            ".gitignore": "build/\n*.log\n",
            "src/app.py": "x = 1\n",
            "src/notes.md": "hi\n",
            "build/out.py": "y = 2\n",
            "debug.log": "log\n",
            ".env": "TOKEN=secret\n",
            ".env.production": "TOKEN=secret\n",
            "deploy/server.pem": "-----BEGIN\n",
            "secrets/db.txt": "pw\n",
            "config/secrets/api.txt": "pw\n",
            "vendor/lib.py": "z = 3\n",
            ".assistignore": "vendor/\n",
        },
    )
    git(root, "add", "src/app.py", ".gitignore")  # tracked; the rest untracked
    files, skips = scan(root, PathRules(root), 1_000_000, language_of=language_for_path)
    paths = {f.path for f in files}
    assert paths == {".gitignore", ".assistignore", "src/app.py", "src/notes.md"}
    reasons = {s.path: s.reason for s in skips}
    for private in (".env", ".env.production", "deploy/server.pem", "secrets/db.txt",
                    "config/secrets/api.txt"):  # fmt: skip
        assert reasons[private].startswith("private"), private
    assert reasons["vendor/lib.py"].startswith("excluded")
    assert "build/out.py" not in reasons  # gitignored files are not even candidates
    assert next(f for f in files if f.path == "src/app.py").language == "python"


def test_walk_outside_git_honours_nested_gitignore(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    for rel, text in {
        ".gitignore": "*.tmp\n",
        "a.py": "1\n",
        "b.tmp": "1\n",
        "sub/.gitignore": "gen/\n",
        "sub/c.py": "1\n",
        "sub/gen/d.py": "1\n",
        "other/gen/e.py": "1\n",
    }.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    files, _ = scan(root, PathRules(root), 1_000_000, language_of=language_for_path)
    assert {f.path for f in files} == {".gitignore", "a.py", "sub/.gitignore", "sub/c.py",
                                       "other/gen/e.py"}  # fmt: skip


def test_symlinks_and_size(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("secret = 1\n")
    root = make_repo(tmp_path / "r", {"ok.py": "x = 1\n", "big.py": "x" * 2000 + "\n"})
    os.symlink(outside, root / "escape.py")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "ok.py", root / "inside_link.py")
    files, skips = scan(root, PathRules(root), 1000, language_of=language_for_path)
    reasons = {s.path: s.reason for s in skips}
    assert reasons["escape.py"] == "symlink that leaves the repository"
    assert reasons["loop_a"].startswith("symlink that loops")
    assert reasons["big.py"].startswith("too large")
    assert {f.path for f in files} == {"ok.py", "inside_link.py"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x7fELF\0\0\0binary", "binary"),
        ("caf\u00e9".encode("latin-1"), "not valid UTF-8"),
        (b"var a=1;" * 1000, "minified"),
        (b"def f():\n    return 1\n", None),
        (b"", None),
    ],
)
def test_content_problems(data: bytes, reason: str | None) -> None:
    problem = content_problem(data, 4000)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(reason)


def test_privacy_check_guards_prompt_paths(tmp_path: Path) -> None:
    rules = PathRules(tmp_path, private=["internal/*.txt"])
    assert rules.check("src/app.py").rel == "src/app.py"
    with pytest.raises(AssistError, match="never sent to a model"):
        rules.check(".env")
    with pytest.raises(AssistError, match="never sent"):
        rules.check("internal/plan.txt")
    with pytest.raises(AssistError, match="outside the repository"):
        rules.check("../elsewhere.py")


def test_data_files_are_skipped_but_text_kinds_are_kept(tmp_path: Path) -> None:
    """Source, docs and config are indexed; test data with unknown extensions is not."""
    from assistant.repo.files import scan
    from assistant.repo.privacy import PathRules

    for name in ("a.py", "notes.md", "conf.yaml", "query.sql", "Makefile", "x.decTest", "t.pck"):
        (tmp_path / name).write_text("hello\n")
    files, skips = scan(tmp_path, PathRules(tmp_path), 1_000_000, language_of=language_for_path)
    assert {f.path for f in files} == {"a.py", "notes.md", "conf.yaml", "query.sql", "Makefile"}
    reasons = {s.path: s.reason for s in skips}
    assert reasons["x.decTest"] == "not source, config or docs (.decTest)"
    files, _ = scan(tmp_path, PathRules(tmp_path), 1_000_000, text_extensions=(".dectest",))
    assert "x.decTest" in {f.path for f in files}


def test_a_link_to_a_private_file_is_private_in_any_letter_case(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "r",
        {"notes/readme.md": "x\n", ".env.local": "TOKEN=1\n", "Secrets/api.txt": "key\n"},
    )
    os.symlink("../.env.local", root / "notes" / "env.txt")  # an innocent name
    os.symlink("Secrets", root / "public")
    files, skips = scan(root, PathRules(root), 1_000_000, language_of=language_for_path)
    assert {f.path for f in files} == {"notes/readme.md"}
    reasons = {s.path: s.reason for s in skips}
    assert reasons["notes/env.txt"].startswith("private")
    assert ".env.local" in reasons["notes/env.txt"]
    assert reasons["Secrets/api.txt"].startswith("private")
    rules = PathRules(root)
    for path in ("public/api.txt", "notes/env.txt", "SECRETS/api.txt"):
        with pytest.raises(AssistError, match="never sent"):
            rules.check(path)
