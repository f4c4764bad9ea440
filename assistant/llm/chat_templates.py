"""Chat templates from GGUF files, rendered only inside Jinja's immutable sandbox.

A chat template is code shipped by whoever made the model file; CVE-2024-34359 ran shell
commands through one. The sandbox blocks attribute access to Python internals, and rendering errors
become `AssistError`s instead of tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from assistant.errors import AssistError
from assistant.llm.prompts import prompts_dir
from assistant.repo.vetted import Vetted

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: Vetted
    """What a model may read (repo/vetted.py): a rendered prompt, the user's or model's words."""


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


@lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, autoescape=False, undefined=jinja2.ChainableUndefined
    )
    env.globals["raise_exception"] = _raise
    # Templates from HF often call strftime_now for a date line; give them a harmless constant.
    env.globals["strftime_now"] = lambda fmt: "26 Jul 2024"
    return env.from_string(source)


def fallback_template() -> str:
    return (prompts_dir() / "fallback_chat_template.txt").read_text(encoding="utf-8")


def render_chat(
    template: str | None,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    defuse: Callable[[str], str] = str,
) -> str:
    """The prompt text for `messages`; `template=None` uses our plain fallback format.
    `defuse` rewrites each content first (the model's control-token texts broken up)."""
    source = template or fallback_template()
    payload: list[dict[str, Any]] = [
        {"role": m.role, "content": defuse(m.content)} for m in messages
    ]
    try:
        return _compile(source).render(
            messages=payload,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except jinja2.exceptions.SecurityError as exc:
        raise AssistError(
            f"the model's chat template tried something unsafe and was stopped: {exc}",
            "do not trust this model file; use another GGUF",
        ) from None
    except jinja2.TemplateError as exc:
        raise AssistError(
            f"the model's chat template failed: {exc}",
            "set model.fim = 'emulate' is not enough here; use a GGUF with a working template",
        ) from None
