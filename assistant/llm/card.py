"""`assist model`: what the model file says about itself, and how fast it runs here."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

from assistant.config import Settings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.gguf import iter_special_tokens, read_gguf
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Request
from assistant.llm.source import ModelChoice, choose_model, open_model
from assistant.repo.vetted import Vetted


def _environment(settings: Settings) -> dict[str, Any]:
    import llama_cpp

    return {
        "python": platform.python_version(),
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "threads": settings.model.n_threads or os.cpu_count(),
        "gpu_offload_available": bool(llama_cpp.llama_supports_gpu_offload()),
        "n_gpu_layers": settings.model.n_gpu_layers,
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    }


_COUNT = Vetted.label("Count from one to twenty.")
DEMO_NOTE = (
    "this is the embedded demo model (SmolLM2-135M): it shows that everything works, not what "
    "a code model writes. For real work point model.path at a code model with FIM tokens "
    "(Qwen2.5-Coder, StarCoder2, CodeLlama, DeepSeek-Coder in Q4_K_M; docs/models.md)"
)


def build_card(
    settings: Settings,
    *,
    measure: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The model card as a plain dict (the `--json` output); `on_progress` hears one line per
    step as it is done (loading, each measurement), so a slow machine is never silent."""
    say = on_progress or (lambda _: None)
    choice: ModelChoice = choose_model(settings)
    card: dict[str, Any] = {"source": choice.origin, "kind": choice.kind}
    card["demo"] = choice.demo
    if choice.kind == "local":
        info = read_gguf(choice.location)
        card.update(
            path=str(info.path),
            name=info.path.name,
            gguf_name=info.name,
            architecture=info.architecture,
            parameters=info.parameter_count,
            quantization=info.quantization,
            file_size_bytes=info.file_size,
            gguf_version=info.version,
            context_length=info.context_length,
            vocabulary_size=len(info.tokens),
            chat_template=info.chat_template is not None,
            special_tokens={role: {"id": i, "text": t} for role, i, t in iter_special_tokens(info)},
        )
    else:
        card.update(url=choice.location, name=settings.model.remote_model or choice.location)
    say(f"loading {card['name']} …")
    started = time.perf_counter()
    model = open_model(settings, hosted=False)  # measured here, not behind a host's queue
    say(f"loaded in {time.perf_counter() - started:.1f} s")
    plan = model.gpu_plan if isinstance(model, LocalModel) else None
    if plan is not None:
        card["gpu_plan"] = {
            "layers": plan.layers,
            "block_count": plan.block_count,
            "gpu_bytes": plan.gpu_bytes,
            "free_bytes": plan.free_bytes,
            "total_bytes": plan.total_bytes,
            "summary": plan.describe(),
        }
    card["fim"] = model.fim_label
    card["fim_kind"] = model.fim_kind
    card["fim_tokens"] = None
    fim = model.fim if isinstance(model, LocalModel) else None
    if isinstance(model, LocalModel) and fim is not None:
        tokens = model.info.tokens
        card["fim_tokens"] = {
            "prefix": tokens[fim.prefix_id],
            "suffix": tokens[fim.suffix_id],
            "middle": tokens[fim.middle_id] if fim.middle_id is not None else None,
            "order": fim.order,
            "stops": sorted(tokens[i] for i in fim.stop_ids),
        }
    if measure:
        if isinstance(model, LocalModel):
            say("measuring prompt and generation speed …")
            card["speed"] = speed = measure_speed(model)
            say(f"prompt: {speed['prompt_tokens_per_s']:.1f} tokens/s")
            say(f"generation: {speed['generation_tokens_per_s']:.1f} tokens/s")
            card["n_ctx"] = model.context_window()
            card["threads"] = model.runtime.threads
        else:
            say("asking the server for 32 tokens …")
            request = Request(max_tokens=32)
            text = "".join(model.chat([Message("user", _COUNT)], request))
            stats = request.stats
            card["speed"] = {
                "generated_chunks": stats.generated_tokens,
                "generation_tokens_per_s": stats.tokens_per_second,
                "first_token_ms": stats.prompt_ms,
                "sample": text[:60],
            }
    card["environment"] = _environment(settings)
    if choice.kind == "local":
        card["host"] = _host(choice.location, settings)
    return card


