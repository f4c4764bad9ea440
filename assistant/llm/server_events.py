"""What a server's streamed events say: text, the prompt's progress, the server's own account.

llama-server, OpenAI-compatible servers and the model host (llm/host.py) share the shapes; a
field one of them lacks is simply absent.
"""

from __future__ import annotations

from typing import Any

from assistant.llm.protocol import GenerationStats, StopReason


def read_progress(event: dict[str, Any], stats: GenerationStats) -> bool:
    progress = event.get("prompt_progress")
    if not isinstance(progress, dict):
        return False
    stats.prompt_tokens = int(progress.get("total") or 0)
    stats.cached_tokens = int(progress.get("cache") or 0)
    stats.shifted_tokens = int(progress.get("shifted") or 0)  # a model host's
    stats.prompt_done = int(progress.get("processed") or 0)
    stats.prompt_speed = float(progress.get("tokens_per_s") or stats.prompt_speed)
    return True


_STOPS: tuple[StopReason, ...] = ("stop token", "stop string", "length", "cancel", "budget", "end")


def read_stats(values: dict[str, Any], stats: GenerationStats) -> None:
    """A model host's account of a request, which knows better than the client's clock."""
    stats.prompt_tokens = int(values.get("prompt_tokens") or stats.prompt_tokens)
    stats.cached_tokens = int(values.get("cached_tokens") or 0)
    stats.shifted_tokens = int(values.get("shifted_tokens") or 0)
    stats.prompt_done = int(values.get("prompt_done") or stats.prompt_done)
    stats.wait_ms = float(values.get("wait_ms") or 0.0)
    if values.get("prompt_ms"):
        stats.prompt_ms = float(values["prompt_ms"])
    reason = values.get("stopped_by")
    for known in _STOPS:
        if reason == known:
            stats.stopped_by = known


def finish_reason(event: dict[str, Any]) -> str:
    choices = event.get("choices") or [{}]
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return str(choices[0].get("finish_reason") or "")
    return "length" if event.get("stopped_limit") else ""


def completion_text(event: Any) -> str:
    choices = event.get("choices") or [{}]
    return str(choices[0].get("text") or "")


def chat_text(event: Any) -> str:
    choices = event.get("choices") or [{}]
    delta = choices[0].get("delta") or {}
    return str(delta.get("content") or "")


def infill_text(event: Any) -> str:
    return str(event.get("content") or "")
