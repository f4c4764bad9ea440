"""Secrets found by their content, cut out of text before it is indexed or put into a prompt.

File names catch `.env` and `id_rsa`; content rules catch a cloud key pasted into `settings.py`,
a password in `config.ini`, a private key in a test fixture. What is found is replaced by
`[secret redacted]`, keeping the name it was assigned to and every line break, so line numbers,
symbols and citations stay right.

The rules: private-key blocks; token formats that announce themselves (AWS, GitHub, GitLab,
Slack, Stripe, Google, OpenAI, Anthropic, npm, PyPI, SendGrid, JWTs, Azure account keys);
passwords inside URLs; and values assigned to secret-named variables (`password`,
`secret_key`, `api_token`…): a quoted value without spaces, or a bare one with a digit or a
symbol in it, unless it is a placeholder or a reference (`${VAR}`, `os.environ[...]`,
`<your-key>`). A phrase (`TOKEN_EOF = "end of template"`) is not a secret.

detect-secrets was measured first: 2.4 ms a line on this machine (28 minutes for CPython's
standard library), and it flags ordinary docstrings as "high entropy"; these patterns cost a
tenth to a third of parsing and chunking the same files (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REDACTED = "[secret redacted]"

_KEY_BLOCK = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.S
)
# (literals, pattern): a match contains one of the space-separated literals, which are looked
# for first (a C-speed `in`), so a file with none of them costs a few substring searches.
_TOKENS = tuple(
    (tuple(marker.split()), re.compile(pattern))
    for marker, pattern in (
        (
            "AKIA ASIA AGPA AIDA AROA ANPA ANVA AIPA",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
        ),  # AWS key id
        ("ghp_ gho_ ghu_ ghs_ ghr_", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),  # GitHub
        ("github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
        ("glpat-", r"\bglpat-[A-Za-z0-9_-]{20,}"),  # GitLab
        ("xox", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack
        ("hooks.slack.com", r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+"),
        ("k_live_ k_test_", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe
        ("AIza", r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API key
        ("sk-", r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{32,}"),  # OpenAI, Anthropic
        ("npm_", r"\bnpm_[A-Za-z0-9]{36}\b"),
        ("pypi-", r"\bpypi-[A-Za-z0-9_-]{50,}"),
        ("SG.", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),  # SendGrid
        ("eyJ", r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # JWT
        ("AccountKey=", r"(?<=AccountKey=)[A-Za-z0-9+/=]{40,}"),  # Azure storage
    )
)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]{3,})@", re.I)
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key|signing[_-]?key"
    r"|encryption[_-]?key|key[_-]data|salt)[A-Za-z0-9_.-]*"
)
# name = "value" / name: 'value' / "name": "value" / name=value (env and ini files)
_ASSIGNED = re.compile(
    rf"""(?P<name>{_SECRET_NAME})["']?[ \t]*(?::=|=>|[:=])[ \t]*"""
    r"""(?:(?P<q>["'])(?P<quoted>[^"'\s]{4,})(?P=q)"""
    r"""|(?P<bare>[^\s"'#;,)\]}]{6,})[ \t]*(?=$|[#;]))""",
    re.IGNORECASE | re.MULTILINE,
)
_HINT_WORDS = (
    "passw", "pwd", "secret", "token", "apikey", "api_key", "api-key", "access_key",
    "access-key", "private_key", "private-key", "credential", "auth_key", "auth-key",
    "signing", "encryption", "key_data", "key-data", "salt",
)  # fmt: skip
"""Lower-case words of `_SECRET_NAME`: only lines holding one are matched against it."""
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?\w+\}?|\{\{.*\}\}|<[^>]*>|%\(?\w+\)?s?|\*+|x+|\.+|-+|_+|"
    r"(?:your|my|the|some|example|dummy|fake|test|sample|change|replace|todo|fixme|none|null|"
    r"true|false|password|secret|token|redacted|xxx)[\w-]*)$",
    re.IGNORECASE,
)
_CODE_VALUE = re.compile(r"^(?:[A-Za-z_][\w.]*\(.*|os\.|env\.|process\.env|self\.|settings\.)")
_NAME_VALUE = re.compile(r"^[A-Za-z_][A-Za-z_.]*$")
"""A bare value that reads as a name (`token = value_str` in code) is a reference, not a secret;
a secret has digits or symbols in it (`hunter2`, `wJalr/XUtn…`)."""


@dataclass(frozen=True)
class Redacted:
    text: str
    count: int
    """Secrets cut out."""


def redact(text: str) -> Redacted:
    """`text` with every secret the rules find replaced by `[secret redacted]`."""
    count = 0

    def block(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        lines = m.group(0).count("\n")
        return f"-----BEGIN {m.group(1)}-----" + "\n" * lines + REDACTED

    def whole(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return REDACTED

    def password(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return m.group(0).replace(m.group(1), REDACTED)

    def assigned(m: re.Match[str]) -> str:
        nonlocal count
        value = m.group("quoted") or m.group("bare") or ""
        bare_name = m.group("bare") is not None and _NAME_VALUE.match(value)
        if _PLACEHOLDER.match(value) or _CODE_VALUE.match(value) or bare_name or REDACTED in value:
            return m.group(0)
        count += 1
        start, end = m.span("quoted") if m.group("quoted") else m.span("bare")
        offset = m.start()
        return m.group(0)[: start - offset] + REDACTED + m.group(0)[end - offset :]

    if "PRIVATE KEY" in text:
        text = _KEY_BLOCK.sub(block, text)
    for markers, pattern in _TOKENS:
        if any(marker in text for marker in markers):
            text = pattern.sub(whole, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(password, text)
    # Assignments: only the lines that name a secret are matched against the full pattern.
    low = text.lower()
    lines: dict[int, int] = {}
    for word in _HINT_WORDS:
        at = low.find(word)
        while at >= 0:
            start = low.rfind("\n", 0, at) + 1
            end = low.find("\n", at)
            end = len(low) if end < 0 else end
            lines[start] = end
            at = low.find(word, end)
    if lines:
        pieces, last = [], 0
        for start, end in sorted(lines.items()):
            pieces += [text[last:start], _ASSIGNED.sub(assigned, text[start:end])]
            last = end
        text = "".join([*pieces, text[last:]])
    return Redacted(text, count)
