"""The one check every path passes before its text may reach an index or a prompt.

Two kinds of rule, both gitignore syntax, matched against the path relative to the repository:
*private* files (keys, `.env`, secrets: built-in defaults plus `index.private`) and *excluded*
files (`.assistignore` plus `index.exclude`). Neither is indexed; neither is ever sent to a model.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from pathlib import Path

import pathspec

from assistant.errors import AssistError

DEFAULT_PRIVATE = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.crt",
    "*.cer",
    "*.der",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    "*.asc",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.ppk",
    "secrets/",
    "secret/",
    ".secrets/",
    "*.secret",
    "*.secrets",
    ".ssh/",
    ".aws/",
    ".gnupg/",
    ".docker/config.json",
    ".kube/config",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "credentials.json",
    "credentials.yml",
    "credentials.yaml",
    "*credentials*.json",
    "service-account*.json",
    "*.tfstate",
    "*.tfstate.*",
    "terraform.tfvars",
)
ALWAYS_EXCLUDED = (".git/", ".assist/", ".hg/", ".svn/")


class PathRules:
    """Which repository paths may be indexed and shown to a model."""

    def __init__(
        self,
        root: Path,
        *,
        private: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> None:
        self.root = root
        assistignore = root / ".assistignore"
        ignore_lines: list[str] = list(exclude)
        if assistignore.is_file():
            # An unreadable .assistignore excludes nothing more; the private rules still hold.
            with contextlib.suppress(OSError, UnicodeDecodeError):
                ignore_lines += assistignore.read_text(encoding="utf-8").splitlines()
        private_lines = [*DEFAULT_PRIVATE, *private]
        self._private = pathspec.GitIgnoreSpec.from_lines(private_lines)
        self._excluded = pathspec.GitIgnoreSpec.from_lines([*ALWAYS_EXCLUDED, *ignore_lines])
        digest = hashlib.sha256("\n".join([*private_lines, "--", *ignore_lines]).encode())
        self.fingerprint = digest.hexdigest()[:16]
        """Changes whenever a rule changes, so the index knows to re-check every stored path."""

    def is_private(self, rel: str) -> bool:
        return self._private.match_file(rel)

    def is_excluded(self, rel: str) -> bool:
        return self._excluded.match_file(rel)

    def is_private_outside(self, path: str | Path) -> bool:
        """For a file outside the repository: whether a privacy rule matches its name or any
        trailing part of its path (`~/other/.env`, `keys/deploy.pem`)."""
        parts = Path(path).parts
        return any(self.is_private("/".join(parts[i:])) for i in range(len(parts)))

    def allows(self, rel: str) -> bool:
        return not (self.is_private(rel) or self.is_excluded(rel))

    def reason(self, rel: str) -> str | None:
        if self.is_private(rel):
            return "private (matches a privacy rule)"
        if self.is_excluded(rel):
            return "excluded (.assistignore or index.exclude)"
        return None

    def relative(self, path: str | Path) -> str:
        """A user-given path as a repository-relative one, refusing anything outside."""
        p = Path(path)
        full = (p if p.is_absolute() else self.root / p).resolve()
        root = self.root.resolve()
        if full != root and root not in full.parents:
            raise AssistError(f"{path}: outside the repository {root}", "use a path inside it")
        return full.relative_to(root).as_posix()

    def check(self, path: str | Path) -> str:
        """Guard for every path whose text is about to enter a prompt; returns it relative."""
        rel = self.relative(path)
        why = self.reason(rel)
        if why:
            raise AssistError(
                f"{rel}: {why}; its content is never sent to a model",
                "remove the rule from .assistignore / config if this is wrong",
            )
        return rel
