"""What a model host's clients ask for, read as untrusted input.

Every front-end of a user talks to one host, so one malformed or greedy request must neither
take it down nor hold it: a body that is not JSON (or nests too deeply, or spells a number
JSON does not have) and a field of the wrong type are refused in words before anything runs,
and limits are clamped (`max_tokens` to the context, times to a day) rather than trusted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any, get_args

from assistant.errors import AssistError
from assistant.llm.chat_templates import Message, Role
from assistant.llm.fim import ContextFile, Hole
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Priority, Request
from assistant.repo.vetted import Vetted

MAX_BODY = 64 * 1024 * 1024
"""Largest request body read: a prompt with a whole repository's context stays well below."""
LONGEST_MS = 86_400_000.0
"""A time limit past a day is no limit: clamped, and never a float overflow."""
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
_ROLES: tuple[Role, ...] = get_args(Role)

Job = Callable[[Request], Iterator[str]]
"""A checked request, ready to run once the reply has begun."""


class BadRequest(AssistError):
    """A request the host refuses in words (HTTP 400), never with a traceback."""


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in a request body, or BadRequest saying what is wrong with it."""
    try:
        body = json.loads(raw or b"{}", parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise BadRequest("the request's JSON nests too deeply", "send a flat object") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of thousands of digits
        raise BadRequest(f"the request is not JSON the host accepts: {brief(exc)}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request is not a JSON object")
    return body


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def brief(exc: BaseException, limit: int = 200) -> str:
    """An exception in one short line (a log line, or a reply's message)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_request(
    body: dict[str, Any], endpoint: str, priority: Priority, lane: str, *, n_ctx: int
) -> Request:
    """The request a client's body describes: its limits in llama-server's names, with
    `max_tokens` at most the context (more could never be written anyway)."""

    def number(key: str, most: float) -> float | None:
        value = body.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            return None
        return float(min(value, most))  # min first: a huge integer never meets float()

    max_tokens = number("n_predict" if endpoint == "/infill" else "max_tokens", n_ctx)
    prompt_ms, predict_ms = (
        number("t_max_prompt_ms", LONGEST_MS),
        number("t_max_predict_ms", LONGEST_MS),
    )
    temperature = number("temperature", 5.0)
    grammar = body.get("grammar")
    return Request(
        max_tokens=None if max_tokens is None else int(max_tokens),
        temperature=temperature,
        priority=priority,
        prompt_s=None if prompt_ms is None else prompt_ms / 1000,
        generate_s=None if predict_ms is None else predict_ms / 1000,
        grammar=grammar if isinstance(grammar, str) else None,
        lane=lane,
    )


def _text(body: dict[str, Any], key: str, where: str = "the request") -> Vetted:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise BadRequest(f"`{key}` of {where} must be a string")
    return Vetted.from_client(value)  # the client vetted what it sends (repo/vetted.py)


def _objects(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadRequest(f"`{key}` must be a list of objects")
    return value


def prepare(model: LocalModel, endpoint: str, body: dict[str, Any]) -> Job:
    """Check a generation request's fields before the reply begins; what runs it."""
    if endpoint == "/v1/completions":
        if not isinstance(body.get("prompt"), str):
            raise BadRequest("a completion wants a string `prompt`")
        prompt = body["prompt"]
        return lambda request: model.complete(prompt, request)
    if endpoint == "/v1/chat/completions":
        messages = []
        for m in _objects(body, "messages"):
            role = m.get("role", "user")
            if role not in _ROLES:
                raise BadRequest(f"a message's role must be one of {', '.join(_ROLES)}")
            messages.append(Message(role, _text(m, "content", "a message")))
        return lambda request: model.chat(messages, request)
    context = [
        ContextFile(_text(c, "filename", "a context file"), _text(c, "text", "a context file"))
        for c in _objects(body, "input_extra")
    ]
    hole = Hole(
        _text(body, "input_prefix"), _text(body, "input_suffix"), path=_text(body, "path"),
        context=context, typed=_text(body, "prompt"),
    )  # fmt: skip
    return lambda request: model.infill(hole, request)


PICKS: dict[str, Callable[[str], dict[str, Any]]] = {
    "/v1/completions": lambda text: {"choices": [{"text": text, "finish_reason": None}]},
    "/v1/chat/completions": lambda text: {"choices": [{"delta": {"content": text}}]},
    "/infill": lambda text: {"content": text},
}
