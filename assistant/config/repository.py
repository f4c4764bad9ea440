"""What a repository's own files may set, and how far.

A cloned repository is untrusted input; its `.assist/config.toml` and `[tool.assist]` may only
narrow what assist does. Everything not listed here is the user's: their file, the environment
or the command line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("assistant.config")

Repo = Literal["any", "add"] | tuple[Literal["max"], float] | tuple[Literal["only"], object]
REPOSITORY_MAY: dict[tuple[str, str], Repo] = {
    ("index", "exclude"): "any",
    ("index", "private"): "add",
    ("index", "text_extensions"): "any",
    ("index", "max_file_size"): ("max", 10_000_000),
    ("index", "max_line_length"): ("max", 100_000),
    ("index", "chunk_lines"): ("max", 400),
    ("index", "vectors"): "any",
    ("search", "k"): ("max", 100),
    ("search", "per_file"): ("max", 100),
    ("search", "mode"): "any",
    ("search", "fusion"): "any",
    ("completion", "prefix_tokens"): ("max", 4096),
    ("completion", "suffix_tokens"): ("max", 2048),
    ("completion", "context_tokens"): ("max", 2048),
    ("completion", "max_tokens"): ("max", 256),
    ("completion", "multiline"): "any",
    ("completion", "emulation"): "any",
    ("docstring", "style"): "any",
    ("docstring", "fail_under"): "any",
    ("docstring", "hook_fail_on_change"): ("only", True),
    ("docstring", "max_tokens"): ("max", 512),
    ("chat", "context_tokens"): ("max", 8192),
    ("chat", "k"): ("max", 50),
    ("chat", "history_turns"): ("max", 20),
    ("chat", "max_tokens"): ("max", 2048),
    ("agent", "max_steps"): ("max", 50),
    ("agent", "output_limit"): ("max", 100_000),
    ("agent", "auto_approve"): ("only", False),
}
"""What a repository's own files (`.assist/config.toml`, `[tool.assist]`) may set, and how far.
A cloned repository is untrusted: it may narrow what assist does (more privacy rules, a docstring
style, smaller windows) but never choose a file to load or run, a server, a process lifetime,
thread counts or timeouts; those come only from the user file, the environment or the command
line. "add": a list it may only add to (a `!pattern` is dropped); ("max", n): a number it may set
up to n; ("only", v): a switch it may set only to v (the safe way)."""


def from_repository_file(
    section: str, key: str, value: Any, current: Any, origin: str, user_file: Path
) -> tuple[bool, Any]:
    """(keep, value) for a repository's `section.key = value`: what it may not set is ignored
    with a warning naming where to put it instead."""
    rule = REPOSITORY_MAY.get((section, key))
    if rule is None:
        log.warning(
            "%s: ignoring %s.%s: a repository's files may not set it; put it in %s, "
            "the environment or the command line",
            origin, section, key, user_file,
        )  # fmt: skip
        return False, None
    if rule == "add":
        dropped = [v for v in value if v.lstrip().startswith("!")]
        if dropped:
            log.warning(
                "%s: ignoring %s in %s.%s: a repository may only add privacy rules",
                origin, ", ".join(dropped), section, key,
            )  # fmt: skip
        return True, (*getattr(current, key), *(v for v in value if v not in dropped))
    if isinstance(rule, tuple) and rule[0] == "max" and value > rule[1]:
        log.warning("%s: %s.%s = %s lowered to %s, the most a repository may set",
                    origin, section, key, value, rule[1])  # fmt: skip
        return True, type(value)(rule[1])
    if isinstance(rule, tuple) and rule[0] == "only" and value != rule[1]:
        log.warning("%s: ignoring %s.%s = %s: only you may set it that way",
                    origin, section, key, value)  # fmt: skip
        return False, None
    return True, value
