"""The checks a generated doc passes before it is written (assistant/docstrings/quality.py),
with the texts real small models wrote in the issue's tries, and parameter sections completed
by the model itself on a tiny generated GGUF."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.config import ModelSettings
from assistant.docstrings import generate, quality
from assistant.docstrings.conventions import DocParts, Param, Site
from assistant.index.symbols import extract_symbols
from assistant.llm.local import LocalModel
from assistant.repo.privacy import PathRules
from assistant.repo.vetted import grant


def site_for(source: str, name: str, params: tuple[str, ...]) -> Site:
    symbol = next(s for s in extract_symbols(source.encode(), "python") if s.name == name)
    return Site(symbol, "python", 1, None, "    ", tuple(Param(p) for p in params), True)


SOURCE = "def __init__(self, name: str, age: int) -> None:\n    self.name = name\n"
SITE = site_for(SOURCE, "__init__", ("self", "name", "age"))


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        ("The documentation is missing for this function.", "talks about the task"),
        ("Len here's a more concise version:", "talks about the task"),
        ("Here is a docstring for the function.", "talks about the task"),
        ("Def __init__(self, name: str, age: int) -> None:", "repeats code"),
        ("Return self.name if self.age > 0 else {}; x = [1, 2];", "repeats code"),
        ("Returns the value of the value of the value of the value.", "repeats itself"),
        ("Sets the name name name.", "repeats itself"),
    ],
)
def test_what_a_reviewer_would_refuse(summary: str, reason: str) -> None:
    found = quality.problem(DocParts(summary), SITE, ended=True, sections=False)
    assert found is not None and reason in found


def test_a_sentence_cut_by_the_token_limit_is_refused_one_cut_word_is_not() -> None:
    cut = DocParts("Create a person from the name and the age that the caller.", open_ended=True)
    assert quality.problem(cut, SITE, ended=False, sections=False) == (
        "it was cut off mid-sentence"
    )
    assert quality.problem(cut, SITE, ended=True, sections=False) is None  # it stopped itself
    assert quality.problem(DocParts("Aaaa.", open_ended=True), SITE, ended=False,
                           sections=False) is None  # fmt: skip


def test_a_project_that_documents_parameters_gets_every_one() -> None:
    good = DocParts("Create a person.", (("name", "Full name."), ("age", "Age in years.")))
    assert quality.problem(good, SITE, ended=True, sections=True) is None
    half = DocParts("Create a person.", (("name", "Full name."),))
    assert quality.problem(half, SITE, ended=True, sections=True) == (
        "no description of age (the project documents parameters)"
    )
    assert quality.problem(half, SITE, ended=True, sections=False) is None


def test_plain_good_docs_pass() -> None:
    for summary in (
        "Create a person with a name and an age.",
        "Return the sum of a and b.",
        "Parse the config file and fill in defaults for missing keys.",
    ):
        assert quality.problem(DocParts(summary), SITE, ended=True, sections=False) is None


@pytest.fixture(scope="module")
def fim_model(make_gguf: Callable[..., Path]) -> LocalModel:
    return LocalModel.load(
        make_gguf(family="qwen", metadata=True, favorite="a"), ModelSettings(temperature=0.0)
    )


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("google", '    """Aaaaaaaa.\n\n    Args:\n        a: Aa{7,}\\.\n        b: Aa{7,}\\.\n'),
        ("numpy", '    """Aaaaaaaa.\n\n    Parameters\n    ----------\n    a\n        Aa{7,}\\.\n'),
        ("rest", '    """Aaaaaaaa.\n\n    :param a: Aa{7,}\\.\n    :param b: Aa{7,}\\.\n'),
    ],
)
def test_missing_parameters_are_asked_for_in_the_projects_sections(
    fim_model: LocalModel, style: str, expected: str
) -> None:
    import re

    text = "def add(a, b):\n    return a + b\n"
    here = Path(__file__).parent  # the permit a workspace grants, without one
    permit = grant(PathRules(here), here / "m.py")
    report = generate.document_text(fim_model, "m.py", text, "python", style=style,  # type: ignore[arg-type]
                                     max_tokens=8, sections=True, permit=permit)  # fmt: skip
    assert report.changed, report.outcomes
    assert re.search(expected, report.new), report.new
    # Without sections wanted, the summary alone is written, as before.
    plain = generate.document_text(fim_model, "m.py", text, "python", max_tokens=8, permit=permit)
    assert plain.new == 'def add(a, b):\n    """Aaaaaaaa."""\n    return a + b\n'


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        ("The code is a bit complex and uses a recursive function.", "talks about the task"),
        ("This is a standard Go function that checks if a value is aborted.", "talks about"),
        ("Returns the node. It's not a recommended way to implement it.", "reviews the code"),
        ("Creates an argument of a type. Creates an argument of a type.", "repeats itself"),
    ],
)
def test_what_the_default_model_wrote_on_the_benchmark(summary: str, reason: str) -> None:
    found = quality.problem(DocParts(summary), SITE, ended=True, sections=False)
    assert found is not None and reason in found
