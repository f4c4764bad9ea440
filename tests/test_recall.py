"""Suggestions recalled from known text: what followed the typed tokens where they were written."""

from __future__ import annotations

from assistant.completion.recall import recall

SOURCE = """\
class Response:
    def __init__(self):
        self.headers = CaseInsensitiveDict()
        self.status_code = None
        self.encoding = None

    def json(self, **kwargs):
        if not self.encoding and self.content:
            return complexjson.loads(self.content, **kwargs)
        return complexjson.loads(self.text, **kwargs)

    def close(self):
        self.raw.close()
"""


def at_end(text: str, typed: str) -> tuple[str, int]:
    """`text` with a new line holding `typed` appended, and the cursor after it."""
    doc = text + "    " + typed
    return doc, len(doc)


def test_the_longest_typed_run_found_elsewhere_is_continued() -> None:
    doc, cursor = at_end(SOURCE, "self.headers = ")
    found = recall(doc, cursor)
    assert found is not None and found.text == "CaseInsensitiveDict()"
    assert found.source == "file" and found.run >= 3 and found.line == 2


def test_the_continuation_most_places_share_wins() -> None:
    doc, cursor = at_end(SOURCE, "return complexjson.")
    found = recall(doc, cursor)
    assert found is not None and found.text.startswith("loads(self.")
    # `if not self.` twice said `encoding` and `content` once each: the nearer one.
    doc, cursor = at_end(SOURCE + "        if not self.encoding:\n", "if not self.")
    found = recall(doc, cursor)
    assert found is not None and found.text == "encoding:"  # two places of three say so


def test_a_half_typed_word_is_finished_when_no_whole_word_matches() -> None:
    doc, cursor = at_end(SOURCE, "self.enc")
    found = recall(doc, cursor)
    assert found is not None and found.text.startswith("oding")


def test_nothing_typed_or_nothing_known_gives_nothing() -> None:
    doc, cursor = at_end(SOURCE, "")
    assert recall(doc, cursor) is None
    doc, cursor = at_end(SOURCE, "zebra_crossing")
    assert recall(doc, cursor) is None


def test_the_cursors_own_line_is_never_the_source() -> None:
    doc = "x = 1\nvalue = compute(alpha, beta)"
    cursor = doc.index("compute(") + len("compute(")
    assert recall(doc, cursor) is None  # only the line being typed says what follows


def test_context_from_other_files_when_the_file_has_nothing() -> None:
    chunk = "def area_of_circle(radius: float) -> float:\n    return math.pi * radius ** 2\n"
    doc = "import shapes\n\nx = area_of_circle("
    found = recall(doc, len(doc), [chunk])
    assert found is not None and found.source == "context"
    assert found.text == "radius: float) -> float:"


def test_a_continuation_the_line_already_has_is_no_answer() -> None:
    doc, cursor = at_end(SOURCE, "self.raw.")
    assert recall(doc, cursor, suffix_line="close()") is None
    found = recall(doc, cursor)
    assert found is not None and found.text == "close()"
