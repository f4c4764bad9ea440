"""What the embedded default model (SmolLM2-135M) says: quality figures, never test assertions.

Its greedy answers differ by CPU (near-tie logits flip between AVX2 and AVX-512 kernels), so
these checks moved here from the test suite. Prints one JSON object: each prompt, the answer,
and whether it passed its check, plus this CPU's flags that matter.

    python bench/default_model_answers.py
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

from assistant.config import ModelSettings
from assistant.docstrings.generate import document_text
from assistant.index.symbols import extract_symbols
from assistant.llm.chat_templates import Message
from assistant.llm.local import LocalModel
from assistant.llm.source import embedded_model_path
from assistant.repo.privacy import PathRules
from assistant.repo.vetted import grant

QUESTIONS = [
    ("What is the capital of France?", r"\bParis\b"),
    ("What is 2 + 2? Answer with the number.", r"\b4\b"),
    ("Which language is this: def f(): pass", r"(?i)python"),
]


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return sorted({f for f in flags.split() if f.startswith(("avx", "fma", "f16c"))})


def main() -> None:
    model = LocalModel.load(embedded_model_path(), ModelSettings(temperature=0.0, max_tokens=48))
    results = []
    for question, check in QUESTIONS:
        messages = [Message("system", "You are a helpful assistant."), Message("user", question)]
        answer = "".join(model.chat(messages))
        results.append(
            {"prompt": question, "answer": answer, "passed": bool(re.search(check, answer))}
        )
    text = "def area(width, height):\n    return width * height\n"
    here = Path(__file__).parent  # the permit a workspace grants, without one
    permit = grant(PathRules(here), here / "geometry.py")
    report = document_text(model, "geometry.py", text, "python", max_tokens=60, permit=permit)
    doc = extract_symbols(report.new.encode(), "python")[0].doc if report.changed else ""
    results.append(
        {
            "prompt": "docstring for area(width, height)",
            "answer": doc,
            "passed": len(doc) > 10 and doc[:1].isupper(),
        }
    )
    print(
        json.dumps(
            {
                "model": model.name,
                "machine": platform.machine(),
                "cpu_flags": cpu_flags(),
                "passed": sum(r["passed"] for r in results),
                "total": len(results),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
