"""Secrets found by their content, cut out of text before it is indexed or put into a prompt.

File names catch `.env` and `id_rsa`; content rules catch a cloud key pasted into `settings.py`,
a password in `config.ini`, a private key in a test fixture, a `cat .env` in an agent's command
output. What is found is replaced by `[secret redacted]`, keeping the name it was assigned to and
every line break, so line numbers, symbols and citations stay right.

The rules: private-key blocks; token formats that announce themselves (AWS, GitHub, GitLab,
Slack, Stripe, Google, OpenAI, Anthropic, npm, PyPI, SendGrid, JWTs, Azure account keys), also
when split over adjacent or `+`-joined string literals; passwords inside URLs; `Authorization:`
header values; and values assigned to secret-named variables and fields, in code (any string
prefix, continued on the next line or over several literals), JSON, YAML, TOML, INI and `.env`
lines. A *strong* name (`password`, `secret_key`, `api_key`, `DB_PASS`) takes any value that is
not a placeholder or a reference (`${VAR}`, `os.environ[...]`, `<your-key>`, `{token}`, a path);
a *weak* one (`key`, `token`, `auth`: also dictionary keys and lexer tokens) only a value that
looks made up, letters and digits, so `TOKEN_COMMENT: "comment"` and `key = "name"` stay.

detect-secrets was measured first: 2.4 ms a line on this machine (28 minutes for CPython's
standard library), and it flags ordinary docstrings as "high entropy". These rules' false
positives and cost are measured by `bench/secret_rules.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from base64 import b64decode
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

REDACTED = "[secret redacted]"

_KEY_BLOCK = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.S
)
# (rule, literals, pattern): a match contains one of the space-separated literals, which are
# looked for first (a C-speed `in`), so a file with none of them costs a few substring searches.
_TOKENS = tuple(
    (rule, tuple(marker.split()), re.compile(pattern))
    for rule, marker, pattern in (
        (
            "aws-key-id",
            "AKIA ASIA AGPA AIDA AROA ANPA ANVA AIPA",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
        ),
        ("github", "ghp_ gho_ ghu_ ghs_ ghr_", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
        ("github", "github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
        ("gitlab", "glpat-", r"\bglpat-[A-Za-z0-9_-]{20,}"),
        ("slack", "xox", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        ("slack", "hooks.slack.com", r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+"),
        ("stripe", "k_live_ k_test_", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("google", "AIza", r"\bAIza[0-9A-Za-z_-]{35}\b"),
        ("openai", "sk-", r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{32,}"),
        ("npm", "npm_", r"\bnpm_[A-Za-z0-9]{36}\b"),
        ("pypi", "pypi-", r"\bpypi-[A-Za-z0-9_-]{50,}"),
        ("sendgrid", "SG.", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
        ("jwt", "eyJ", r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
        ("azure", "AccountKey=", r"(?<=AccountKey=)[A-Za-z0-9+/=]{40,}"),
    )
)
# A token split over literals: `"ghp_abc" "def…"`, `'AKIA' + '…'`, one per line inside `( )`.
_SPLIT_TAIL = re.compile(r"""[\w.+/=-]*(["'`])\s*[+.]?\s*[rRbBuUfF]{0,2}["'`]""")
_PIECE = re.compile(r"""\s*[+.]?\s*[rRbBuUfF]{0,2}(["'`])([^"'`\\\n]*)\1""")
_URL_USERINFO = re.compile(r"[^/\s:@'\"]*:([^/\s@'\"]{3,})@")
"""After `scheme://`: `user:password@`."""
_AUTH_HEADER = re.compile(
    r"""\bauthorization["'`]?\]?[ \t]*[:=,][ \t]*["'`]?[ \t]*"""
    r"""(?:(?P<scheme>bearer|basic|token|negotiate|apikey|sso-key)[ \t]+)?"""
    r"""(?P<value>[A-Za-z0-9._~+/=:-]{8,})""",
    re.IGNORECASE,
)
_LIT = r"""(?P<pre>[rRbBuUfF]{0,2})(?P<q>\"\"\"|'''|["'`])(?P<quoted>[^"'`\s\\]*)(?P=q)"""
# name = "value" / name: 'value' / "name": "value" / name=value (ini) / name: str = "value" /
# name = \⏎ "value" / name = (⏎ "val" "ue" ⏎) / obj["name"] = "value".
_ASSIGNED = re.compile(
    r"""(?P<name>[A-Za-z_][\w.-]*)(?:["'`]\]?|\])?[ \t]*"""
    r"""(?::=|=>|:[ \t]*[&\w.\[\]|<>, ]{1,40}?[ \t]*=(?!=)|=(?!=)|:)[ \t]*"""
    rf"""(?:(?:(?:\\[ \t]*\n|\([ \t]*\n?|\n)[ \t]*)?{_LIT}"""
    r"""(?P<more>(?:\s*[+.]?\s*[rRbBuUfF]{0,2}["'`][^"'`\s\\]*["'`])*)"""
    r"""|(?P<bare>[^\s"'`#;,)\]}]{6,})[ \t]*(?=$|[#;]))""",
    re.MULTILINE,
)
# A `.env` line (`cat .env`, `env`, docker env files): the value runs to the end of the line.
_ENV_LINE = re.compile(r"^(?:export[ \t]+)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>[^\n]*)$", re.M)
_NOT_NAME = re.compile(r"[^\w.-]")
"""Searched for in the text before a hint word, reversed: where the name holding it begins."""
_HINT_WORDS = ("pass", "pw", "secret", "token", "key", "credential", "salt", "auth")
"""Lower-case words every secret name holds."""
_STRONG_NAME = re.compile(
    r"passw|pwd|secret|api_?key|access_?key|private_?key|credential|signing_?key"
    r"|encryption_?key|key_?data|salt|passphrase"
)
_MEDIUM_WORDS = frozenset({"pass", "pw"})
_WEAK_WORDS = frozenset({"key", "token", "auth"})
_ABOUT_WORDS = frozenset({
    "file", "files", "path", "paths", "dir", "env", "var", "name", "names", "prompt", "label",
    "help", "hint", "field", "header", "type", "mode", "regex", "re", "pattern", "len", "length",
    "size", "timeout", "count", "entries", "min", "max", "policy", "format", "template", "id",
    "param", "params", "arg", "args", "attr", "column", "comment",
})  # fmt: skip
"""A name ending in one of these is about a secret, not one: `PASSWORD_MIN_LENGTH`,
`token_file`, `SECRETS_DIR_MAX_ENTRIES`, `api_key_env`."""
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_FILLER = (
    r"your|my|the|some|an?|example|dummy|fake|test|sample|change|me|replace|todo|fixme|pass|"
    r"passwd|password|secret|token|api|key|redacted|here|value|insert|put|enter|goes|real|"
    r"actual|foo|bar|baz|user|username|name|default|xxx|abc|demo|salt|none|null|nil|true|false"
)
_REFERENCE = re.compile(
    r"^(?:\$\S*|.*\{.*\}.*|<[^>]*>|(?:%(?:\(\w+\))?[sdr]|[:@/ ._-])+|none|null|nil|true|false"
    r"|(?-i:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
    r"|(?:~|\.{1,2})?/[\w./-]*|[\w.:/-]*\.(?-i:[a-z]{2,4}))$",
    re.IGNORECASE,
)
"""Not a value but a way to one: `$VAR`, `{token}`, `<key>`, `%(pw)s`, `DB_PASSWORD` (a
variable's name), a dotted name (`settings.SECRET_KEY`), a file path (`/run/secrets/db`) or
name (`secp384r1.pem`)."""
_PLACEHOLDER = re.compile(
    rf"^(?:(?:{_FILLER})(?:[\W_]*(?:{_FILLER}))*|(?:your|my|example|sample|dummy|fake)[\W_].*"
    r"|(?-i:[a-z_-]*(?:key|token|secret|pass)[a-z_-]*)|.*(?:\.\.\.|…)|.*\*\*\*.*|[*x.-]+)$",
    re.IGNORECASE,
)
"""Made up to be read: filler words (`your-api-key`, `changeme`, `user:pass` in a test's URL),
words about a secret (`supersecret`, `fal-ai-api-key`), elided (`hf_...`), masked (`:****`)."""
_CODE_VALUE = re.compile(r"^(?:[A-Za-z_][\w.]*[(\[].*|.*[(\[{\\]|!.*)$")
"""Unquoted code: a call or subscript (`os.environ["PW"]`), a line that goes on (`Annotated[`),
a negation."""
_NAME_VALUE = re.compile(r"^[A-Za-z_][A-Za-z_.]*$")
"""A value that reads as a name (`token = value_str` in code) is a reference, not a secret; a
secret has digits or symbols in it (`hunter2`, `wJalr/XUtn…`)."""
_SWITCH = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _made_up(value: str) -> bool:
    """What a weak name's value must look like: generated, not words with a number on the end
    (`some_cookie1`): ten or more characters switching between letters and digits three times,
    or sixteen or more with upper and lower case and digits."""
    if len(value) < 10 or any(c.isspace() for c in value):
        return False
    if len(_SWITCH.findall(value)) >= 3:
        return True
    return (
        len(value) >= 16 and value.lower() != value != value.upper() and bool(_SWITCH.search(value))
    )


@dataclass(frozen=True)
class Redacted:
    text: str
    count: int
    """Secrets cut out."""
    rules: tuple[str, ...] = ()
    """The rule that found each, in the order they were cut: for reports and benchmarks."""


@lru_cache(maxsize=4096)
def _strength(name: str) -> int:
    """3 for a name only a secret has (`password`), 2 for one ending in the word `pass` or `pw`
    (`DB_PASS`, but also `render_pass`), 1 for `key`, `token` or `auth` as a word of it, else 0."""
    words = [w.lower() for w in _WORDS.findall(name)] or [""]
    if words[-1] in _ABOUT_WORDS:
        return 0
    if _STRONG_NAME.search(name.lower().replace("-", "_")):
        return 3
    return 2 if words[-1] in _MEDIUM_WORDS else 1 if _WEAK_WORDS.intersection(words) else 0


def _is_secret(value: str, strength: int, bare: bool) -> bool:
    """Whether `value`, assigned to a name of `strength`, is one: for a strong name anything but
    a placeholder or a reference, for `pass` and `pw` anything that is not a word either, for a
    weak name only made-up letters and digits. Bare (unquoted) values that read as code (a
    name, a number, a call) are code."""
    if not strength or (strength == 1 and len(value) < 10) or REDACTED in value:
        return False
    if (bare and _CODE_VALUE.match(value)) or _REFERENCE.match(value) or _PLACEHOLDER.match(value):
        return False
    if strength == 1:
        return _made_up(value)
    if bare and (_NAME_VALUE.match(value) or value.replace("_", "").isdigit()):
        return False
    return len(value) >= (6 if bare else 4) and (strength == 3 or not _NAME_VALUE.match(value))


def _name_starts(text: str, low: str) -> list[int]:
    """Where each name holding a hint word starts, in order: only there can an assignment of a
    secret begin, so the assignment pattern is tried at a few places, not at every character."""
    starts = set()
    for word in _HINT_WORDS:
        at = low.find(word)
        while at >= 0:
            before = text[max(0, at - 64) : at][::-1]
            stop = _NOT_NAME.search(before)
            start = at - (stop.start() if stop else len(before))
            while start < at and not (text[start].isalpha() or text[start] == "_"):
                start += 1
            starts.add(start)
            at = low.find(word, at + len(word))
    return sorted(starts)


def redact(text: str) -> Redacted:
    """`text` with every secret the rules find replaced by `[secret redacted]`."""
    found: list[str] = []

    def block(m: re.Match[str]) -> str:
        found.append("private-key")
        return f"-----BEGIN {m.group(1)}-----" + "\n" * m.group(0).count("\n") + REDACTED

    if "PRIVATE KEY" in text:
        text = _KEY_BLOCK.sub(block, text)
    markers: list[str] = []
    for rule, literals, pattern in _TOKENS:
        present = [marker for marker in literals if marker in text]
        if present:
            markers += present
            text, n = pattern.subn(REDACTED, text)
            found += [rule] * n
    if markers:
        text = _split_tokens(text, markers, found)
    if "://" in text:
        text = _url_passwords(text, found)
    low = text.lower()
    if "authorization" in low:
        text = _auth_headers(text, low, found)
        low = text.lower()
    edits: list[tuple[int, int, str]] = []
    end = 0
    for start in _name_starts(text, low):
        line = text.rfind("\n", 0, start) + 1
        env = _ENV_LINE.match(text, line) if text[line:start] in ("", "export ") else None
        m = env or (_ASSIGNED.match(text, start) if start >= end else None)
        if m and m.start() >= end:
            new = _env_line(m, found) if env else _assigned(m, found)
            edits.append((m.start(), m.end(), new))
            end = m.end()
    if edits:
        pieces, last = [], 0
        for a, b, new in edits:
            pieces += [text[last:a], new]
            last = b
        text = "".join([*pieces, text[last:]])
    return Redacted(text, len(found), tuple(found))


def _split_tokens(text: str, markers: list[str], found: list[str]) -> str:
    """Tokens whose literal ends before the token does, joined with the literals that follow."""
    edits: list[tuple[int, int, str]] = []
    chains: list[tuple[int, int]] = []
    for marker in markers:
        at = text.find(marker)
        while at >= 0:
            tail = _SPLIT_TAIL.match(text, at)
            open_at = text.rfind(tail.group(1), text.rfind("\n", 0, at) + 1, at) if tail else -1
            at = text.find(marker, at + 1)
            if open_at < 0 or any(a <= open_at < b for a, b in chains):
                continue
            spans: list[tuple[int, int]] = []
            pos = open_at
            while len(spans) < 8 and (piece := _PIECE.match(text, pos)):
                spans.append(piece.span(2))
                pos = piece.end()
            chains.append((open_at, pos))
            joined = "".join(text[a:b] for a, b in spans)
            for rule, _, pattern in _TOKENS:
                for m in pattern.finditer(joined) if len(spans) > 1 else ():
                    found.append(rule)
                    offset = 0
                    for a, b in spans:  # cut the token's part out of each literal it spans
                        lo, hi = max(m.start() - offset, 0), min(m.end() - offset, b - a)
                        if lo < hi:
                            edits.append((a + lo, a + hi, REDACTED if offset <= m.start() else ""))
                        offset += b - a
    limit = len(text)
    for a, b, new in sorted(set(edits), reverse=True):
        if b <= limit:  # two rules on one stretch: the first edit wins
            text, limit = text[:a] + new + text[b:], a
    return text


def _url_passwords(text: str, found: list[str]) -> str:
    """`scheme://user:password@` with a password that is not a placeholder (`user:pass`)."""
    at = text.find("://")
    while at >= 0:
        m = _URL_USERINFO.match(text, at + 3) if at and text[at - 1].isalnum() else None
        value = unquote(m.group(1)) if m else ""
        if m and not (_REFERENCE.match(value) or _PLACEHOLDER.match(value)):
            found.append("url-password")
            text = text[: m.start(1)] + REDACTED + text[m.end(1) :]
        at = text.find("://", at + 3)
    return text


def _auth_headers(text: str, low: str, found: list[str]) -> str:
    """Each `Authorization` header (found as a word, so the pattern runs a few times only)."""
    edits = []
    at = low.find("authorization")
    while at >= 0:
        m = _AUTH_HEADER.match(text, at)
        if m and (new := _auth_header(m, found)) != m.group(0):
            edits.append((m.start(), m.end(), new))
        at = low.find("authorization", at + 13)
    for a, b, new in reversed(edits):
        text = text[:a] + new + text[b:]
    return text


def _auth_header(m: re.Match[str], found: list[str]) -> str:
    """A literal credential after `Authorization:`: with a scheme, anything but a placeholder, a
    lower-case name (`Bearer access_token`) or Basic of a placeholder (`user:pass`); without
    one, a made-up value."""
    value, scheme = m.group("value"), (m.group("scheme") or "").lower()
    if _REFERENCE.match(value) or _PLACEHOLDER.match(value) or REDACTED in value:
        return m.group(0)
    if scheme == "basic":
        try:
            password = b64decode(value, validate=True).decode().partition(":")[2]
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            password = value
        if not password or _PLACEHOLDER.match(password):
            return m.group(0)
    if re.fullmatch(r"[a-z_.]+", value) if scheme else not _made_up(value):
        return m.group(0)
    found.append("authorization")
    return m.group(0)[: m.start("value") - m.start()] + REDACTED


def _env_line(m: re.Match[str], found: list[str]) -> str:
    """`NAME=value` at the start of a line, as `cat .env` prints it: there even a phrase or a
    filler word is the real value, so only references and empty values stay."""
    value, strength = m.group("value").strip(), _strength(m.group("name"))
    if value[:1] in "\"'" and len(value) > 1 and value.endswith(value[0]):
        value = value[1:-1]
    elif " #" in value:
        value = value.split(" #")[0].rstrip()
    if not value or REDACTED in value or _REFERENCE.match(value) or _CODE_VALUE.match(value):
        return m.group(0)
    if strength < 2 and not _is_secret(value, strength, bare=False):
        return m.group(0)
    found.append("env-line")
    at = m.group(0).index(value, m.start("value") - m.start())
    return m.group(0)[:at] + REDACTED + m.group(0)[at + len(value) :]


def _assigned(m: re.Match[str], found: list[str]) -> str:
    """`m` of `_ASSIGNED` with its value cut out if the name and the value make it a secret."""
    strength, whole, offset = _strength(m.group("name")), m.group(0), m.start()
    if not strength or (strength == 1 and len(whole) - len(m.group("name")) < 11):
        return whole  # `Key: "tool"`, the common case, decided at once
    if m.group("bare") is not None:
        if not _is_secret(m.group("bare"), strength, bare=True):
            return whole
        found.append("assignment")
        a, b = m.span("bare")
        return whole[: a - offset] + REDACTED + whole[b - offset :]
    # The first literal and any joined to it: one value, cut out of every piece.
    spans = [(m.start("quoted") - offset, m.end("quoted") - offset)]
    if m.group("more"):
        spans += [p.span(2) for p in _PIECE.finditer(whole, m.start("more") - offset)]
    value = "".join(whole[a:b] for a, b in spans)
    if ("f" in m.group("pre").lower() and "{" in value) or not _is_secret(value, strength, False):
        return whole
    found.append("assignment")
    for i, (a, b) in reversed(list(enumerate(spans))):
        whole = whole[:a] + (REDACTED if i == 0 else "") + whole[b:]
    return whole
