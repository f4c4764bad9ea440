from __future__ import annotations

from assistant.index.chunks import make_chunks
from assistant.index.symbols import Symbol

SOURCE = """import os

LIMIT = 3


class Uploader:
    retries = 2

    def upload(self, path):
        return os.path.exists(path)

    def retry(self):
        pass


def main():
    Uploader().upload("x")


main()
"""


def sym(name: str, kind: str, start: int, end: int, parent: str | None = None) -> Symbol:
    qualified = f"{parent}.{name}" if parent else name
    return Symbol(name, qualified, kind, f"{kind} {name}", "", start, end, start, parent)


SYMBOLS = [
    sym("Uploader", "class", 6, 13),
    sym("upload", "method", 9, 10, "Uploader"),
    sym("retry", "method", 12, 13, "Uploader"),
    sym("main", "function", 16, 17),
]


def test_every_nonblank_line_is_in_exactly_one_chunk() -> None:
    chunks = make_chunks("app.py", SOURCE, SYMBOLS)
    lines = SOURCE.split("\n")
    seen: dict[int, int] = {}
    for c in chunks:
        for n in range(c.start_line, c.end_line + 1):
            seen[n] = seen.get(n, 0) + 1
    for n, line in enumerate(lines, 1):
        if line.strip():
            assert seen.get(n) == 1, (n, line)


def test_container_keeps_only_its_own_lines() -> None:
    chunks = {c.qualified_name: c for c in make_chunks("app.py", SOURCE, SYMBOLS)}
    assert chunks["Uploader"].text == "class Uploader:\n    retries = 2"
    assert chunks["Uploader.upload"].start_line == 9
    assert chunks["Uploader.upload"].text.startswith("    def upload(self, path):")
    gap = [c for c in make_chunks("app.py", SOURCE, SYMBOLS) if c.kind == "code"]
    assert [(c.start_line, c.end_line) for c in gap] == [(1, 3), (20, 20)]
    assert gap[0].name == "app.py"


def test_long_body_is_split_with_overlap_and_header() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(150))
    text = f"def big():\n{body}\n"
    chunks = make_chunks("big.py", text, [sym("big", "function", 1, 151)], max_lines=60)
    assert len(chunks) == 3
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 60), (53, 112), (105, 151)]
    assert all(c.qualified_name == "big" for c in chunks)
    assert chunks[1].text.startswith("function big\n")  # the header is repeated
    assert all(c.symbol_start == 1 for c in chunks)


def test_chunk_keys_are_stable() -> None:
    a = make_chunks("app.py", SOURCE, SYMBOLS)
    b = make_chunks("app.py", SOURCE, SYMBOLS)
    assert [c.key for c in a] == [c.key for c in b]
    assert len({c.key for c in a}) == len(a)
