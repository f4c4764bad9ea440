"""Docstrings: finding, cleaning, rendering and inserting, with real llama.cpp on tiny models.

The tiny models write junk ("Aaaa..."); that is enough to test the mechanics: where a doc goes,
its indentation and quoting, the re-parse refusal, idempotence. The one test that checks the
words is the slow one on the embedded default model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from leftovers import temp_files
from tiny_gguf import CHATML

from assistant.config import ModelSettings
from assistant.docstrings import conventions, edit, generate, render
from assistant.docstrings import run as docstrings
from assistant.docstrings.conventions import Param, Site
from assistant.errors import AssistError
from assistant.index.languages import language_for_path
from assistant.index.symbols import extract_symbols
from assistant.llm.local import LocalModel
from assistant.repo import git as git_diff
from assistant.repo.privacy import PathRules
from assistant.repo.vetted import Permit, grant
from assistant.workspace import Workspace

ASSIST = [sys.executable, "-m", "assistant"]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def fim_model(make_gguf: Callable[..., Path]) -> LocalModel:
    path = make_gguf(family="qwen", metadata=True, favorite="a")
    return LocalModel.load(path, ModelSettings(temperature=0.0))


@pytest.fixture(scope="module")
def plain_chat_gguf(make_gguf: Callable[..., Path]) -> Path:
    """A chat model without FIM tokens: docs come from the chat prompt."""
    return make_gguf(family="none", chat_template=CHATML, favorite="a")


def permit(path: str) -> Permit:
    """The leave a workspace grants to send `path`'s text to a model, without one (these tests
    are about docs, not the privacy rules: tests/test_vetted.py is)."""
    return grant(PathRules(HERE), HERE / path)


def document(model: LocalModel, path: str, text: str, **kw: object) -> generate.FileReport:
    language = language_for_path(path)
    assert language is not None
    return generate.document_text(
        model, path, text, language, max_tokens=8, permit=permit(path), **kw
    )  # type: ignore[arg-type]


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    full.update(env)
    return subprocess.run(
        [*ASSIST, *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=120
    )


def tiny_env(
    isolated_env: dict[str, str], make_gguf: Callable[..., Path], *, max_tokens: int
) -> dict[str, str]:
    """The environment of a CLI run on the tiny FIM model that writes "aaaa", with a doc limit."""
    model = make_gguf(family="qwen", metadata=True, favorite="a")
    return {
        **isolated_env,
        "ASSIST_MODEL": str(model),
        "ASSIST_DOCSTRING_MAX_TOKENS": str(max_tokens),
    }


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "HOME": str(root)}
    env.update({"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=env
    ).stdout


PY = """import os


class Greeter:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def hello(self) -> str:
        return "hi " + self.name


def add(a, b=1):
    def local(x):
        return x

    return a + b
"""


def test_python_docstrings_go_in_the_body_with_its_indentation(fim_model: LocalModel) -> None:
    report = document(fim_model, "a.py", PY)
    assert report.total == 4 and report.documented == 0  # `local` is not counted
    assert [o.status for o in report.outcomes] == ["documented"] * 4
    lines = report.new.split("\n")
    assert lines[4] == '    """Aaaaaaaa."""'
    assert lines[5] == "    def __init__(self, name: str) -> None:"
    assert lines[6] == '        """Aaaaaaaa."""'
    assert lines[11] == '        """Aaaaaaaa."""'  # after the decorated def line
    assert lines[16] == '    """Aaaaaaaa."""'
    assert generate.parses(report.new, "python")
    symbols = generate.documentable(extract_symbols(report.new.encode(), "python"))
    assert all(s.doc == "Aaaaaaaa." for s in symbols)


def test_tabs_and_crlf_are_kept(fim_model: LocalModel) -> None:
    text = "def f(x):\r\n\treturn x\r\n"
    report = document(fim_model, "t.py", text)
    assert report.new == 'def f(x):\r\n\t"""Aaaaaaaa."""\r\n\treturn x\r\n'


CASES = {
    "a.js": ("function add(a, b) {\n  return a + b;\n}\n", "/**\n * Aaaaaaaa.\n */\nfunction"),
    "a.ts": (
        "class A {\n  m(x: number): number { return x; }\n}\n",
        "  /**\n   * Aaaaaaaa.\n   */\n  m(x",
    ),
    "a.go": ("package p\n\nfunc Add(a int) int {\n\treturn a\n}\n", "// Add aaaaaaaa.\nfunc Add"),
    "a.rs": ("#[derive(Debug)]\nstruct S {\n    x: i32,\n}\n", "/// Aaaaaaaa.\n#[derive(Debug)]"),
    "A.java": (
        "class A {\n    @Override\n    public int f(int a) { return a; }\n}\n",
        "    /**\n     * Aaaaaaaa.\n     */\n    @Override",
    ),
    "a.c": ("int add(int a, int *b) {\n    return a + *b;\n}\n", "/**\n * Aaaaaaaa.\n */\nint add"),
    "a.cpp": ("namespace n {\nint f(int a) { return a; }\n}\n", "/**\n * Aaaaaaaa.\n */\nint f"),
    "a.cs": (
        "class A {\n    public int F(int a) { return a; }\n}\n",
        "    /// <summary>\n    /// Aaaaaaaa.\n    /// </summary>\n    public int F",
    ),
    "a.rb": ("def add(a, b)\n  a + b\nend\n", "# Aaaaaaaa.\ndef add"),
    "a.sh": ("greet() {\n  echo hi\n}\n", "# Aaaaaaaa.\ngreet()"),
    "a.php": (
        "<?php\nfunction add($a) { return $a; }\n",
        "<?php\n/**\n * Aaaaaaaa.\n */\nfunction",
    ),
}


@pytest.mark.parametrize("path", sorted(CASES))
def test_each_language_gets_its_convention(fim_model: LocalModel, path: str) -> None:
    text, expected = CASES[path]
    report = document(fim_model, path, text)
    assert report.outcomes and all(o.status == "documented" for o in report.outcomes), report
    assert expected in report.new, report.new
    assert generate.parses(report.new, language_for_path(path) or "")


def test_chat_fallback_for_a_model_without_fim(plain_chat_gguf: Path) -> None:
    model = LocalModel.load(plain_chat_gguf, ModelSettings(temperature=0.0))
    assert model.fim_kind == "emulated"
    report = document(model, "a.py", "def f(x):\n    return x\n")
    assert report.outcomes[0].status == "documented"
    assert report.new.startswith('def f(x):\n    """Aaaa')


def test_a_model_that_writes_only_quotes_fails_cleanly(make_gguf: Callable[..., Path]) -> None:
    model = LocalModel.load(
        make_gguf(family="qwen", metadata=True, favorite='"'), ModelSettings(temperature=0.0)
    )
    report = document(model, "a.py", "def f(x):\n    return x\n")
    assert report.outcomes[0].status == "failed"
    assert report.outcomes[0].reason == "the model wrote no usable text"
    assert not report.changed


def _site(language: str, text: str, name: str, **kw: object) -> tuple[Site, list[str]]:
    tree = generate.parse(text.encode(), language)
    assert tree is not None
    symbol = next(s for s in extract_symbols(text.encode(), language) if s.name == name)
    lines = text.split("\n")
    site = conventions.find_site(tree.root_node, lines, symbol, language, update=False)
    assert isinstance(site, Site)
    return site, lines


