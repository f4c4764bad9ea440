"""Planted secrets, by name and by content, in any letter case and through links: none may be
found by search or reach a chat prompt, repository context or an agent tool's output."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from assistant.agent.calls import ToolCall
from assistant.agent.toolbox import Toolbox
from assistant.chat.session import ChatSession
from assistant.repo.secrets import REDACTED, redact
from assistant.workspace import Workspace

# (file, content, the secret that must never come out): ordinary names, so only content tells.
BY_CONTENT = [
    ("app/aws.py", 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7ABCDEFG"\n', "AKIAIOSFODNN7ABCDEFG"),
    ("app/aws2.py", "aws_secret_access_key = 'wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY'\n",
     "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"),
    ("settings.ini", "[db]\nhost = db.local\npassword = Tr0ub4dor&3horse\n", "Tr0ub4dor&3horse"),
    ("web/settings.py", "SECRET_KEY = 'django-insecure-k8#2f!x9q@m4z7w1p0v5'\n",
     "django-insecure-k8#2f!x9q@m4z7w1p0v5"),
    ("ci/deploy.sh", "export GITHUB_TOKEN=ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8\n",
     "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
    ("ci/gitlab.yml", "token: glpat-xY7zQ2wR9vK4mN1bT6pL\n", "glpat-xY7zQ2wR9vK4mN1bT6pL"),
    ("chat/slack.js", 'const hook = "xoxb-2048-11111111111-AbCdEfGhIjKlMnOp";\n',
     "xoxb-2048-11111111111-AbCdEfGhIjKlMnOp"),
    ("pay/stripe.rb", 'Stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"\n',
     "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("maps/config.ts", 'export const key = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY";\n',
     "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("llm/client.py", 'client = OpenAI(api_key="sk-proj-abcdefghijklmnopqrstuvwxyz0123456789AB")\n',
     "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789AB"),
    ("db/url.py", 'DATABASE_URL = "postgres://admin:S3cretPassw0rd@db:5432/app"\n',
     "S3cretPassw0rd"),
    ("auth/jwt.txt",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\n",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("certs/notes.md",
     "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq98zK\n-----END RSA PRIVATE KEY-----\n",
     "MIIEowIBAAKCAQEA7bq98zK"),
    ("config/app.yaml", "api_token: 9f8e7d6c5b4a39281706f5e4d3c2b1a0\n",
     "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("k8s/kube.yaml",
     "users:\n- user:\n    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=\n",
     "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo="),
    ("app/consts.go", 'const clientSecret = "c9d8e7f6a5b4c3d2e1f0a9b8"\n',
     "c9d8e7f6a5b4c3d2e1f0a9b8"),
]  # fmt: skip
# By name: private files, in any letter case and through an innocent-looking link.
BY_NAME = [
    (".env", "PLAIN_VALUE=zebra-quartz-1\n", "zebra-quartz-1"),
    (".pgpass", "db:5432:app:admin:walrus-piano-2\n", "walrus-piano-2"),
    (".cargo/credentials.toml", '[registry]\ntoken = "otter"\n', "otter"),
    ("client_secret_123.json", '{"installed": {"client_secret": "heron"}}\n', "heron"),
    ("Secrets/api.txt", "the value is lynx-violet-5\n", "lynx-violet-5"),
    ("deploy/kubeconfig", "current-context: mole-cobalt-6\n", "mole-cobalt-6"),
    ("keys/Deploy.PEM", "ibex-amber-7\n", "ibex-amber-7"),
    (".env.local", "X=bison-copper-8\n", "bison-copper-8"),
]


@pytest.mark.parametrize(("path", "content", "secret"), BY_CONTENT)
def test_each_secret_is_found_by_its_content(path: str, content: str, secret: str) -> None:
    out = redact(content)
    assert secret not in out.text and REDACTED in out.text and out.count >= 1
    assert out.text.count("\n") == content.count("\n")  # line numbers stay right


@pytest.mark.parametrize(
    "line",
    [
        'password = os.environ["DB_PASSWORD"]',
        "token = get_token()",
        'api_key = "${API_KEY}"',
        'secret = "<your-secret-here>"',
        "def check_password(password):",
        "PASSWORD_MIN_LENGTH = 8",
        "sk = 1",
    ],
)
def test_references_and_placeholders_are_not_secrets(line: str) -> None:
    assert redact(line).text == line


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for path, content, _ in [*BY_CONTENT, *BY_NAME]:
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(content)
    (root / "notes").mkdir()
    os.symlink("../.env.local", root / "notes" / "env.txt")
    os.symlink("../Secrets", root / "notes" / "public")
    w = Workspace.open(root)
    for _ in w.index(vectors=False):
        pass
    return w


SECRETS = [secret for _, _, secret in [*BY_CONTENT, *BY_NAME]]


def test_no_planted_secret_is_searchable_or_sent(ws: Workspace) -> None:
    assert len(SECRETS) >= 24
    store = ws.store
    stored = "\n".join(row[0] for row in store.db.execute("SELECT text FROM chunks"))
    leaks = [s for s in SECRETS if s in stored]
    assert not leaks, leaks
    for secret in SECRETS:
        for hit in ws.search(secret, mode="keyword", k=20):
            assert secret not in hit.snippet
    # The redacted files are still indexed: their other text can be found.
    assert ws.search("DATABASE_URL", mode="keyword")[0].path == "db/url.py"


def test_no_planted_secret_reaches_a_chat_prompt(ws: Workspace) -> None:
    class Counting:
        """Only `count_tokens` and `context_window` are asked of the model by `prepare`."""

        def count_tokens(self, text: str) -> int:
            return len(text) // 4 + 1

        def context_window(self) -> int:
            return 100_000

    session = ChatSession(ws)
    for secret in SECRETS:
        prepared = session.prepare(f"where is {secret} used?", Counting())  # type: ignore[arg-type]
        prompt = "\n".join(m.content for m in prepared.messages[:-1])
        context = prepared.messages[-1].content.split("Question:")[0]
        assert secret not in prompt and secret not in context, secret


def test_no_planted_secret_reaches_the_agent(ws: Workspace) -> None:
    tools = Toolbox(ws, output_limit=100_000, command_timeout=5)
    for secret in SECRETS:
        out = tools.prepare(ToolCall("grep", {"pattern": secret[:6], "path": "."}))
        assert secret not in out.run(threading.Event())
    text = tools.prepare(ToolCall("read_file", {"path": "db/url.py", "start": 0, "end": 0}))
    assert "S3cretPassw0rd" not in text.run(threading.Event())
