"""Text reaches a model only as `Vetted` (repo/vetted.py): the type, where it is made, and the
prompts the real tiny models receive from `assist complete`, the editor, `assist docstring` and
the agent's `run_command` when the text around holds secrets."""

from __future__ import annotations

import ast
import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path
from test_agent import Steered, git
from test_lsp import lsp_env
from tiny_gguf import CHATML

from assistant.agent.loop import Agent, Finished, ToolResult
from assistant.completion.engine import CompletionEngine, complete_file
from assistant.config import ModelSettings
from assistant.docstrings import run as docstrings
from assistant.errors import AssistError
from assistant.llm.local import LocalModel
from assistant.repo.privacy import PathRules
from assistant.repo.secrets import redact
from assistant.repo.vetted import Permit, Vetted, grant
from assistant.workspace import Workspace
from lsp import handlers
from lsp.server import create_server

ROOT = Path(__file__).parent.parent

AWS = "AKIAQ3H5K7M9P2R4T6V8"
GITHUB = "ghp_" + "R8f2Kq9Lm3Nx7Vb4Tz6Wc1Yd5Hs0Pj2Ga8Ue3Xo"
PASSWORD = "Tr0ub4dor3xq"
KEY_BODY = (
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    "QyNTUxOQAAACDxq8ktGHk9cJ3ldG2kCl7Uq9Yv0nL1hN2v6vJpQv2nXAAAAJgAAAAAAAAA",
)
SECRETS = (AWS, GITHUB, PASSWORD, *KEY_BODY)
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + "\n".join(KEY_BODY)
    + "\n-----END OPENSSH PRIVATE KEY-----"
)
LEAKY = f'''"""Deployment settings, secrets and all."""

DEPLOY_KEY = """{KEY}"""
DATABASE = "postgres://deploy:{PASSWORD}@db.internal:5432/app"


def connect(url):
    return open_db(url, "{AWS}")


def total(values):
    return{" "}


GITHUB_TOKEN = "{GITHUB}"
'''
"""A Python file with a secret of each kind before the cursor (`return |` in `total`) and after."""


def leaks(prompt: str) -> list[str]:
    return [s for s in SECRETS if s in prompt]


def permit(path: str = "a.py") -> Permit:
    return grant(PathRules(ROOT / "tests"), ROOT / "tests" / path)


# -- the type ---------------------------------------------------------------------------------


def test_vetted_text_is_made_only_through_a_named_way_in() -> None:
    with pytest.raises(TypeError, match="workspace"):
        Vetted("raw file text", object())
    with pytest.raises(TypeError, match=r"Workspace\.permit"):
        Permit(PathRules(ROOT).resolve("x.py"), object())
    label = Vetted.label(f"a name that holds {AWS}")
    assert AWS not in label and isinstance(label, Vetted)
    # Slices, strips and vetted joins stay vetted; raw text joined in makes plain text.
    assert type(label[2:]) is Vetted and type(label.strip()) is Vetted
    assert type(label + label) is Vetted and type(label + "raw") is str
    assert type(Vetted.label("\n").joined([label, label])) is Vetted