JUNK = [
    'Returns x.""" + __import__("os").system("rm -rf /") + """',
    'Ends with a quote"',
    "Ends with a backslash \\",
    "Closes early */ int evil; /*",
    "PHP ?> <?php evil();",
    "\x00control\x1b[31m chars\u2028 here",
    "'''single quotes''' and \"\"\"",
]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize(
    ("path", "text", "name"),
    [
        ("a.py", "def f(x):\n    return x\n", "f"),
        ("a.js", "function f(x) {\n  return x;\n}\n", "f"),
        ("a.c", "int f(int x) {\n    return x;\n}\n", "f"),
        ("a.php", "<?php\nfunction f($x) { return $x; }\n", "f"),
        ("a.rs", "fn f(x: i32) -> i32 {\n    x\n}\n", "f"),
        ("a.go", "package p\n\nfunc f(x int) int {\n\treturn x\n}\n", "f"),
    ],
)
def test_junk_from_a_model_cannot_break_the_file(
    path: str, text: str, name: str, junk: str
) -> None:
    language = language_for_path(path)
    assert language is not None
    site, lines = _site(language, text, name)
    parts = render.parse_output(junk + "\n" + junk, site)
    rendered = render.render(parts, site)
    new = "\n".join(render.insert(lines, site, rendered, "\n"))
    assert generate.parses(new, language), new
    if language == "python":
        import ast

        tree = ast.parse(new)
        assert len(tree.body) == 1  # the junk stayed inside the docstring
        assert ast.get_docstring(tree.body[0]) is not None  # type: ignore[arg-type]


def test_java_unicode_escapes_cannot_close_the_javadoc() -> None:
    # javac translates \u002a before lexing, so `\u002a/` is `*/` even inside a comment;
    # tree-sitter does not, so the re-parse check alone would let it through.
    text = "class A {\n    int f(int x) {\n        return x;\n    }\n}\n"
    site, _ = _site("java", text, "f")
    for junk in ["Ends \\u002a/ here", "Ends \\\\u002a\\u002f int x; /* here", "\\uuu002a/"]:
        rendered = render.render(render.parse_output(junk, site), site)
        comment = "\n".join(rendered)
        assert "\\u" not in comment and "*/" not in comment.removesuffix("*/"), comment


def test_the_reparse_check_refuses_a_broken_result() -> None:
    site, lines = _site("python", "def f(x):\n    return x\n", "f")
    broken = "\n".join(render.insert(lines, site, ['    """never closed'], "\n"))
    assert not generate.parses(broken, "python")
    site, lines = _site("javascript", "function f(x) {\n  return x;\n}\n", "f")
    broken = "\n".join(render.insert(lines, site, ["/** never closed"], "\n"))
    assert not generate.parses(broken, "javascript")


def test_a_file_that_does_not_parse_is_left_alone(fim_model: LocalModel) -> None:
    text = "def f(x):\n    return x\n\ndef g(:\n    pass\n"
    report = document(fim_model, "bad.py", text)
    assert not report.changed
    assert {o.status for o in report.outcomes} == {"skipped"}
    assert "does not parse" in report.outcomes[0].reason


MODEL_TEXT = (
    "add two numbers\n\nArgs:\n    a (int): the first\n    b: the second\nReturns:\n    the sum"
)


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (
            "google",
            '    """Add two numbers.\n\n    Args:\n        a: The first.\n'
            '        b: The second.\n\n    Returns:\n        The sum.\n    """',
        ),
        (
            "numpy",
            '    """Add two numbers.\n\n    Parameters\n    ----------\n'
            "    a : int\n        The first.\n    b\n        The second.\n\n"
            "    Returns\n    -------\n    int\n        The sum.\n"
            '    """',
        ),
        (
            "rest",
            '    """Add two numbers.\n\n    :param a: The first.\n    :param b: The second.\n'
            '    :returns: The sum.\n    """',
        ),
    ],
)
def test_python_styles(style: conventions.Style, expected: str) -> None:
    site, _ = _site("python", "def add(a: int, b) -> int:\n    return a + b\n", "add")
    assert site.params == (Param("a", "int"), Param("b", ""))
    parts = render.parse_output(MODEL_TEXT, site)
    assert "\n".join(render.render(parts, site, style)) == expected


