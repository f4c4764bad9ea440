"""Is a generated doc worth committing? The checks a reviewer would make, before anything is
written: no talk about the task, no code echoed back, no loops, a sentence that ends, and the
project's sections with the real parameter names when the project writes them.

Each check names what it found, so a refused doc is reported with a reason rather than written.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

from assistant.docstrings.conventions import DocParts, Site

_META = re.compile(
    r"^(?:here(?:'s| is)|sure\b|certainly\b|okay\b|ok,|as an ai|i (?:have|will|would|can|'ll|'m)"
    r"|note:|in this (?:code|snippet|function)|the (?:code|snippet) (?:above|below)"
    r"|(?:the|this) (?:code|snippet|implementation)\b"
    r"|this is an? (?:standard|simple|basic|common)\b)"
    r"|\b(?:documentation|docstring|doc comment|comment) (?:is|was|are) (?:missing|not provided"
    r"|empty|needed)|\bmore concise version\b|\bthe (?:above|following|given) (?:code|function"
    r"|snippet)\b|\bcode snippet\b|\bwrite a docstring\b|\bdocstring for\b",
    re.I,
)
_REVIEW = re.compile(
    r"\b(?:is not (?:correct|optimal|recommended|efficient)|not a (?:good|recommended) way"
    r"|there is a (?:bug|mistake|typo)|should be (?:refactored|rewritten|improved)"
    r"|can be (?:improved|optimi[sz]ed|slow)|is (?:a bit )?(?:complex|confusing|inefficient))\b",
    re.I,
)
_CODE_START = re.compile(
    r"^(?:async\s+)?(?:def|class|function|func|fn|pub\s+fn|public|private|protected|static"
    r"|const|let|var|#include)\s+[\w.*&]+\s*[(:=<{]",
    re.I,
)
_CODE_CHARS = set("(){}[];=<>")
_WORD = re.compile(r"[a-z0-9_']+")


def problem(parts: DocParts, site: Site, *, ended: bool, sections: bool) -> str | None:
    """Why this doc should not be written, or None when it passes."""
    summary = parts.summary
    if _META.search(summary):
        return "it talks about the task instead of the code"
    if _REVIEW.search(summary):
        return "it reviews the code instead of describing it"
    if echoes_code(summary, site):
        return "it repeats code instead of describing it"
    if repeats(summary):
        return "it repeats itself"
    # A sentence of several words that stops without its end mark, where the model was
    # stopped by its token limit, was cut. (One word cut short is a name, kept.)
    if parts.open_ended and not ended and len(summary.split()) >= 6:
        return "it was cut off mid-sentence"
    missing = missing_params(parts, site) if sections else []
    if missing:
        return f"no description of {', '.join(missing)} (the project documents parameters)"
    return None


def echoes_code(text: str, site: Site) -> bool:
    stripped = text.strip()
    if _CODE_START.match(stripped):
        return True
    signature = site.symbol.signature.strip()
    if len(signature) > 12 and signature[: max(12, len(signature) // 2)] in stripped:
        return True
    if "(self" in stripped or "):" in stripped or "=>" in stripped or "->" in stripped:
        return True
    marks = sum(1 for ch in stripped if ch in _CODE_CHARS)
    return len(stripped) >= 20 and marks / len(stripped) > 0.06


def repeats(text: str) -> bool:
    """A loop: a phrase said three times, a word three times in a row, or text that
    compresses far better than prose does."""
    sentences = [" ".join(_WORD.findall(x.lower())) for x in re.split(r"(?<=[.!?])\s+", text)]
    sentences = [x for x in sentences if len(x.split()) >= 3]
    if len(sentences) != len(set(sentences)):
        return True  # the same sentence twice
    words = _WORD.findall(text.lower())
    if any(a == b == c for a, b, c in zip(words, words[1:], words[2:], strict=False)):
        return True
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    if trigrams and trigrams.most_common(1)[0][1] >= 3:
        return True
    data = text.encode()
    return len(data) > 160 and len(zlib.compress(data)) / len(data) < 0.38


def missing_params(parts: DocParts, site: Site) -> list[str]:
    """Parameters (not `self`/`cls`) that have no description."""
    described = {name for name, text in parts.params if text}
    return [
        p.name
        for p in site.params
        if p.name.lstrip("*") not in ("self", "cls") and p.name not in described
    ]
