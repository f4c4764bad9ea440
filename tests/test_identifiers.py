from __future__ import annotations

import pytest

from assistant.index.identifiers import index_terms, query_terms, split_identifier, synonyms


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        ("parseHTTPResponse2", ("parse", "http", "response", "2")),
        ("retry_failed_uploads", ("retry", "failed", "uploads")),
        ("XMLHttpRequest", ("xml", "http", "request")),
        ("__init__", ("init",)),
        ("sha256sum", ("sha", "256", "sum")),
        ("MAX_RETRIES", ("max", "retries")),
    ],
)
def test_split(word: str, parts: tuple[str, ...]) -> None:
    assert split_identifier(word) == parts


def test_index_terms_keep_whole_identifier_and_stemmed_parts() -> None:
    terms = index_terms("def retryFailedUploads(self): pass")
    assert "retryfaileduploads" in terms
    assert {"retri", "fail", "upload"} <= set(terms)


def test_query_and_code_meet_through_stemming() -> None:
    terms, _ = query_terms("where do we retry failed uploads")
    assert terms == ["retri", "fail", "upload"]  # stop words gone
    assert set(terms) <= set(index_terms("def retry_failed_upload(): ..."))
    _, extra = query_terms("failed")
    assert "failur" in extra  # "failure" is reached through the synonym table


@pytest.mark.parametrize(
    ("a", "b"),
    [("rm", "delet"), ("cfg", "config"), ("auth", "authent"), ("init", "initi"), ("err", "error")],
)
def test_synonyms(a: str, b: str) -> None:
    assert b in synonyms(a) or a in synonyms(b)
    _, extra = query_terms(f"{a} the thing")
    assert b in extra
