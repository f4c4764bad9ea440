from __future__ import annotations

import pytest

from assistant.errors import AssistError
from assistant.llm import prompts

VALUES = {"path": "src/app.py", "prefix": "def f(", "suffix": "):\n    pass\n"}


def test_every_template_renders() -> None:
    names = prompts.template_names()
    assert "fim_emulation_user" in names
    for name in names:
        template = prompts._template(name)
        needed = {m.group("named") or m.group("braced") for m in template.pattern.finditer(
            template.template) if m.group("named") or m.group("braced")}  # fmt: skip
        text = prompts.render(name, **{k: VALUES.get(k, k) for k in needed})
        assert "$" not in text.replace("$$", "") or name == "fallback_chat_template"


def test_missing_variable_is_an_error() -> None:
    with pytest.raises(AssistError, match=r"\$prefix"):
        prompts.render("fim_emulation_user", context="", path="x", suffix="y")


def test_braces_in_code_are_left_alone() -> None:
    text = prompts.render(
        "fim_emulation_user", context="", path="a.js", prefix="if (x) {", suffix="}"
    )
    assert "if (x) {<HOLE>}" in text
