"""Agent-mode costs that a user waits for: a checkpoint per step, undo, and grammar sampling.

Prints one JSON object. Checkpoints are timed on a generated repository of N files (a tenth of
them dirty, some untracked); grammar overhead is timed on a tiny random model from tests/, so it
measures llama.cpp's grammar sampler, not a real model's speed.

    .venv/bin/python bench/agent_speed.py --files 2000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conditions import conditions, finish

from assistant.agent.calls import TOOLS, grammar, max_call_tokens
from assistant.agent.checkpoints import Checkpoints
from assistant.config import ModelSettings
from assistant.llm.chat_templates import Message
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Request


def ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def checkpoints(n: int, tmp: Path) -> dict[str, float]:
    root = tmp / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for i in range(n):
        d = root / f"pkg{i % 50}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 20)
    git = ["git", "-C", str(root), "-c", "user.email=b@b", "-c", "user.name=b"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    for i in range(0, n, 10):
        (root / f"pkg{i % 50}" / f"mod{i}.py").write_text("dirty\n")
    (root / "untracked.txt").write_text("new\n")
    cp = Checkpoints(root)
    t = time.perf_counter()
    cp.begin("bench")
    begin = ms(t)
    (root / "pkg0" / "mod0.py").write_text("edited by the agent\n")
    t = time.perf_counter()
    cp.record("step")
    record = ms(t)
    t = time.perf_counter()
    cp.undo()
    undo = ms(t)
    t = time.perf_counter()
    cp.redo()
    redo = ms(t)
    return {"files": n, "begin_ms": begin, "record_ms": record, "undo_ms": undo, "redo_ms": redo}


def grammar_overhead(tmp: Path) -> dict[str, float]:
    from tiny_gguf import CHATML, write_tiny_gguf

    path = write_tiny_gguf(tmp / "tiny.gguf", favorite=None, chat_template=CHATML,
                           context_length=8192)  # fmt: skip
    model = LocalModel.load(path, ModelSettings(n_ctx=8192, temperature=0.0))
    messages = [Message("user", "fix the bug")]
    gbnf = grammar(TOOLS, text_limit=200, string_limit=200)
    budget = min(max_call_tokens(TOOLS, text_limit=200, string_limit=200), 4000)
    out: dict[str, float] = {}
    for label, g in (("free", None), ("grammar", gbnf)):
        t = time.perf_counter()
        request = Request(max_tokens=300, grammar=g)
        text = "".join(model.chat(messages, request))
        elapsed = time.perf_counter() - t
        tokens = max(request.stats.generated_tokens, 1)
        out[f"{label}_tokens"] = tokens
        out[f"{label}_ms_per_token"] = round(elapsed * 1000 / tokens, 3)
        if g:
            out["grammar_chars"] = len(text)
    out["grammar_budget_tokens"] = budget
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    cond = conditions(files=args.files, samples="one of each operation")
    with tempfile.TemporaryDirectory() as tmp:
        result = {"checkpoints": checkpoints(args.files, Path(tmp)),
                  "tool_call_grammar": grammar_overhead(Path(tmp))}  # fmt: skip
    print(json.dumps({"conditions": finish(cond), **result}, indent=2))


if __name__ == "__main__":
    main()
