"""The agent's tools on real git repositories: confinement, privacy, edits, patches, commands."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from assistant.agent.calls import ToolCall
from assistant.agent.commands import run_command
from assistant.agent.confine import ToolError, confine, sensitive_reason
from assistant.agent.patches import (
    PatchError,
    apply_hunks,
    parse_unified,
    replace_once,
    unified_diff,
)
from assistant.agent.toolbox import Toolbox
from assistant.errors import AssistError
from assistant.workspace import Workspace


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def ws(tmp_path: Path, isolated_env: dict[str, str]) -> Workspace:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "src" / "app.py").write_text(
        "def greet(name):\n    return 'hello ' + name\n\n\ndef main():\n    print(greet('x'))\n"
    )
    (root / "README.md").write_text("# demo\n")
    (root / ".env").write_text("API_KEY=super-secret-value\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "token.txt").write_text("secret token\n")
    (root / ".assistignore").write_text("generated/\n")
    (root / "generated").mkdir()
    (root / "generated" / "big.py").write_text("EXCLUDED = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("outside data\n")
    (tmp_path / "repo-evil").mkdir()
    (tmp_path / "repo-evil" / "x.txt").write_text("sibling with a common prefix\n")
    return Workspace.open(root, env=isolated_env)


def tools(ws: Workspace, limit: int = 8000, timeout: float = 10.0) -> Toolbox:
    return Toolbox(ws, output_limit=limit, command_timeout=timeout)


def run(tb: Toolbox, tool: str, **args: str | int) -> str:
    action = tb.prepare(ToolCall(tool, args))
    return action.run(threading.Event())


# -- confinement ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../outside/victim.txt", "src/../../outside/victim.txt", "../repo-evil/x.txt", "/etc/passwd"],
)
def test_paths_outside_the_workspace_are_refused(ws: Workspace, path: str) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        confine(ws, path)
    for tool, args in [
        ("read_file", {"path": path, "start": 0, "end": 0}),
        ("edit_file", {"path": path, "search": "outside", "replace": "pwned"}),
        ("create_file", {"path": path, "content": "pwned"}),
        ("list_files", {"path": path}),
        ("grep", {"pattern": "data", "path": path}),
    ]:
        with pytest.raises(ToolError, match="outside the workspace"):
            tools(ws).prepare(ToolCall(tool, args))  # type: ignore[arg-type]
    assert (ws.root.parent / "outside" / "victim.txt").read_text() == "outside data\n"


def test_absolute_paths_inside_are_fine(ws: Workspace) -> None:
    place = confine(ws, str(ws.root / "src" / "app.py"))
    assert place.rel == "src/app.py" and place.real == (ws.root / "src" / "app.py").resolve()


def test_symlink_escapes_are_refused(ws: Workspace) -> None:
    outside = ws.root.parent / "outside"
    os.symlink(outside / "victim.txt", ws.root / "innocent.txt")
    os.symlink(outside, ws.root / "linkdir")
    tb = tools(ws)
    for path in ("innocent.txt", "linkdir/victim.txt", "linkdir/new.txt"):
        with pytest.raises(ToolError, match="outside the workspace"):
            confine(ws, path)
    with pytest.raises(ToolError, match="outside"):
        tb.prepare(ToolCall("create_file", {"path": "linkdir/new.txt", "content": "x"}))
    # Listings and searches skip links that lead out, instead of following them.
    assert "victim" not in run(tb, "list_files", path=".")
    assert run(tb, "grep", pattern="outside data", path=".") == "(no matches)"
    assert not (outside / "new.txt").exists()


def test_private_and_excluded_files_never_reach_a_prompt(ws: Workspace) -> None:
    os.symlink(".env", ws.root / "config.txt")  # an innocent name for a private file
    tb = tools(ws)
    for path in (".env", "secrets/token.txt", "secrets", "generated/big.py", "config.txt",
                 ".git/config", "./src/../.env"):  # fmt: skip
        with pytest.raises(ToolError, match="not available to the agent"):
            confine(ws, path)
    listing = run(tb, "list_files", path=".")
    assert "src/app.py" in listing and ".env" not in listing and "secrets" not in listing
    assert "generated" not in listing and "config.txt" not in listing
    found = run(tb, "grep", pattern="secret|EXCLUDED", path=".")
    assert "super-secret-value" not in found and "EXCLUDED" not in found
    symbol = run(tb, "find_symbol", name="API_KEY")
    assert "super-secret" not in symbol
    with pytest.raises(ToolError, match="not available"):
        tb.prepare(ToolCall("edit_file", {"path": ".env", "search": "API", "replace": "X"}))
    with pytest.raises(ToolError, match="not available"):
        tb.prepare(ToolCall("create_file", {"path": ".git/hooks/pre-commit", "content": "x"}))
    patch = unified_diff("API_KEY=super-secret-value\n", "API_KEY=stolen\n", ".env")
    with pytest.raises(ToolError, match="not available"):
        tb.prepare(ToolCall("apply_patch", {"diff": patch}))


def test_letter_case_cannot_slip_past_the_walls(ws: Workspace) -> None:
    # On a case-insensitive filesystem (APFS, NTFS) `.GIT/hooks/pre-commit` *is* the hook and
    # `.ENV` *is* `.env`; the rules match in any case everywhere (stricter on this filesystem).
    for path in (".GIT/hooks/pre-commit", "sub/.Git/config", ".Assist/x"):  # in any case
        with pytest.raises(ToolError, match="version-control or assist"):
            confine(ws, path)
    for path in (".ENV", "Secrets/token.txt", "SECRETS/new.txt", "Generated/big.py", "KEY.PEM"):
        with pytest.raises(ToolError, match="not available to the agent"):
            confine(ws, path)
    assert confine(ws, "SRC/App.py").rel == "SRC/App.py"
    for rel in ("PyProject.toml", ".VSCode/tasks.json", "MAKEFILE", ".Husky/pre-commit",
                "sub/CONFTEST.PY", ".GitHub/Workflows/ci.yml", "Cargo.TOML"):  # fmt: skip
        assert "run commands later" in sensitive_reason(rel), rel


# -- reading tools -------------------------------------------------------------------------------


def test_read_file_with_line_ranges(ws: Workspace) -> None:
    tb = tools(ws)
    text = run(tb, "read_file", path="src/app.py", start=5, end=6)
    assert "lines 5-6 of 6" in text
    assert "    5  def main():" in text and "greet(name)" not in text.split("\n", 1)[1]
    assert "    1  def greet(name):" in run(tb, "read_file", path="src/app.py", start=0, end=0)
    with pytest.raises(ToolError, match="not in a 6-line file"):
        tb.prepare(ToolCall("read_file", {"path": "src/app.py", "start": 40, "end": 0}))
    with pytest.raises(ToolError, match="no such file"):
        tb.prepare(ToolCall("read_file", {"path": "nope.py", "start": 0, "end": 0}))


def test_output_is_capped(ws: Workspace) -> None:
    (ws.root / "long.txt").write_text("line of text\n" * 2000)
    text = run(tools(ws, limit=500), "read_file", path="long.txt", start=0, end=0)
    assert len(text) < 600 and "cut at 500 characters" in text


def test_grep_and_find_symbol(ws: Workspace) -> None:
    tb = tools(ws)
    assert run(tb, "grep", pattern=r"def \w+\(", path="src") == (
        "src/app.py:1: def greet(name):\nsrc/app.py:5: def main():"
    )
    with pytest.raises(ToolError, match="bad regular expression"):
        tb.prepare(ToolCall("grep", {"pattern": "(", "path": "."}))
    found = run(tb, "find_symbol", name="greet")
    definitions, references = found.split("references:")
    assert "src/app.py:1-2 function greet" in definitions
    assert "src/app.py:6: print(greet('x'))" in references


def test_search_uses_the_index(ws: Workspace) -> None:
    tb = tools(ws)
    with pytest.raises(ToolError, match="no index"):
        tb.prepare(ToolCall("search", {"query": "greet"}))
    for _ in ws.index(vectors=False):
        pass
    text = run(tb, "search", query="greet")
    assert "src/app.py:1-2 function greet" in text and ".env" not in text


# -- edits ---------------------------------------------------------------------------------------


def test_edit_file_shows_the_diff_and_writes_only_when_run(ws: Workspace) -> None:
    tb = tools(ws)
    path = ws.root / "src" / "app.py"
    path.chmod(0o750)
    action = tb.prepare(
        ToolCall("edit_file", {"path": "src/app.py", "search": "'hello '", "replace": "'hi '"})
    )
    assert action.request is not None and action.request.kind == "edit"
    assert "-    return 'hello ' + name\n+    return 'hi ' + name\n" in action.request.detail
    assert action.request.summary == "edit src/app.py" and not action.request.sensitive
    assert "hello" in path.read_text()  # nothing written before approval
    assert "+1 -1" in action.run(threading.Event())
    assert "return 'hi ' + name" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o750


def test_edit_errors_lose_nothing(ws: Workspace) -> None:
    tb = tools(ws)
    before = (ws.root / "src" / "app.py").read_bytes()
    with pytest.raises(PatchError, match="not in the file"):
        tb.prepare(ToolCall("edit_file", {"path": "src/app.py", "search": "nope", "replace": ""}))
    with pytest.raises(PatchError, match="occurs 2 times"):
        tb.prepare(ToolCall("edit_file", {"path": "src/app.py", "search": "def ", "replace": ""}))
    with pytest.raises(ToolError, match="already exists"):
        tb.prepare(ToolCall("create_file", {"path": "src/app.py", "content": ""}))
    action = tb.prepare(
        ToolCall("edit_file", {"path": "src/app.py", "search": "main", "replace": "run"})
    )
    (ws.root / "src" / "app.py").write_text("# the user changed it meanwhile\n")
    with pytest.raises(ToolError, match="changed since"):
        action.run(threading.Event())
    assert (ws.root / "src" / "app.py").read_text() == "# the user changed it meanwhile\n"
    (ws.root / "src" / "app.py").write_bytes(before)


def test_create_file_and_apply_patch(ws: Workspace) -> None:
    tb = tools(ws)
    action = tb.prepare(ToolCall("create_file", {"path": "pkg/new.py", "content": "X = 1\n"}))
    assert action.request is not None and "+++ b/pkg/new.py" in action.request.detail
    action.run(threading.Event())
    assert (ws.root / "pkg" / "new.py").read_text() == "X = 1\n"
    diff = (
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -4,3 +4,3 @@\n \n def main():\n"
        "-    print(greet('x'))\n+    print(greet('world'))\n"
        "--- a/README.md\n+++ /dev/null\n@@ -1 +0,0 @@\n-# demo\n"
    )
    action = tb.prepare(ToolCall("apply_patch", {"diff": diff}))
    assert action.request is not None
    assert action.request.summary == "edit src/app.py, delete README.md"
    action.run(threading.Event())
    assert "greet('world')" in (ws.root / "src" / "app.py").read_text()
    assert not (ws.root / "README.md").exists()


def test_patches_are_placed_by_content_not_line_numbers() -> None:
    old = "a\nb\nc\nd\ne\n"
    wrong_numbers = "--- a/f\n+++ b/f\n@@ -40,3 +40,3 @@\n c\n-d\n+D\n e\n"
    assert apply_hunks(old, parse_unified(wrong_numbers)[0].hunks) == "a\nb\nc\nD\ne\n"
    with pytest.raises(PatchError, match="does not match"):
        apply_hunks(old, parse_unified("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-zzz\n+y\n")[0].hunks)
    with pytest.raises(PatchError, match="no '--- a/path'"):
        parse_unified("just some text")
    assert replace_once("x\r\ny\r\n", "x\ny", "z\nw") == "z\r\nw\r\n"


def test_sensitive_writes_carry_a_warning(ws: Workspace) -> None:
    for rel in ("pyproject.toml", "sub/Makefile", ".vscode/tasks.json", ".pre-commit-config.yaml",
                ".husky/pre-commit", ".github/workflows/ci.yml", "tests/conftest.py"):  # fmt: skip
        assert "run commands later" in sensitive_reason(rel), rel
    assert sensitive_reason("src/app.py") == ""
    # Build files that editors and build tools run by themselves: one of each family.
    for rel in ("build.rs", "crates/x/Cargo.toml", "CMakeLists.txt", "cmake/deps.cmake",
                "build.gradle.kts", "settings.gradle", "gradle.properties", "gradlew.bat",
                "Directory.Build.props", "Directory.Build.targets", "src/App/App.csproj",
                "Gemfile", "lefthook.yml", ".lefthook.yml", ".lintstagedrc.json",
                "vite.config.ts", "pom.xml", "meson.build", "BUILD.bazel", "flake.nix",
                "package.json", "setup.py", "conftest.py", "noxfile.py", "tox.ini", ".envrc",
                "Makefile", "justfile", ".github/workflows/release.yml"):  # fmt: skip
        assert "run commands later" in sensitive_reason(rel), rel
    for rel in ("src/build.py", "docs/Cargo.md", "cmake.txt", "gradle.md", "README.md"):
        assert sensitive_reason(rel) == "", rel
    action = tools(ws).prepare(
        ToolCall("create_file", {"path": ".vscode/tasks.json", "content": "{}\n"})
    )
    assert action.request is not None and action.request.sensitive
    assert ".vscode/tasks.json" in action.request.warning


# -- commands ------------------------------------------------------------------------------------


def test_commands_run_in_the_root_as_the_exact_string(ws: Workspace) -> None:
    command = "pwd; echo `echo nested` $(echo sub); echo err >&2; exit 3"
    action = tools(ws).prepare(ToolCall("run_command", {"command": command}))
    assert action.request is not None and action.request.detail == command
    result = action.run(threading.Event())
    assert result.splitlines() == ["exit code 3", str(ws.root.resolve()), "nested sub", "err"]


def test_commands_time_out_and_are_capped(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run_command("sleep 30 & sleep 30", tmp_path, timeout=0.5, limit=100)
    assert result.timed_out and result.exit_code is None and time.monotonic() - start < 10
    assert "timeout" in result.report()
    noisy = run_command("yes | head -c 200000", tmp_path, timeout=10, limit=100)
    assert noisy.exit_code == 0 and len(noisy.output) < 200
    assert noisy.omitted_bytes > 199000 and "omitted" in noisy.report()


def test_the_stop_key_kills_a_running_command(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = run_command("sleep 30", tmp_path, timeout=60, limit=100, cancel=cancel)
    assert result.cancelled and result.seconds < 10


def test_unknown_tool_is_an_error(ws: Workspace) -> None:
    with pytest.raises(AssistError, match="unknown tool"):
        tools(ws).prepare(ToolCall("format_disk", {}))


def test_links_and_letter_case_cannot_hide_an_always_ask_write(ws: Workspace) -> None:
    """A directory link (`.vscode -> vsc`) or a link into a tool's folder is judged by every
    name it goes by, so `--yes` never writes a file that tools run without asking."""
    (ws.root / "vsc").mkdir()
    os.symlink("vsc", ws.root / ".vscode")
    (ws.root / ".github").mkdir()
    (ws.root / "wf").mkdir()
    os.symlink("../wf", ws.root / ".github" / "workflows")
    (ws.root / ".GitLab").mkdir()
    os.symlink(".github/workflows", ws.root / "cfg")
    tb = tools(ws)
    for path in (".vscode/tasks.json", ".github/workflows/ci.yml", "cfg/ci.yml",
                 ".GitLab/ci/build.yml"):  # fmt: skip
        action = tb.prepare(ToolCall("create_file", {"path": path, "content": "x: 1\n"}))
        assert action.request is not None and action.request.sensitive, path
    action = tb.prepare(ToolCall("create_file", {"path": "vsc2.txt", "content": "x\n"}))
    assert action.request is not None and not action.request.sensitive


@pytest.mark.parametrize(
    "rel",
    [".pylintrc", ".pdbrc", "Gruntfile.js", "gulpfile.js", ".circleci/config.yml", ".travis.yml",
     "Jenkinsfile", "azure-pipelines.yml", ".devcontainer.json", "app.code-workspace",
     "mise.toml", ".pnpmfile.cjs", "composer.json", "docs/conf.py", "tasks.py", ".nvim.lua",
     ".zed/tasks.json", "mypy.ini", "Dockerfile", "Vagrantfile", ".gitlab/ci/test.yml",
     "BUILD", "pkg/BUILD.bazel"],
)  # fmt: skip
def test_files_that_tools_run_by_themselves_are_always_asked(rel: str) -> None:
    assert "run commands later" in sensitive_reason(rel)


@pytest.mark.parametrize(
    "rel", ["build/output.txt", "Build/lib/x.py", "src/builder.py", "docs/index.md", "tasks/a.py"]
)
def test_ordinary_folders_are_not_always_asked(rel: str) -> None:
    assert sensitive_reason(rel) == ""


def test_a_catastrophic_pattern_is_stopped_not_run_for_ever(ws: Workspace) -> None:
    from assistant.agent.toolbox import bounded_grep

    (ws.root / "src" / "long.txt").write_text("a" * 35 + "!\n")
    # `(a+)+$` ran over 30 s in Python's re; the regex engine answers it at once.
    found = run(tools(ws), "grep", pattern="(a+)+$", path="src")
    assert found == "(no matches)"
    # One that backtracks for ever in any engine is cut at the time limit.
    lines = [("src/long.txt", "a" * 35 + "!")]
    stopped = bounded_grep("(a|aa)+c", lines, limit=1000, cancel=threading.Event(), seconds=0.5)
    assert stopped == ["[grep stopped after 0.5 s: simplify the pattern]"]
    stop = threading.Event()
    stop.set()  # the Stop key
    action = tools(ws).prepare(ToolCall("grep", {"pattern": "a", "path": "src"}))
    assert action.run(stop) == "[stopped]"
