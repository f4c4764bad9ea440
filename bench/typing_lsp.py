"""Typing through the real language server: how soon a suggestion appears when a person pauses.

Starts `assist lsp` (all defaults: the model host on, keyword index) on a copy of a shared
benchmark corpus, opens a file with some code lines removed, and types them back character by
character at a human rate. Each keystroke is a `didChange` plus an `inlineCompletion` request; a
request still unanswered when the next key comes is cancelled with `$/cancelRequest`, as editors
do. On each line the person pauses once, at a token boundary drawn at random, waits for the
suggestion, reads it for `--read` seconds, and types on.

Scenarios (`--scenarios`, several run in one session, one model host for all, as a user has it):

- `jump`: lines drawn at random from the whole file, visited in random order; each is typed the
  moment the cursor lands there (no look, nothing to settle after the file opens).
- `look`: the same lines, with `--look` seconds (1 s) of looking at each before typing.
- `warm`: consecutive lines from the file's middle, in order, 5 s to settle after opening and
  1 s of looking at each line (the scenario of the earlier figures: the warm case).

Figures per scenario, over every file: pause-to-suggestion p50/p95/max (the last keystroke's
request to its answer), empty pauses, keystroke requests answered (non-empty) before the next
key, how often the suggestion starts with the line's real next token (and per source: model,
completion cache, fallback), and the cold/warm split read from the server's `-v` log (a pause
is cold when its request had to read more than `COLD_TOKENS` prompt tokens), and our overhead
and the recall lookup per request, from the same log.

    python bench/typing_lsp.py --corpora /tmp/assist-bench [--scenarios jump,look,warm]
        [--files jinja2:src/jinja2/compiler.py,...] [--lines 12] [--seed 1] [--model PATH]
        [--pythonpath OLD_CHECKOUT] [--env KEY=VALUE ...] [--json OUT] [--keep]

`--pythonpath` runs the server from another checkout (a "before" figure in the same session);
`--env` passes settings.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"\w+|[^\w\s]+|\s+")
NEXT = re.compile(r"\s*[^\w\s]*\w+|\s*[^\w\s]+")
"""The line's next token as a reader sees it: a word with the punctuation before it
(`(cookies`), or punctuation alone at the end of a line."""
DEFAULT_FILES = (
    "jinja2:src/jinja2/compiler.py,requests:src/requests/models.py,gin:context.go,gin:tree.go"
)
COLD_TOKENS = 32
"""A pause whose request read more prompt tokens than this found the model's cache cold."""
LANGUAGES = {".py": "python", ".go": "go", ".ts": "typescript", ".js": "javascript"}
# The server's `-v` log line for each completion, this code's and the older one's.
LOG_NEW = re.compile(
    r"completion at (?P<path>\S+):(?P<line>\d+):(?P<col>\d+): (?P<source>[\w:-]+)"
    r".*?reused (?P<reused>\d+), shifted (?P<shifted>\d+), read (?P<read>\d+)"
    r".*?overhead (?P<overhead>[\d.]+) ms, recall (?P<recall>[\d.]+) ms"
)
LOG_OLD = re.compile(
    r"completion at (?P<path>\S+):(?P<line>\d+):(?P<col>\d+): (?P<prompt>\d+) prompt tokens, "
    r"(?P<cached>\d+) cached.*?(?P<fromcache>\(from the completion cache\))?$"
)


