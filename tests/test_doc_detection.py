"""Doc detection checked against interrogate, the docstring-coverage tool Python projects use:
for every function and class both see, documented or not must agree (Python's own rule: what
`__doc__` would be, blank counting as none). Which symbols count differs on purpose: assist
leaves out everything local to a function, classes and their methods alike, where interrogate's
`--ignore-nested-*` flags keep the methods of a class defined in a function."""

from __future__ import annotations

from pathlib import Path

from interrogate import config, coverage

from assistant.docstrings import generate
from assistant.docstrings.generate import documentable
from assistant.index.symbols import extract_symbols

ROOT = Path(__file__).resolve().parent.parent

TRICKY = '''
def plain():
    """Plain."""


def f_string():
    f"""Not a doc: {plain}."""


def as_bytes():
    b"""Not a doc."""


def joined():
    ("Implicitly " "joined.")


def empty():
    """"""


def blank():
    """   """


async def later():
    """Async."""


@property
def decorated(self):
    """Decorated."""


class Outer:
    "Single quotes."

    class Inner:
        def method(self):
            r"""Raw."""

    def after(self):
        return 1


def factory():
    class Local:
        def m(self):
            """Local method."""

    def helper():
        """Helper."""

    return Local, helper


def commented():
    # a comment first
    """Still the doc."""


def statement_first():
    x = 1
    """Not a doc: not the first statement."""
'''


def interrogate_nodes(path: Path) -> dict[tuple[str, int], bool]:
    conf = config.InterrogateConfig()
    result = coverage.InterrogateCoverage(paths=[str(path)], conf=conf).get_coverage()
    return {
        (node.name, node.lineno): node.covered
        for file_result in result.file_results
        for node in file_result.nodes
        if node.node_type in ("FunctionDef", "AsyncFunctionDef", "ClassDef")
    }


def ours(path: Path) -> dict[tuple[str, int], bool]:
    symbols = extract_symbols(path.read_bytes(), "python")
    return {(s.name, s.def_line): bool(s.doc) for s in symbols if s.kind != "constant"}


def test_tricky_forms_agree_with_interrogate(tmp_path: Path) -> None:
    source = tmp_path / "tricky.py"
    source.write_text(TRICKY)
    theirs, mine = interrogate_nodes(source), ours(source)
    assert set(theirs) <= set(mine)
    assert {k: mine[k] for k in theirs} == theirs
    by_name = {name: covered for (name, _), covered in theirs.items()}
    assert by_name["f_string"] is False and by_name["as_bytes"] is False
    assert by_name["joined"] is True and by_name["commented"] is True
    assert by_name["empty"] is False and by_name["blank"] is False
    counted = {s.qualified_name for s in documentable(extract_symbols(TRICKY.encode(), "python"))}
    assert "factory" in counted and not counted & {"factory.Local", "factory.Local.m",
                                                    "factory.helper"}  # fmt: skip


def test_this_project_agrees_with_interrogate_symbol_by_symbol() -> None:
    files = sorted((ROOT / "assistant").rglob("*.py")) + sorted((ROOT / "lsp").rglob("*.py"))
    compared = 0
    for path in files:
        theirs, mine = interrogate_nodes(path), ours(path)
        missing = set(theirs) - set(mine)
        assert not missing, (path, missing)
        disagree = {k: (theirs[k], mine[k]) for k in theirs if theirs[k] != mine[k]}
        assert not disagree, (path, disagree)
        compared += len(theirs)
    assert compared > 500


JAVA = """public class T {
    /** Touching. */
    public void touching() {}

    /** Blank line below. */

    public void blank() {}

    /** Before a line comment. */
    // a note
    public void lineComment() {}

    /* Not a doc block. */
    public void plainBlock() {}

    /** With an annotation. */
    @Deprecated
    public void annotated() {}

    public void none() {}
}
"""


# What javadoc (OpenJDK 17) makes of each method above: documented or not. Recorded once from
# its HTML output rather than run here, since no JDK is installed by `make setup`.
JAVADOC = {
    "T.touching": True,
    "T.blank": True,
    "T.lineComment": True,
    "T.plainBlock": False,
    "T.annotated": True,
    "T.none": False,
}


def test_java_doc_detection_agrees_with_javadoc() -> None:
    report = generate.plan("T.java", JAVA, "java")
    undocumented = {s.qualified_name for s in report.targets}
    assert undocumented == {"T"} | {name for name, documented in JAVADOC.items() if not documented}
