"""The one check every path passes before its text may reach an index or a prompt.

Two kinds of rule, both gitignore syntax: *private* files (keys, `.env`, secrets: built-in
defaults plus `index.private`) and *excluded* files (`.assistignore` plus `index.exclude`).
Neither is indexed; neither is ever sent to a model. Both match in any letter case (on macOS
and Windows `Secrets/` is the same folder as `secrets/`; elsewhere the stricter reading is the
safe one).

A path is judged by every name it goes by: as asked, after each symlink it passes through, and
where it finally leads. A link named `notes/env.txt` that points at `.env.local` is private;
so is `keys/deploy.pem` seen from outside the repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

from assistant.errors import AssistError

DEFAULT_PRIVATE = (
    # Environment and shell secrets.
    ".env", ".env.*", "*.env", ".envrc", ".netrc", "_netrc", ".pgpass", ".my.cnf",
    ".git-credentials", ".htpasswd", ".npmrc", ".pypirc", ".gem/credentials",
    # Keys and certificates.
    "*.pem", "*.key", "*.crt", "*.cer", "*.der", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "*.kdbx", "*.gpg", "*.asc", "*.ppk", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    # Folders that hold nothing else.
    "secrets/", "secret/", ".secrets/", "*.secret", "*.secrets", ".ssh/", ".aws/", ".gnupg/",
    ".azure/", ".gcloud/", ".config/gcloud/",
    # Tool credentials.
    ".docker/config.json", ".kube/config", "kubeconfig", "*.kubeconfig", ".cargo/credentials",
    ".cargo/credentials.toml", "credentials.json", "credentials.yml", "credentials.yaml",
    "*credentials*.json", "client_secret*.json", "service-account*.json", "*.tfstate",
    "*.tfstate.*", "terraform.tfvars", "*.auto.tfvars", "secrets.yml", "secrets.yaml",
    "secrets.json", "secrets.toml", ".vault-token",
)  # fmt: skip
ALWAYS_EXCLUDED = (".git/", ".assist/", ".hg/", ".svn/")
MAX_LINKS = 40
"""Symlinks followed in one path before it counts as a loop (Linux's own limit)."""


@dataclass(frozen=True)
class Resolved:
    """A path and every name it goes by."""

    real: Path
    """Where it leads: every symlink followed (the path need not exist)."""
    rel: str | None
    """`real` relative to the repository root (forward slashes, "." for the root); None when
    outside it."""
    names: tuple[str, ...]
    """The path as asked, after each symlink hop, and as resolved: relative to the root where
    inside it, absolute otherwise."""


class PathRules:
    """Which paths may be indexed and shown to a model."""

    def __init__(
        self,
        root: Path,
        *,
        private: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> None:
        self.root = Path(os.path.realpath(root))
        assistignore = self.root / ".assistignore"
        ignore_lines: list[str] = list(exclude)
        if assistignore.is_file():
            # An unreadable .assistignore excludes nothing more; the private rules still hold.
            with contextlib.suppress(OSError, UnicodeDecodeError):
                ignore_lines += assistignore.read_text(encoding="utf-8").splitlines()
        private_lines = [*DEFAULT_PRIVATE, *private]
        self._tools = _spec(ALWAYS_EXCLUDED)
        self._private = _spec(private_lines)
        self._excluded = _spec(ignore_lines)
        digest = hashlib.sha256("\n".join([*private_lines, "--", *ignore_lines]).encode())
        self.fingerprint = digest.hexdigest()[:16]
        """Changes whenever a rule changes, so the index knows to re-check every stored path."""

    # -- names -----------------------------------------------------------------------------

    def is_private(self, rel: str) -> bool:
        folded = rel.casefold()
        return self._tools.match_file(folded) or self._private.match_file(folded)

    def is_excluded(self, rel: str) -> bool:
        return self._excluded.match_file(rel.casefold())

    def reason(self, rel: str) -> str | None:
        """Why a repository-relative name is refused, or None."""
        if self._tools.match_file(rel.casefold()):
            return "a version-control or assist directory"
        if self.is_private(rel):
            return "private (matches a privacy rule)"
        if self.is_excluded(rel):
            return "excluded (.assistignore or index.exclude)"
        return None

    def allows(self, rel: str) -> bool:
        """The name-level check, for paths the index already holds (every name of which was
        checked when it was indexed)."""
        return self.reason(rel) is None

    def _outside_reason(self, path: str) -> str | None:
        """For a file outside the repository: whether a privacy rule matches its name or any
        trailing part of its path (`~/other/.env`, `keys/deploy.pem`)."""
        parts = Path(path).parts
        for i in range(len(parts)):
            if self.is_private("/".join(parts[i:])):
                return "private (matches a privacy rule)"
        return None

    # -- paths -----------------------------------------------------------------------------

    def resolve(self, path: str | os.PathLike[str]) -> Resolved:
        """`path` (relative to the root, or absolute) with every name it goes by."""
        asked = Path(path)
        full = asked if asked.is_absolute() else self.root / asked
        real, hops = _follow(Path(os.path.abspath(full)))
        names: list[str] = []
        for candidate in (Path(os.path.normpath(full)), *hops, real):
            name = self._name(candidate)
            if name not in names:
                names.append(name)
        return Resolved(real, self._relative_or_none(real), tuple(names))

    def _relative_or_none(self, path: Path) -> str | None:
        if path == self.root:
            return "."
        if path.parts[: len(self.root.parts)] == self.root.parts:
            return path.relative_to(self.root).as_posix()
        return None

    def _name(self, path: Path) -> str:
        rel = self._relative_or_none(path)
        return str(path) if rel is None else rel

    def refusal(self, resolved: Resolved) -> str | None:
        """Why text at this path may not reach a model, checking every name it goes by."""
        for name in resolved.names:
            if name == ".":
                continue
            why = self._outside_reason(name) if name.startswith("/") else self.reason(name)
            if why is None and not name.startswith("/"):
                why = self.reason(name + "/")  # a directory named by a folder rule
            if why:
                shown = "" if name == resolved.names[0] else f" (through {name})"
                return why + shown
        return None

    def check(self, path: str | os.PathLike[str], *, inside: bool = True) -> Resolved:
        """Guard for a path whose text is about to be read for a model or an index.

        Refuses a private or excluded path by any of its names and, with `inside`, one that
        leads out of the repository.
        """
        resolved = self.resolve(path)
        if inside and resolved.rel is None:
            raise AssistError(f"{path}: outside the repository {self.root}", "use a path inside it")
        why = self.refusal(resolved)
        if why:
            shown = resolved.rel if resolved.rel not in (None, ".") else str(path)
            raise AssistError(
                f"{shown}: {why}; its content is never sent to a model",
                "remove the rule from .assistignore / config if this is wrong",
            )
        return resolved

    def relative(self, path: str | os.PathLike[str]) -> str:
        """A user-given path as a repository-relative one, refusing anything outside."""
        resolved = self.resolve(path)
        if resolved.rel is None:
            raise AssistError(f"{path}: outside the repository {self.root}", "use a path inside it")
        return resolved.rel


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(line.casefold() for line in lines)


def _follow(path: Path) -> tuple[Path, list[Path]]:
    """`path` with every symlink resolved, and the full path after each hop.

    Like `os.path.realpath`, but it records where each link led, so rules can judge every name
    on the way. A loop, or more than MAX_LINKS links, stops following: the path is then judged
    by the names seen so far and refused by callers as unreadable anyway.
    """
    pending = list(path.parts[1:])
    resolved = Path(path.parts[0])
    hops: list[Path] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = resolved.parent
            continue
        candidate = resolved / part
        try:
            target = os.readlink(candidate)
        except OSError:  # not a link, or not there: take the name as it is
            resolved = candidate
            continue
        links += 1
        if links > MAX_LINKS:
            return Path(os.path.normpath(candidate.joinpath(*pending))), hops
        tparts = Path(target).parts
        if Path(target).is_absolute():
            resolved = Path(tparts[0])
            tparts = tparts[1:]
        pending = [*tparts, *pending]
        hops.append(Path(os.path.normpath(resolved.joinpath(*pending))))
    return resolved, hops