@pytest.mark.parametrize(
    "answer",
    [
        "Add two numbers.\n@param a the first\n@param {number} b - the second\n@returns the sum",
        "Add two numbers.\n:param a: the first\n:param b: the second\n:returns: the sum",
        "Add two numbers.\n\nParameters\n----------\na : int\n    the first\nb : int\n"
        "    the second",
        "/**\n * Add two numbers.\n * a: the first\n * b: the second\n */",
    ],
)
def test_parse_output_reads_the_common_styles(answer: str) -> None:
    site, _ = _site("javascript", "function add(a, b) {\n  return a + b;\n}\n", "add")
    parts = render.parse_output(answer, site)
    assert parts.summary == "Add two numbers."
    assert dict(parts.params) == {"a": "The first.", "b": "The second."}


def test_jsdoc_with_params() -> None:
    site, _ = _site(
        "typescript", "function add(a: number, b: number): number {\n  return a;\n}\n", "add"
    )
    parts = render.parse_output("adds\na: first\nb: second\nreturns: sum", site)
    assert render.render(parts, site) == [
        "/**",
        " * Adds.",
        " *",
        " * @param a - First.",
        " * @param b - Second.",
        " * @returns Sum.",
        " */",
    ]


def test_second_run_changes_nothing_and_update_rewrites(fim_model: LocalModel) -> None:
    first = document(fim_model, "a.py", PY)
    again = document(fim_model, "a.py", first.new)
    assert not again.targets and not again.changed and again.documented == 4
    old = 'def f(x):\n    """Old words."""\n    return x\n'
    updated = document(fim_model, "a.py", old, update=True)
    assert updated.new == 'def f(x):\n    """Aaaaaaaa."""\n    return x\n'
    js = "/** old */\nfunction f(x) {\n  return x;\n}\n"
    assert document(fim_model, "a.js", js, update=True).new.startswith("/**\n * Aaaaaaaa.\n */\nf")


def test_detect_style(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        'def f(a):\n    """Do.\n\n    Parameters\n    ----------\n    a : int\n    """\n'
    )
    git(tmp_path, "init", "-q")
    assert docstrings.detect_style(tmp_path) == "numpy"
    (tmp_path / "r.py").write_text(
        'def g(a):\n    """Do.\n\n    :param a: x\n    :returns: y\n    """\n'
    )
    docstrings._style_counts.cache_clear()
    assert docstrings.detect_style(tmp_path) == "rest"


def test_diff_lines() -> None:
    diff = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -3,0 +4,2 @@\n+a\n+b\n"
        "@@ -10 +12,0 @@\n-gone\n"
    )
    assert git_diff.diff_lines(diff) == {"x.py": {4, 5, 12, 13}}
    names = '+++ b/my file.py\t\n@@ -0,0 +1 @@\n+++ "b/\\303\\251 \\"q\\".py"\n@@ -0,0 +2 @@\n'
    assert git_diff.diff_lines(names) == {"my file.py": {1}, 'é "q".py': {2}}