def test_only_the_workspace_vets_and_only_prompts_fill_templates() -> None:
    """`grant`, `vet_indexed` and `vet_output` apply the rules for the workspace; a module that
    called them itself would be a way around `Workspace.permit` and its kin."""
    allowed = {
        "grant": {"assistant/workspace.py"},
        "vet_indexed": {"assistant/workspace.py"},
        "vet_output": {"assistant/workspace.py"},
        "fill": {"assistant/llm/prompts.py"},
        "_KEY": set(),
    }
    found: dict[str, set[str]] = {name: set() for name in allowed}
    for path in [*ROOT.glob("assistant/**/*.py"), *ROOT.glob("lsp/**/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel == "assistant/repo/vetted.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "assistant.repo.vetted":
                for alias in node.names:
                    if alias.name in found:
                        found[alias.name].add(rel)
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in found
                and ast.unparse(node.value).endswith("vetted")  # `vetted.grant(...)`
            ):
                found[node.attr].add(rel)
    assert {name: found[name] - allowed[name] for name in found} == {n: set() for n in found}


def test_mypy_rejects_raw_text_on_the_way_to_a_model(tmp_path: Path) -> None:
    program = (
        "from pathlib import Path\n"
        "from assistant.llm import prompts\n"
        "from assistant.llm.chat_templates import Message\n"
        "from assistant.llm.fim import ContextFile, Hole\n"
        "from assistant.repo.vetted import Vetted\n"
        "raw = Path('settings.py').read_text()\n"
        "Hole(raw, raw)\n"  # two errors
        "ContextFile('a.py', raw)\n"
        "Message('user', raw)\n"
        "prompts.render('chat_user', context=raw, question=Vetted.from_user('why?'))\n"
        "ok = Vetted.from_user('a question')\n"
        "Hole(ok[1:], ok.strip(), typed=ok + ok)\n"  # derived from vetted text: fine
    )
    # The project's mypy settings, a cache of this test's own (a few seconds, cold).
    mypy = [str(ROOT / ".venv" / "bin" / "mypy"), "--config-file", "/dev/null", "--strict"]
    mypy += ["--ignore-missing-imports", "--cache-dir", str(tmp_path / "cache")]
    out = subprocess.run(
        [*mypy, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert [e.split(":")[1] for e in errors] == ["7", "7", "8", "9", "10"], out.stdout
    assert all('expected "Vetted"' in e for e in errors), errors


# -- windows around the cursor ------------------------------------------------------------------


def around(text: str, offset: int, start: int = 0, end: int | None = None) -> tuple[str, str]:
    vetted = permit().vet_around(text, start, offset, len(text) if end is None else end)
    assert vetted is not None
    return vetted


def test_a_window_is_vetted_as_the_file_is_and_the_cursor_stays_between() -> None:
    offset = LEAKY.index("return \n") + len("return ")
    before, after = around(LEAKY, offset)
    whole = redact(LEAKY).text
    assert before + after == whole  # the same cuts as the whole file's
    assert before.endswith("    return ") and after.startswith("\n\n\nGITHUB_TOKEN")
    assert not leaks(before + after)


def test_a_window_that_starts_inside_a_private_key_shows_none_of_it() -> None:
    # Cut alone, the body's last line has no BEGIN before it and would pass as text.
    start = LEAKY.index(KEY_BODY[1])
    before, after = around(LEAKY, LEAKY.index("DATABASE"), start)
    assert not leaks(before + after)
    assert before == '\n[secret redacted]"""\n'  # the body's line, then the END line's


def test_the_cursor_inside_a_secret_sends_nothing() -> None:
    inside = [LEAKY.index(AWS) + 6, LEAKY.index(KEY_BODY[0]) + 9, LEAKY.index(PASSWORD) + 3]
    for offset in inside:
        # Each half alone would be too short to look like a secret, and both would go out.
        assert permit().vet_around(LEAKY, 0, offset, len(LEAKY)) is None


def test_a_window_edge_inside_a_long_line_drops_a_secret_cut_by_it() -> None:
    line = "x = [" + ", ".join(['"filler"'] * 30) + f', "{AWS}", 1]\n'
    text = "a = 1\n" + line + "b = 2\n"
    cut = text.index(AWS) + 8
    # The window ends inside the key (a long line cut by the budget): that line is left out.
    assert around(text, 3, 0, cut) == ("a =", " 1\n")
    # It starts inside the key: likewise.
    assert around(text, len(text) - 3, cut) == ("\nb =", " 2\n")


def test_a_private_file_gets_no_permit_by_any_name(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"AWS={AWS}\n")
    (tmp_path / "notes.txt").symlink_to(tmp_path / ".env")
    ws = Workspace.open(tmp_path)
    for name in (".env", "notes.txt", str(tmp_path / "notes.txt")):
        with pytest.raises(AssistError, match="never sent to a model"):
            ws.permit(name, inside=False)
    assert AWS not in ws.vet_output((tmp_path / ".env").read_text())


# -- the prompts the models receive ----------------------------------------------------------------


@pytest.fixture
def leaky_ws(tmp_path: Path, make_gguf: Callable[..., Path]) -> Workspace:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "settings.py").write_text(LEAKY)
    env = lsp_env(tmp_path, make_gguf(family="qwen", metadata=True, favorite="a"))
    env["ASSIST_MODEL_HOST"] = "false"  # in this process: the tests read the llama.cpp state
    return Workspace.open(root, env=env)


def held_prompt(model: object) -> str:
    """What llama.cpp holds after a request: the prompt it read (and what it wrote)."""
    runtime = model.runtime  # type: ignore[attr-defined]
    return str(runtime.detokenize([t for t in runtime.cells if t >= 0], special=True).decode())


def test_assist_complete_sends_no_secret_of_the_file(leaky_ws: Workspace) -> None:
    line = LEAKY.split("\n").index("    return ") + 1
    path = str(leaky_ws.root / "settings.py")
    engine_model = leaky_ws.model
    result = complete_file(leaky_ws, path, line, len("    return "))
    prompt = held_prompt(engine_model)
    assert result.timings.prompt_tokens > 0 and "def total(values):" in prompt
    assert "[secret redacted]" in prompt and "GITHUB_TOKEN" in prompt  # both sides were sent
    assert not leaks(prompt)


def test_the_editors_unsaved_buffer_reaches_the_model_vetted(leaky_ws: Workspace) -> None:
    # On disk the file is harmless; the buffer the editor sends holds the secrets.
    (leaky_ws.root / "settings.py").write_text("x = 1\n")
    ls = create_server(str(leaky_ws.root))
    params = types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(leaky_ws.root))
    )
    list(ls.protocol.lsp_initialize(params))
    ls.ws, ls.engine = leaky_ws, CompletionEngine(leaky_ws)
    uri = from_fs_path(str(leaky_ws.root / "settings.py")) or ""
    # Secrets on the cursor's line either side of it, and the two lines a small cold window
    # keeps before it are the end of a private key.
    line = f'db = open_db("postgres://deploy:{PASSWORD}@db/app", "{AWS}", , "{GITHUB}")'
    buffer = f'DEPLOY_KEY = """{KEY}"""\n{line}\n'
    ls.workspace.put_text_document(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=buffer)
    )
    cursor = types.Position(line=KEY.count("\n") + 1, character=line.index(", , ") + 2)
    asyncio.run(handlers._complete(ls, uri, cursor))
    assert ls.engine.places.place is not None and ls.engine.places.place.start > 0
    prompt = held_prompt(ls.engine.model)
    assert "open_db(" in prompt and "[secret redacted]" in prompt
    assert not leaks(prompt)