class Client:
    """JSON-RPC over the server's stdio; responses are timestamped as they arrive."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log
        )
        self.answers: dict[int, tuple[float, dict[str, Any]]] = {}
        self.notes: queue.Queue[dict[str, Any]] = queue.Queue()
        self.cv = threading.Condition()
        self.next_id = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line.strip() == b"":
                    break
                key, _, value = line.decode().partition(":")
                if key.lower() == "content-length":
                    length = int(value)
            msg = json.loads(out.read(length))
            now = time.perf_counter()
            if "method" in msg and "id" in msg:
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            elif "id" in msg:
                with self.cv:
                    self.answers[msg["id"]] = (now, msg)
                    self.cv.notify_all()
            else:
                self.notes.put(msg)

    def send(self, msg: dict[str, Any]) -> None:
        body = json.dumps(msg).encode()
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            self.proc.stdin.flush()

    def request(self, method: str, params: Any) -> int:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, msg_id: int, timeout: float = 600) -> tuple[float, dict[str, Any]]:
        with self.cv:
            if not self.cv.wait_for(lambda: msg_id in self.answers, timeout):
                raise TimeoutError(f"no answer to {msg_id}")
            return self.answers[msg_id]

    def close(self) -> None:
        try:
            self.wait(self.request("shutdown", None), 30)
            self.notify("exit", None)
            self.proc.wait(30)
        except (TimeoutError, subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
        self._log.close()


def typable(s: str) -> bool:
    t = s.strip()
    comment = t.startswith(("#", '"', "'", "@", "//", "/*", "*"))
    return 8 <= len(t) <= 90 and not comment and len(TOKEN.findall(t)) >= 3


def consecutive_lines(lines: list[str], count: int) -> list[int]:
    """`count` typable lines from the file's middle on, within a stretch of at most twice as
    many lines (blank lines, comments and strings between them stay)."""
    for start in range(len(lines) // 3, len(lines) - count):
        rows = [r for r in range(start, min(len(lines), start + 2 * count)) if typable(lines[r])]
        if len(rows) >= count and typable(lines[start]):
            return rows[:count]
    raise SystemExit(f"no {count} typable lines close together")


def sampled_lines(lines: list[str], count: int, rng: random.Random) -> list[int]:
    """`count` typable lines drawn from the whole file, in the random order they are visited."""
    rows = [r for r, line in enumerate(lines) if typable(line)]
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} typable lines")
    return rng.sample(rows, count)


def suggestion(answer: dict[str, Any]) -> str:
    items = (answer.get("result") or {}).get("items") or []
    return str(items[0].get("insertText", "")) if items else ""


def first_token(text: str) -> str:
    m = NEXT.match(text)
    return m.group(0) if m else ""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def read_log(log: Path) -> list[dict[str, Any]]:
    """Every completion the server logged, in order: where, from which source, tokens read."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        m = LOG_NEW.search(line)
        if m:
            found.append({"line": int(m["line"]), "col": int(m["col"]), "source": m["source"],
                          "read": int(m["read"]), "reused": int(m["reused"]),
                          "shifted": int(m["shifted"]), "overhead_ms": float(m["overhead"]),
                          "recall_ms": float(m["recall"])})  # fmt: skip
            continue
        m = LOG_OLD.search(line)
        if m:
            cached = bool(m["fromcache"])
            found.append({"line": int(m["line"]), "col": int(m["col"]),
                          "source": "cache" if cached else "model",
                          "read": int(m["prompt"]) - int(m["cached"]),
                          "reused": int(m["cached"]), "shifted": 0})  # fmt: skip
    return found


class Session:
    """One `assist lsp` on a copy of one corpus, with one file open."""

    def __init__(self, args: argparse.Namespace, corpus: str, env: dict[str, str]) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="assist-typing-"))
        self.repo = self.work / "repo"
        shutil.copytree(args.corpora / corpus, self.repo, ignore=shutil.ignore_patterns(".assist"))
        if not (self.repo / ".git").exists():
            subprocess.run(["git", "init", "-q", str(self.repo)], check=True)
        self.log = self.work / "lsp.log"
        env = {**env, "XDG_CONFIG_HOME": str(self.work / "xdg")}
        self.client = Client(
            [sys.executable, "-m", "assistant", "-v", "lsp"], self.repo, env, self.log
        )
        caps = {"window": {"workDoneProgress": True}, "textDocument": {"inlineCompletion": {}}}
        self.client.wait(self.client.request("initialize", {
            "processId": None, "rootUri": self.repo.as_uri(), "capabilities": caps}))  # fmt: skip
        self.client.notify("initialized", {})
        while True:  # the first index
            note = self.client.notes.get(timeout=600)
            if note.get("method") == "$/progress" and note["params"]["value"].get("kind") == "end":
                break
        self.pending: int | None = None
        self.sent_at: dict[int, float] = {}
        self.version = 1

    def close(self) -> list[dict[str, Any]]:
        """Stop the server; what it logged."""
        if self.pending is not None:
            self.client.wait(self.pending)
        self.client.close()
        return read_log(self.log)

    def open(self, uri: str, language: str, text_lines: list[str]) -> None:
        self.client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language, "version": 1,
            "text": "\n".join(text_lines)}})  # fmt: skip

    def ask(self, uri: str, line: int, col: int) -> int:
        client = self.client
        if self.pending is not None and self.pending not in client.answers:
            client.notify("$/cancelRequest", {"id": self.pending})
        self.pending = client.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": col},
            "context": {"triggerKind": 2}})  # fmt: skip
        self.sent_at[self.pending] = time.perf_counter()
        return self.pending

    def change(self, uri: str, text_lines: list[str]) -> None:
        self.version += 1
        self.client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": self.version},
            "contentChanges": [{"text": "\n".join(text_lines)}]})  # fmt: skip