@pytest.mark.parametrize("name", ["my file.py", "é.py"])
def test_changed_finds_names_with_spaces_and_non_ascii(
    tmp_path: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path], name: str
) -> None:
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q")
    (root / name).write_text("def one():\n    return 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    (root / name).write_text("def one():\n    return 1\n\n\ndef two():\n    return 2\n")
    env = {**isolated_env, "ASSIST_MODEL": str(make_gguf(family="qwen", favorite="a"))}
    result = cli("docstring", "--changed", "--write", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    assert [o["name"] for o in json.loads(result.stdout)["outcomes"]] == ["two"]


# -- the command line on a real repository ------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "src").mkdir()
    (root / "src" / "calc.py").write_text(
        "def add(a, b):\n    return a + b\n\n\n"
        'def sub(a, b):\n    """Subtract."""\n    return a - b\n'
    )
    (root / "src" / "util.js").write_text("function id(x) {\n  return x;\n}\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_check_reports_coverage_and_writes_nothing(
    repo: Path, isolated_env: dict[str, str]
) -> None:
    before = (repo / "src" / "calc.py").read_text()
    result = cli("docstring", "src", "--check", cwd=repo, env=isolated_env)
    assert result.returncode == 1, result.stderr
    assert "src/calc.py:1: function add has no doc" in result.stdout
    assert "coverage 33.3% (1/3 documented)" in result.stdout
    result = cli(
        "docstring", "src", "--check", "--fail-under", "30", "--json", cwd=repo, env=isolated_env
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["coverage"] == {"documented": 1, "total": 3, "percent": 33.3}
    assert {m["name"] for m in data["missing"]} == {"add", "id"}
    assert (repo / "src" / "calc.py").read_text() == before


def test_diff_then_write_then_nothing_left(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    env = tiny_env(isolated_env, make_gguf, max_tokens=8)
    calc = repo / "src" / "calc.py"
    calc.chmod(0o755)
    before = calc.read_text()
    diff = cli("docstring", "src/calc.py", cwd=repo, env=env)
    assert diff.returncode == 0, diff.stderr
    assert '+    """Aaaaaaaa."""' in diff.stdout and diff.stdout.startswith("--- a/src/calc.py")
    assert calc.read_text() == before
    wrote = cli("docstring", "--write", "--json", cwd=repo, env=env)
    assert wrote.returncode == 0, wrote.stderr
    data = json.loads(wrote.stdout)
    assert data["coverage"]["percent"] == 100.0
    assert sorted(o["name"] for o in data["outcomes"] if o["status"] == "documented") == [
        "add",
        "id",
    ]
    assert calc.read_text().startswith('def add(a, b):\n    """Aaaaaaaa."""\n')
    assert calc.stat().st_mode & 0o777 == 0o755
    assert temp_files(calc.parent) == []
    again = cli("docstring", "--write", "--json", cwd=repo, env=env)
    assert json.loads(again.stdout)["outcomes"] == []
    assert cli("docstring", "--check", cwd=repo, env=env).returncode == 0


def test_changed_limits_the_work_to_changed_symbols(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    env = {
        **isolated_env,
        "ASSIST_MODEL": str(make_gguf(family="qwen", metadata=True, favorite="a")),
    }
    calc = repo / "src" / "calc.py"
    calc.write_text(calc.read_text() + "\n\ndef mul(a, b):\n    return a * b\n")
    result = cli("docstring", "--changed", "--write", "--json", cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    done = [o["name"] for o in json.loads(result.stdout)["outcomes"]]
    assert done == ["mul"]
    assert calc.read_text().startswith("def add(a, b):\n    return")


def test_private_files_never_reach_the_model(repo: Path, isolated_env: dict[str, str]) -> None:
    (repo / ".env.py").write_text("def secret():\n    return 1\n")
    ws = Workspace.open(repo, env=isolated_env)
    with pytest.raises(AssistError, match="never sent"):
        edit.docstring_edit(ws, str(repo / ".env.py"), "def f():\n    pass\n", 1)


def test_docstring_edit_for_the_language_server(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    ws = Workspace.open(repo, env=tiny_env(isolated_env, make_gguf, max_tokens=8))
    text = "import os\n\nclass A:\n    def m(self, x):\n        return x\n"
    found = edit.docstring_edit(ws, "src/new.py", text, 5)  # unsaved: no such file on disk
    assert found is not None and (found.line, found.character, found.end_line) == (4, 0, 4)
    assert found.end_character == 0
    # The tiny model writes "a" until the token limit, in the method's body.
    assert found.new_text == '        """Aaaaaaaa."""\n'
    # Until a limit of 160 tokens, it is a 160-letter loop: refused, so no edit is offered.
    looping = Workspace.open(repo, env=tiny_env(isolated_env, make_gguf, max_tokens=160))
    with pytest.raises(AssistError, match=r"no docstring for A\.m: generated doc refused: it "):
        edit.docstring_edit(looping, "src/new.py", text, 5)
    class_edit = edit.docstring_edit(ws, "src/new.py", text, 3)
    assert class_edit is not None and class_edit.line == 3
    assert class_edit.new_text.startswith('    """')
    documented = 'def f():\n    """Done."""\n    return 1\n'
    assert edit.docstring_edit(ws, "src/new.py", documented, 1) is None
    assert edit.docstring_edit(ws, "src/new.py", "x = 1\n", 1) is None


@pytest.mark.slow
def test_default_model_leaves_a_valid_file(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    from assistant.llm.source import embedded_model_path

    # What SmolLM2 writes differs by CPU; its quality is a figure in bench/docstring_speed.py.
    # Whatever it writes, the file stays valid and every symbol gets an outcome.
    model = LocalModel.load(embedded_model_path(), ModelSettings(temperature=0.0))
    text = "def area(width, height):\n    return width * height\n"
    report = generate.document_text(
        model, "geometry.py", text, "python", max_tokens=60, permit=permit("geometry.py")
    )
    [outcome] = report.outcomes
    assert outcome.status in ("documented", "failed"), outcome
    assert generate.parses(report.new, "python")
    if outcome.status == "documented":
        assert extract_symbols(report.new.encode(), "python")[0].doc


def test_ctrl_c_leaves_every_file_whole(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    """Ctrl+C after the first file is written. A run that finished before the signal landed
    (a loaded machine can delay the test's own polling) is not an interruption: it is redone
    with more files, so the check holds whatever the machine's speed."""
    import signal

    env = tiny_env(isolated_env, make_gguf, max_tokens=120)
    full = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    for files in (30, 120, 480, 1920):
        originals = {}
        for i in range(files):
            path = repo / "src" / f"m{i:04}.py"
            path.write_text("".join(f"def f{j}(x):\n    return x\n\n\n" for j in range(4)))
            originals[path] = path.read_text()
        proc = subprocess.Popen(
            [*ASSIST, "docstring", "--write", "src"],
            cwd=repo, env={**full, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and all(p.read_text() == t for p, t in originals.items()):
            time.sleep(0.02)  # polling for the first written file, bounded by the deadline
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # it finished first: try again, bigger
            for path in originals:
                path.unlink()
            continue
        assert proc.returncode == 130, err
        assert "interrupted" in err
        written = [p for p, t in originals.items() if p.read_text() != t]
        assert written and len(written) < len(originals)
        for path in written:
            text = path.read_text()
            assert generate.parses(text, "python") and text.count('"""') == 8  # whole
        assert temp_files(repo / "src") == []
        return
    raise AssertionError("every run finished before Ctrl+C reached it")


def test_a_file_saved_during_the_run_is_not_overwritten(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    env = {**isolated_env, "ASSIST_MODEL": str(make_gguf(family="qwen", favorite="a"))}
    env["ASSIST_DOCSTRING_MAX_TOKENS"] = "8"
    ws = Workspace.open(repo, env=env)
    calc = repo / "src" / "calc.py"
    saved = calc.read_text() + "\n\ndef saved_meanwhile():\n    return 0\n"

    def save(step: docstrings.Step) -> None:
        calc.write_text(saved)  # the user saves in the editor while the model is busy

    [report] = docstrings.run(ws, ["src/calc.py"], generate_docs=True, write=True, on_step=save)
    assert calc.read_text() == saved
    assert not report.written and not report.changed
    assert [(o.name, o.status, o.reason) for o in report.outcomes] == [
        ("add", "skipped", "the file changed during the run; not written")
    ]
    assert temp_files(calc.parent) == []


def test_diff_of_a_file_without_a_final_newline_applies_with_git(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    env = tiny_env(isolated_env, make_gguf, max_tokens=8)
    last = repo / "src" / "last.py"
    last.write_text("def last(a):\n    return a")  # no newline at the end
    (repo / "src" / "next.py").write_text("def after(b):\n    return b\n")
    diff = cli("docstring", "--diff", "src/last.py", "src/next.py", cwd=repo, env=env)
    assert diff.returncode == 0, diff.stderr
    assert "\\ No newline at end of file\n--- a/src/next.py" in diff.stdout
    patch = repo / "docs.patch"
    patch.write_text(diff.stdout)
    applied = subprocess.run(["git", "apply", str(patch)], cwd=repo, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    assert last.read_text().startswith('def last(a):\n    """Aaaaaaaa."""\n')
    assert last.read_text().endswith("return a")  # still without a final newline


def test_a_bom_file_is_documented_and_one_crlf_line_does_not_make_every_line_crlf(
    repo: Path, isolated_env: dict[str, str], make_gguf: Callable[..., Path]
) -> None:
    env = tiny_env(isolated_env, make_gguf, max_tokens=8)
    bom = repo / "src" / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbfdef with_bom(a):\n    return a\n")
    mixed = repo / "src" / "mixed.py"
    mixed.write_bytes(b"X = 1\r\n\n\ndef lf_mostly(a):\n    return a\n")
    wrote = cli("docstring", "--write", "src/bom.py", "src/mixed.py", cwd=repo, env=env)
    assert wrote.returncode == 0, wrote.stderr
    assert bom.read_bytes() == (
        b'\xef\xbb\xbfdef with_bom(a):\n    """Aaaaaaaa."""\n    return a\n'
    )  # documented, and the BOM kept
    assert mixed.read_bytes() == (
        b'X = 1\r\n\n\ndef lf_mostly(a):\n    """Aaaaaaaa."""\n    return a\n'
    )
    # stderr is a pipe here: one line per file, with counts, so a CI log shows the run moving.
    lines = [ln for ln in wrote.stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == 2, wrote.stderr
    assert lines[0].startswith("[1] src/bom.py: 1 documented, 0 skipped, 0 failed (")
    assert lines[1].startswith("[2] src/mixed.py: 1 documented")


def test_a_doc_block_with_a_blank_line_below_counts_as_a_doc() -> None:
    # express's lib/ style: the JSDoc block, a blank line, then the assignment.
    source = (
        "/**\n * Send a response.\n *\n * @param {string} body\n */\n\n"
        "res.send = function send(body) {\n  return body;\n};\n\n"
        "/**\n * Set the status.\n */\n\nres.status = function status(code) {\n  return code;\n};\n"
    )
    report = generate.plan("lib/response.js", source, "javascript")
    assert (report.total, report.documented, report.targets) == (2, 2, [])


def test_an_empty_docstring_is_replaced_not_left_above(fim_model: LocalModel) -> None:
    text = 'def f():\n    """"""\n    return 1\n'
    report = document(fim_model, "m.py", text)
    assert report.changed, report.outcomes
    assert '""""""' not in report.new
    assert report.new.count('"""') == 2
    assert report.new.startswith('def f():\n    """') and report.new.endswith("    return 1\n")


def test_a_class_inside_a_function_and_its_methods_are_local() -> None:
    source = (
        "def outer():\n    class Inner:\n        def m(self):\n            return 1\n"
        "    return Inner\n\n\nclass Top:\n    def method(self):\n        return 2\n"
    )
    report = generate.plan("m.py", source, "python")
    assert [s.qualified_name for s in report.targets] == ["outer", "Top", "Top.method"]


def test_express_methods_count_and_their_callbacks_do_not() -> None:
    source = (
        "res.send = function send(body) {\n  app.use(function handler(req) { return req; });\n"
        "  const inner = () => 1;\n  return body;\n};\n\n"
        "exports.json = function json(obj) {\n  return obj;\n};\n"
    )
    report = generate.plan("lib/response.js", source, "javascript")
    assert [s.qualified_name for s in report.targets] == ["res.send", "json"]