@pytest.mark.parametrize("kind", ["fim", "chat"])
def test_assist_docstring_sends_no_secret_and_keeps_them_in_the_file(
    leaky_ws: Workspace, make_gguf: Callable[..., Path], kind: str
) -> None:
    if kind == "chat":  # no FIM tokens: the doc comes from the chat prompt with the code
        plain = make_gguf(family="none", chat_template=CHATML, favorite="a")
        leaky_ws.use_model(str(plain))
    text = LEAKY.replace("    return \n", f'    return sum(values) or "{GITHUB}"\n')
    (leaky_ws.root / "settings.py").write_text(text)
    reports = list(docstrings.run(leaky_ws, ["settings.py"], generate_docs=True, write=True))
    documented = [o for r in reports for o in r.outcomes if o.status == "documented"]
    assert documented, [o for r in reports for o in r.outcomes]
    prompt = held_prompt(leaky_ws.model)
    assert "def total(values):" in prompt and not leaks(prompt)
    # The edits were made on the file as it is: its own text, secrets included, stays.
    written = (leaky_ws.root / "settings.py").read_text()
    assert all(secret in written for secret in SECRETS) and written.count('"""') > text.count('"""')


@pytest.fixture(scope="module")
def agent_model(make_gguf: Callable[..., Path]) -> LocalModel:
    path = make_gguf(chat_template=CHATML, favorite="a", context_length=16384)
    return LocalModel.load(path, ModelSettings(n_ctx=16384, temperature=0.0))


def test_run_command_output_reaches_the_model_vetted(
    tmp_path: Path, isolated_env: dict[str, str], agent_model: LocalModel
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("settings live in .env\n")
    git(root, "add", "README.md")
    git(root, "commit", "-qm", "init")  # the agent checkpoints on top of a commit
    # A private file by name: the agent's file tools refuse it, a command prints it anyway.
    (root / ".env").write_text(
        f"AWS_ACCESS_KEY_ID={AWS}\nGITHUB_TOKEN={GITHUB}\n"
        f"DATABASE_URL=postgres://deploy:{PASSWORD}@db.internal/app\nKEY='{KEY}'\n"
    )
    ws = Workspace.open(root, env=isolated_env)
    calls = [
        {"tool": "run_command", "args": {"command": "cat .env"}},
        {"tool": "final", "args": {"answer": "done"}},
    ]
    model = Steered(agent_model, calls)
    agent = Agent(ws, approve=None, model=model, auto_approve=True)  # `assist agent --yes`
    events = list(agent.run("show me the settings"))
    assert isinstance(events[-1], Finished) and events[-1].reason == "answer"
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert result.ok and "exit code 0" in result.text and "[secret redacted]" in result.text
    seen = "\n".join(m.content for m in model.prompts[-1])
    assert "AWS_ACCESS_KEY_ID=" in seen and not leaks(seen)
    assert not leaks(held_prompt(agent_model))