def type_file(
    args: argparse.Namespace, scenario: str, corpus: str, rel: str, env: dict[str, str]
) -> dict[str, Any]:
    """Type one file's lines back in one session; the pauses and keystroke outcomes."""
    rng = random.Random(f"{args.seed}:{corpus}:{rel}")
    session = Session(args, corpus, env)
    path = session.repo / rel
    lines = path.read_text().split("\n")
    if scenario == "warm":
        rows = consecutive_lines(lines, args.lines)
        settle, look = 5.0, args.look
    else:
        rows = sampled_lines(lines, args.lines, rng)
        settle, look = 0.0, (args.look if scenario == "look" else 0.0)
    removed = set(rows)
    doc = [line for r, line in enumerate(lines) if r not in removed]
    uri = path.as_uri()
    session.open(uri, LANGUAGES.get(path.suffix, "plaintext"), doc)
    keystrokes: list[int] = []
    pauses: list[dict[str, Any]] = []
    time.sleep(settle)
    for row in rows:
        # Where the original line goes in the document as it is now.
        at = row - sum(1 for r in removed if r < row)
        removed.discard(row)
        full = lines[row]
        indent = full[: len(full) - len(full.lstrip())]
        body = full[len(indent) :]
        tokens = TOKEN.findall(body)
        cut = rng.randrange(1, len(tokens))  # a token boundary with something left to type
        pause_at = len("".join(tokens[:cut]))
        doc.insert(at, indent)  # a new line, auto-indented
        landed = time.perf_counter()
        session.change(uri, doc)
        session.ask(uri, at, len(indent))
        time.sleep(look)
        for k in range(1, len(body) + 1):
            doc[at] = indent + body[:k]
            session.change(uri, doc)
            msg_id = session.ask(uri, at, len(indent) + k)
            keystrokes.append(msg_id)
            if k == pause_at:
                done_at, answer = session.client.wait(msg_id)
                text = suggestion(answer)
                rest = body[k:]
                pauses.append({
                    "file": f"{corpus}:{rel}", "line": at + 1, "col": len(indent) + k,
                    "since_landing_s": round(session.sent_at[msg_id] - landed, 2),
                    "ms": round((done_at - session.sent_at[msg_id]) * 1000, 1),
                    "suggestion": text[:60], "expected": rest[:60],
                    "token_match": bool(text) and first_token(text) == first_token(rest),
                })  # fmt: skip
                time.sleep(args.read)
            else:
                time.sleep(args.interval)
    logged = session.close()
    if not args.keep:
        shutil.rmtree(session.work, ignore_errors=True)
    for p in pauses:  # the last logged completion at the pause's position
        entry = next(
            (e for e in reversed(logged) if (e["line"], e["col"]) == (p["line"], p["col"])), None
        )
        p["source"] = entry["source"] if entry else "?"  # "?": the server logged no timings
        p["read"] = entry["read"] if entry else -1
        p["cold"] = None if entry is None else entry["read"] > COLD_TOKENS
    client = session.client
    answered = late = cancelled = 0
    for n, msg_id in enumerate(keystrokes):
        got = client.answers.get(msg_id)
        next_sent = session.sent_at.get(keystrokes[n + 1]) if n + 1 < len(keystrokes) else None
        if got is None or not suggestion(got[1]):
            cancelled += 1
        elif next_sent is None or got[0] <= next_sent:
            answered += 1
        else:
            late += 1
    out = {"file": f"{corpus}:{rel}", "pauses": pauses, "keystrokes": len(keystrokes),
           "answered": answered, "late": late, "cancelled_or_empty": cancelled,
           "overhead_ms": [e["overhead_ms"] for e in logged if e["source"] == "model"
                           and "overhead_ms" in e],
           "recall_ms": [e["recall_ms"] for e in logged if e.get("recall_ms")]}  # fmt: skip
    if args.keep:
        out["log"] = str(session.log)
    return out


