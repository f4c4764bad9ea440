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


# Forms the first rules missed, one secret each; `redact` must cut it out of every piece.
NEW_FORMS = [
    ('DB_PASSWORD = b"Tr0ub4dor&3horse"\n', "Tr0ub4dor&3horse"),  # bytes
    ("SECRET_KEY = r'k8#2f!x9q@m4z7w1'\n", "k8#2f!x9q@m4z7w1"),  # raw
    ('password = rb"s3cr3t-bytes-99"\n', "s3cr3t-bytes-99"),
    ("password = BR's3cr3t-bytes-98'\n", "s3cr3t-bytes-98"),
    ('api_key = f"live-9f8e7d6c5b4a"\n', "live-9f8e7d6c5b4a"),
    ('auth_token = u"9f8e7d6c5b4a39281706"\n', "9f8e7d6c5b4a39281706"),
    ('HEADER = ("ghp_A1b2C3d4E5f6G7h8I9j0" "K1l2M3n4O5p6Q7r8")\n', "K1l2M3n4O5p6Q7r8"),
    ("aws = 'AKIA' + 'IOSFODNN7ABCDEFG'\n", "IOSFODNN7ABCDEFG"),
    ('const hook = "xoxb-2048-" +\n  "11111111111-AbCdEfGh";\n', "11111111111-AbCdEfGh"),
    ('password = \\\n    "Tr0ub4dor&3horse"\n', "Tr0ub4dor&3horse"),
    ('SECRET_KEY = (\n    "k8#2f!x9q@m4"\n    "z7w1p0v5"\n)\n', "z7w1p0v5"),
    ("curl -H 'Authorization: Bearer 9f8e7d6c5b4a39281706f5e4' https://api.example.com\n",
     "9f8e7d6c5b4a39281706f5e4"),
    ("GET / HTTP/1.1\nHost: x\nauthorization: bearer Zm9vYmFyYmF6cXV4MTIzNDU2\n",
     "Zm9vYmFyYmF6cXV4MTIzNDU2"),
    ('headers = {"Authorization": "Basic YWRtaW46aHVudGVyMg=="}\n', "YWRtaW46aHVudGVyMg=="),
    ('req.Header.Set("AUTHORIZATION", "Token abcdef0123456789")\n', "abcdef0123456789"),
    ('{"db": {"pw": "hunter2!x"}}\n', "hunter2!x"),
    ("smtp:\n  pass: Tr0ub4dor&3\n", "Tr0ub4dor&3"),
    ('[deploy]\nkey = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"\n', "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("[mail]\nDB_PASS = walrus-77\n", "walrus-77"),
    ("const password: string = 'Tr0ub4dor&3horse';\n", "Tr0ub4dor&3horse"),
    ('config["client_secret"] = "c9d8e7f6a5b4c3d2"\n', "c9d8e7f6a5b4c3d2"),
    ("REDIS_URL=redis://:s3cretpw@localhost:6379/0\n", "s3cretpw"),  # no user name
]  # fmt: skip
# `cat .env`: every secret-named value goes, phrases and filler words included; the rest stays.
ENV_DUMP = """APP_NAME=Laravel
APP_KEY=base64:Jx9k2mQ7vR4tW8yZ1aB3cD5eF6gH0iJ2kL4mN6oP8q=
APP_DEBUG=true
DB_HOST=127.0.0.1
DB_PASSWORD=secret
DB_PASS="correct horse battery staple"
MAIL_PASSWORD='my mail pass'
REDIS_PASSWORD=null
AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY
STRIPE_KEY=pk_test_51H8abcDEFghiJKLmno
JWT_SECRET=Zx8vQ2pL
export GH_TOKEN=gho_16C7e42F292c6912E7710c838347Ae178B4a
SMTP_PW=otter
MIX_PUSHER_APP_KEY="${PUSHER_APP_KEY}"
"""
ENV_SECRETS = ["Jx9k2mQ7vR4tW8yZ1aB3cD5eF6gH0iJ2kL4mN6oP8q=", "DB_PASSWORD=secret",
               "correct horse battery staple", "my mail pass", "wJalrXUtnFEMIK7MDENGbPxRfiC",
               "pk_test_51H8abcDEFghiJKLmno", "Zx8vQ2pL", "gho_16C7e42F292c", "otter"]  # fmt: skip


@pytest.mark.parametrize(("content", "secret"), NEW_FORMS)
def test_each_new_form_is_cut_out(content: str, secret: str) -> None:
    out = redact(content)
    assert secret not in out.text and REDACTED in out.text and out.count >= 1, out.text
    assert out.text.count("\n") == content.count("\n")
    assert len(out.rules) == out.count


def test_a_cat_env_dump_is_fully_redacted() -> None:
    out = redact(ENV_DUMP)
    leaks = [s for s in ENV_SECRETS if s in out.text]
    assert not leaks, out.text
    kept = ["APP_NAME=Laravel", "APP_DEBUG=true", "DB_HOST=127.0.0.1", "REDIS_PASSWORD=null",
            'MIX_PUSHER_APP_KEY="${PUSHER_APP_KEY}"']  # fmt: skip
    assert all(line in out.text.splitlines() for line in kept), out.text
    assert out.count == 9 and out.text.count("\n") == ENV_DUMP.count("\n")


def test_a_split_value_keeps_the_code_around_it() -> None:
    out = redact('SECRET_KEY = (\n    "k8#2f!x9q@m4"\n    "z7w1p0v5"\n)\nDEBUG = True\n')
    assert out.text == 'SECRET_KEY = (\n    "[secret redacted]"\n    ""\n)\nDEBUG = True\n'
    out = redact("aws = 'AKIA' + 'IOSFODNN7ABCDEFG'  # key id\n")
    assert out.text == "aws = '[secret redacted]' + ''  # key id\n" and out.rules == ("aws-key-id",)


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
        # Found in real code by bench/secret_rules.py, each once a false positive:
        'TOKEN_COMMENT: "comment",',  # jinja2's lexer
        'key1 = "some_cookie1"',  # requests' tests
        "RegOpenKeyEx = win32api.RegOpenKeyEx",  # distutils
        "SECRETS_DIR_MAX_ENTRIES = 10_000  # a bound",
        "    password: Annotated[",
        'HUGGINGFACE_HEADER_LINK_XET_AUTH_KEY = "xet-auth"',
        'api_key="hf_...",  # Pass your HF token',
        'api_key="your-replicate-api-key",',
        'secret_key="supersecret"',
        'password = ":****"',
        "this._passThroughOptions = !!passThrough;",
        "key='param:secp384r1.pem'",
        '"http://user:pass@proxy:8080"',
        'assert headers == {"Proxy-Authorization": "Basic dXNlcjpwYXNz"}',  # user:pass
        "salt=b'salt'",
        # References and lookups that only look like secrets:
        'key = "name"',
        "sorted(items, key=lambda item: item.rank)",
        'render_pass = "shadow"',
        'token_file = "/run/secrets/token"',
        '"Authorization": f"Bearer {token}",',
        "Authorization: Bearer <token>",
        'req.Header.Set("Authorization", "Bearer "+token)',
        "CACHE_KEY=users",
        "DB_PASSWORD=${DB_PASSWORD}",
        'USER_PASSWD = "%s:%s" % (USER, PASSWD)',
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


CONTENT_PATHS = {path for path, _, _ in BY_CONTENT}


def test_no_planted_secret_is_searchable_or_sent(ws: Workspace) -> None:
    assert len(SECRETS) >= 24
    store = ws.store
    stored = "\n".join(row[0] for row in store.db.execute("SELECT text FROM chunks"))
    leaks = [s for s in SECRETS if s in stored]
    assert not leaks, leaks
    # Every file a secret was cut out of is still indexed, with the mark where it was, and no
    # private file is: an empty result fails here, it does not pass.
    hits = ws.search("secret redacted", mode="keyword", k=50)
    assert {h.path for h in hits} == CONTENT_PATHS
    snippets = "\n".join(h.snippet for h in hits)
    assert REDACTED in snippets and not [s for s in SECRETS if s in snippets]
    for secret in SECRETS:
        assert all(secret not in h.snippet for h in ws.search(secret, mode="keyword", k=20))
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
    for path, _, secret in [*BY_CONTENT, *BY_NAME]:
        question = f"what is the secret redacted in {path}, is it {secret}?"
        prepared = session.prepare(question, Counting())  # type: ignore[arg-type]
        prompt = "\n".join(m.content for m in prepared.messages[:-1])
        context = prepared.messages[-1].content.split("Question:")[0]
        assert secret not in prompt and secret not in context, secret
        sources = {source.path for source in prepared.sources}
        if path in CONTENT_PATHS:  # the file was found and sent, its secret cut out
            assert path in sources and REDACTED in context, (path, sources)
        else:
            assert not sources & {p for p, _, _ in BY_NAME}, (path, sources)


def test_no_planted_secret_reaches_the_agent(ws: Workspace) -> None:
    tools = Toolbox(ws, output_limit=100_000, command_timeout=5)
    for secret in SECRETS:
        out = tools.prepare(ToolCall("grep", {"pattern": secret[:6], "path": "."}))
        assert secret not in out.run(threading.Event())
    # grep reads the redacted text: the mark is found in every file that held a secret.
    found = tools.prepare(ToolCall("grep", {"pattern": "secret redacted", "path": "."}))
    listed = found.run(threading.Event())
    assert all(f"{path}:" in listed for path in CONTENT_PATHS), listed
    assert not [s for s in SECRETS if s in listed]
    for path, _, secret in BY_CONTENT:
        text = tools.prepare(ToolCall("read_file", {"path": path, "start": 0, "end": 0}))
        read = text.run(threading.Event())
        assert REDACTED in read and secret not in read, path
