"""The citation checker judged on labelled answers: tests/data/citations.jsonl.

Each answer there was written for this test, with the citations it makes (as written, and the
number of the sent source each points into, or null) and whether it is grounded: host:port, IPs,
versions, URLs, list literals, indexes, slices and times beside (or instead of) real
`path:line`, `path:line-line` and `[n]` citations, Windows and absolute paths, bare file names.
Prose is full of things shaped like citations; calling one a citation marks a correct answer
"not grounded" (or a list literal makes an uncited one look grounded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant.chat.citations import Source, check, map_citations, parse_citations

DATA = Path(__file__).parent / "data" / "citations.jsonl"
CASES: list[dict[str, Any]] = [json.loads(line) for line in DATA.read_text().splitlines()]

SENT = [
    Source(1, "uploads/client.py", "UploadClient.upload_file", "method", 9, 12, 7, "named", 40,
           'def upload_file(self, path):\n    """Send one file to the bucket."""\n'
           '    with open(path, "rb") as fh:\n        return self._post(fh.read())'),
    Source(2, "web/format.js", "formatPrice", "function", 2, 4, 9, "search", 20,
           "export function formatPrice(cents) {\n  return (cents / 100).toFixed(2);\n}"),
    Source(3, "src/my.pkg/v2.0/settings.py", "settings", "module", 1, 6, 11, "search", 40,
           'HOST = "127.0.0.1"\nPORT = 8080\nMIRROR = "https://example.com:443/simple"\n'
           'NUMPY = "1.26.4"\nRETRY_DELAYS = [1, 2, 4]\nOPENS_AT = "10:30"'),
    Source(4, "Makefile", "build", "target", 1, 5, 12, "search", 10,
           "build:\n\tpython -m build\n\ntest:\n\tpytest -q"),
    Source(5, "pkg/__init__.py", "pkg", "module", 1, 5, 13, "search", 10,
           'from pkg.core import run\n\n__all__ = ["run"]\n\nrun.__doc__ = "Runs."'),
    Source(6, "lib/__init__.py", "lib", "module", 1, 2, 14, "search", 10,
           '"""Helpers."""\nVERSION = "1.2"'),
]  # fmt: skip


def test_the_labelled_set_is_large_and_covers_each_kind_of_look_alike() -> None:
    assert len(CASES) >= 50
    kinds = {c["kind"] for c in CASES}
    look_alikes = {"ip:port", "host:port", "version", "url", "list literal", "index", "slice"}
    real = {"path:line", "path:line-line", "[n]", "file name", "windows path", "code span"}
    assert look_alikes | real | {"time", "dirs and dots", "fenced code"} <= kinds
    assert sum(c["grounded"] for c in CASES) >= 20 and sum(not c["grounded"] for c in CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}" for i, c in enumerate(CASES)])
def test_each_labelled_answer_gets_its_citations_and_verdict(case: dict[str, Any]) -> None:
    cites = map_citations(case["answer"], SENT)
    assert [[c.written, c.source] for c in cites] == case["cites"]
    verdict = check(case["answer"], SENT, "how are files uploaded?")
    assert verdict.grounded is case["grounded"], verdict.describe()


def test_a_file_cited_by_name_alone_or_by_its_full_path_opens_the_sent_file() -> None:
    answer = "See client.py:10, C:\\w\\uploads\\client.py:11, Makefile:2 and __init__.py:2."
    cites = map_citations(answer, SENT)
    # `__init__.py:2` is in both sent `__init__.py`s: the first sent that holds the line.
    assert [(c.location, c.source) for c in cites] == [
        ("uploads/client.py:10", 1),
        ("uploads/client.py:11", 1),
        ("Makefile:2", 4),
        ("pkg/__init__.py:2", 5),
    ]
    # Without the sources, a name with no extension is no file; one with an extension is.
    assert parse_citations(answer) == [
        ("client.py", 10, 10),
        ("C:\\w\\uploads\\client.py", 11, 11),
        ("__init__.py", 2, 2),
    ]