def summarize(scenario: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    pauses = [p for f in files for p in f["pauses"]]
    ms = [p["ms"] for p in pauses]
    overhead = [v for f in files for v in f.get("overhead_ms", [])]
    recalls = [v for f in files for v in f.get("recall_ms", [])]

    def split(group: list[dict[str, Any]]) -> dict[str, Any]:
        values = [p["ms"] for p in group]
        return {"pauses": len(group), "p50_ms": percentile(values, 0.5),
                "p95_ms": percentile(values, 0.95),
                "empty": sum(1 for p in group if not p["suggestion"]),
                "next_token_match": sum(1 for p in group if p["token_match"])}  # fmt: skip

    sources: dict[str, list[dict[str, Any]]] = {}
    for p in pauses:
        sources.setdefault(p["source"].split(":")[0] if p["suggestion"] else "empty", []).append(p)
    keys = sum(f["keystrokes"] for f in files)
    return {
        "scenario": scenario,
        "pauses": len(pauses),
        "p50_ms": percentile(ms, 0.5), "p95_ms": percentile(ms, 0.95), "max_ms": max(ms),
        "mean_ms": round(statistics.fmean(ms), 1),
        "empty": sum(1 for p in pauses if not p["suggestion"]),
        "next_token_match": sum(1 for p in pauses if p["token_match"]),
        "keystroke_requests": keys,
        "answered_before_next_key": sum(f["answered"] for f in files),
        "answered_late": sum(f["late"] for f in files),
        "cold": split([p for p in pauses if p["cold"]]),
        "warm": split([p for p in pauses if p["cold"] is False]),
        "unlogged": split([p for p in pauses if p["cold"] is None]),
        "overhead_ms_p50": percentile(overhead, 0.5), "overhead_ms_p95": percentile(overhead, 0.95),
        "recall_ms_p50": percentile(recalls, 0.5), "recall_ms_p95": percentile(recalls, 0.95),
        "by_source": {k: split(v) for k, v in sorted(sources.items())},
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    # A model host of this run's own (model.host is on unless --env turns it off), shared by
    # every session of the run as by a user's editors, stopped at the end.
    runtime = Path(tempfile.mkdtemp(prefix="atyp-"))
    env.update(ASSIST_INDEX_VECTORS="false", XDG_RUNTIME_DIR=str(runtime))
    if args.model:
        env["ASSIST_MODEL"] = str(args.model)
    if args.pythonpath:
        env["PYTHONPATH"] = str(args.pythonpath)
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    files = [f.split(":", 1) for f in args.files.split(",")]
    results: dict[str, Any] = {"conditions": {
        "interval_s": args.interval, "look_s": args.look, "read_s": args.read,
        "lines_per_file": args.lines, "seed": args.seed, "files": args.files,
        "model": str(args.model or "default"), "pythonpath": str(args.pythonpath or ""),
        "env": args.env, "cpus": os.cpu_count()}, "scenarios": {}}  # fmt: skip
    try:
        for scenario in args.scenarios.split(","):
            typed = []
            for corpus, rel in files:
                typed.append(type_file(args, scenario, corpus, rel, env))
                print(f"# {scenario} {corpus}:{rel} done", file=sys.stderr, flush=True)
            results["scenarios"][scenario] = {"summary": summarize(scenario, typed),
                                              "files": typed}  # fmt: skip
    finally:
        subprocess.run([sys.executable, "-m", "assistant", "model", "stop"], env=env,
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(runtime, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--scenarios", default="jump,look,warm")
    ap.add_argument("--files", default=DEFAULT_FILES, help="corpus:path,... (over 800 lines)")
    ap.add_argument("--lines", type=int, default=12, help="lines typed per file and scenario")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--interval", type=float, default=0.12, help="seconds between keys")
    ap.add_argument("--look", type=float, default=1.0, help="seconds before typing a line")
    ap.add_argument("--read", type=float, default=1.0, help="seconds reading a suggestion")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--pythonpath", type=Path)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the work dirs and server logs")
    ap.add_argument("--json", type=Path, help="write every figure and pause here")
    args = ap.parse_args()
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    for name, block in result["scenarios"].items():
        s = block["summary"]
        print(json.dumps({k: v for k, v in s.items()}))
        for f in block["files"]:
            for p in f["pauses"]:
                print(f"  {name:5} {p['file'][-22:]:22} {p['line']:5} {p['ms']:7.0f} ms "
                      f"{p['source'][:14]:14} read {p['read']:5} {p['suggestion'][:28]!r:32} "
                      f"want {p['expected'][:24]!r}")  # fmt: skip


if __name__ == "__main__":
    main()
