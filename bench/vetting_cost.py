"""What vetting costs a completion request: the window around the cursor through the content
rules (`Permit.vet_around`, repo/vetted.py), on a 2,000-line file.

    python bench/vetting_cost.py [--positions 200]

The file is the first 2,000 lines of assist's own sources; a second run plants a secret of each
kind every 50 lines (the cursor then often sits on or next to a redacted line, which costs two
more passes over that line). Each figure is the median and the 95th percentile over cursor
positions spread through the file, best of three runs (the machine is shared), for a cold window
(a new place: what `completion.cold_ms` reads at the assumed speed) and a full one
(`prefix_tokens` / `suffix_tokens`). Also printed: the whole file through `redact`, what vetting
the file on every keystroke would cost instead. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from assistant.completion.engine import _vetted_hole
from assistant.completion.window import CHARS_PER_TOKEN, SPEED_GUESS, Places, Sizes, cut
from assistant.config import CompletionSettings
from assistant.repo.privacy import PathRules
from assistant.repo.secrets import redact
from assistant.repo.vetted import grant

ROOT = Path(__file__).resolve().parent.parent
PLANTED = (
    'AWS = "AKIAQ3H5K7M9P2R4T6V8"\n'
    'TOKEN = "ghp_R8f2Kq9Lm3Nx7Vb4Tz6Wc1Yd5Hs0Pj2Ga8Ue3Xo"\n'
    'DB = "postgres://deploy:Tr0ub4dor3xq@db.internal/app"\n'
)


def source(lines: int, planted: bool) -> str:
    out: list[str] = []
    for path in sorted(ROOT.glob("assistant/**/*.py")):
        for n, line in enumerate(path.read_text().split("\n")):
            if planted and n % 50 == 0:
                out += PLANTED.rstrip("\n").split("\n")
            out.append(line)
        if len(out) >= lines:
            break
    return "\n".join(out[:lines])


def timed(text: str, offsets: list[int], sizes: Sizes, cold: bool) -> list[float]:
    permit = grant(PathRules(Path(tempfile.gettempdir())), "a.py", inside=False)
    best: list[float] = []
    for _ in range(3):
        run = []
        for offset in offsets:
            places = Places()
            window = places.window("a.py", text, offset, sizes) if cold else None
            window = window or cut(text, offset, 0, 1 << 30, sizes)
            started = time.perf_counter()
            _vetted_hole(permit, text, offset, window, "a.py")
            run.append((time.perf_counter() - started) * 1e6)
        best = run if not best or sum(run) < sum(best) else best
    return best


def summary(us: list[float]) -> dict[str, float]:
    ordered = sorted(us)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p95_us": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--positions", type=int, default=200)
    args = ap.parse_args()
    s = CompletionSettings()
    cold = SPEED_GUESS * s.cold_ms / 1000
    sizes = Sizes(*(int(n * CHARS_PER_TOKEN) for n in (s.prefix_tokens, s.suffix_tokens, cold)))
    report: dict[str, object] = {"sizes_chars": sizes.__dict__}
    for planted in (False, True):
        text = source(2000, planted)
        step = max(1, len(text) // args.positions)
        offsets = [text.rfind("\n", 0, at) + 5 for at in range(step, len(text), step)]
        started = time.perf_counter()
        redact(text)
        whole_ms = (time.perf_counter() - started) * 1000
        report["with planted secrets" if planted else "plain code"] = {
            "chars": len(text),
            "cold window": summary(timed(text, offsets, sizes, cold=True)),
            "full window": summary(timed(text, offsets, sizes, cold=False)),
            "whole file redacted_ms": round(whole_ms, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