def _host(path: str, settings: Settings) -> dict[str, Any]:
    """Whether front-ends share this model through a host, and the one running now."""
    from assistant.llm.hosting import Host, hosting_supported

    if not settings.model.host or not hosting_supported():
        return {"shared": False, "running": None}
    try:
        running = Host.of(path, settings.model).props()
    except (AssistError, OSError) as exc:
        return {"shared": True, "running": None, "error": str(exc)}
    return {"shared": True, "running": running}


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def format_card(card: dict[str, Any]) -> str:
    name = str(card.get("name"))
    if card.get("gguf_name") and card["gguf_name"] != name:
        name += f" ({card['gguf_name']})"
    rows: list[tuple[str, str]] = [("model", name), ("source", card["source"])]
    if card["kind"] == "local":
        rows += [
            ("file", f"{card['path']} ({_size(card['file_size_bytes'])})"),
            ("architecture", card["architecture"]),
            ("parameters", _count(card["parameters"])),
            ("quantization", card["quantization"]),
            (
                "context length",
                f"{card['context_length']} trained"
                + (f", {card['n_ctx']} in use" if "n_ctx" in card else ""),
            ),
            ("vocabulary", str(card["vocabulary_size"])),
            (
                "chat template",
                "yes (rendered in a Jinja sandbox)"
                if card["chat_template"]
                else "no (plain fallback format)",
            ),
        ]
    else:
        rows.append(("url", card["url"]))
    rows.append(("FIM", card["fim"]))
    if card.get("fim_tokens"):
        ft = card["fim_tokens"]
        rows.append(("FIM stops", " ".join(ft["stops"])))
    for role, tok in (card.get("special_tokens") or {}).items():
        rows.append((f"token {role}", f"{tok['text']!r} (id {tok['id']})"))
    speed = card.get("speed")
    if speed and card["kind"] == "local":
        rows.append(
            (
                "prompt speed",
                f"{speed['prompt_tokens_per_s']:.1f} tokens/s "
                f"({int(speed['prompt_tokens'])} tokens)",
            )
        )
        rows.append(
            (
                "generation speed",
                f"{speed['generation_tokens_per_s']:.1f} tokens/s "
                f"({int(speed['generated_tokens'])} tokens)",
            )
        )
    elif speed:
        rows.append(
            (
                "generation speed",
                f"{speed['generation_tokens_per_s']:.1f} chunks/s, "
                f"first token {speed['first_token_ms']:.0f} ms",
            )
        )
    env = card["environment"]
    rows += [
        ("llama-cpp-python", env["llama_cpp_python"]),
        ("python", f"{env['python']} on {env['platform']}"),
        ("threads", f"{env['threads']} of {env['cpu_count']} cores"),
        (
            "GPU offload",
            ("available" if env["gpu_offload_available"] else "not in this build")
            + f", n_gpu_layers={env['n_gpu_layers']}"
            + (f": {card['gpu_plan']['summary']}" if card.get("gpu_plan") else ""),
        ),
    ]
    host = card.get("host")
    if host is not None:
        running = host.get("running")
        if not host["shared"]:
            line = "off (model.host = false): each front-end loads its own copy"
        elif running:
            mb = running["resident_bytes"] / 2**20
            line = (f"pid {running['pid']}, {mb:.0f} MB resident, {running['requests']} "
                    f"requests, exits after {running['idle_s']:.0f} s idle")  # fmt: skip
        else:
            line = "none running; the first front-end that needs the model starts one"
        rows.append(("model host", line))
    if card.get("demo"):
        rows.append(("note", DEMO_NOTE))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def measure_speed(
    model: LocalModel, prompt_tokens: int = 128, gen_tokens: int = 32
) -> dict[str, float]:
    """Prompt and generation tokens/s on this machine, from a cold cache, stops ignored."""
    vocab = [i for i, t in enumerate(model.info.tokens) if t.isalpha()] or [0]
    with model.exclusive() as runtime:
        n = max(8, min(prompt_tokens, runtime.n_ctx - gen_tokens - 1))
        tokens = model.bos() + [vocab[i % len(vocab)] for i in range(n)]
        runtime.clear()
        start = time.perf_counter()
        runtime.decode(tokens[:-1])
        produced = 0
        first = start
        for _ in runtime.generate(tokens[-1], temperature=0.0):
            if produced == 0:
                first = time.perf_counter()
            produced += 1
            if produced >= gen_tokens:
                break
        end = time.perf_counter()
        runtime.clear()
    prompt_s = first - start
    gen_s = end - first
    return {
        "prompt_tokens": float(len(tokens)),
        "prompt_tokens_per_s": len(tokens) / prompt_s if prompt_s > 0 else 0.0,
        "generated_tokens": float(produced),
        "generation_tokens_per_s": (produced - 1) / gen_s if gen_s > 0 and produced > 1 else 0.0,
    }
