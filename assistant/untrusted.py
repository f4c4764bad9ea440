"""Text from a repository or a model, made safe to show on a terminal.

Such text may hold escape sequences that rewrite what a terminal shows (hide part of a command,
fake an approval prompt), carriage returns, or bidi overrides that reorder characters; here
every control and format character appears escaped, so what a person reads is what is there.
"""

from __future__ import annotations


def visible(text: str) -> str:
    """`text` with control and format characters escaped (newlines and tabs kept)."""
    return "".join(
        c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )
