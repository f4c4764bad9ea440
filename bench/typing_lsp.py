"""Typing through the real language server: how soon a suggestion appears when a person pauses.

Starts `assist lsp` on a copy of a shared benchmark corpus (keyword index; completion context
does not use vectors), opens a file with a block of consecutive code lines removed, and types
them back character by character at a human rate. Each keystroke is a `didChange` plus an
`inlineCompletion` request; a request still unanswered when the next key comes is cancelled
with `$/cancelRequest`, as editors do. Moving to a line, the "editor" asks once at the new
cursor and the person reads for `--look` seconds (`--settle` seconds after opening the file).
In the middle of each line (at a token boundary) the person pauses and waits for the
suggestion, reads it for `--read` seconds, and types on.

Figures: pause-to-suggestion p50/p95 (the last keystroke's request to its answer), how many
pauses got an empty answer, how many keystroke requests were answered before the next key,
answered late, or cancelled, and how often the suggestion starts with the line's real next
token.

    python bench/typing_lsp.py --corpora /tmp/assist-bench [--corpus requests]
        [--file src/requests/models.py] [--lines 12] [--interval 0.12] [--model PATH]
        [--pythonpath OLD_CHECKOUT] [--env KEY=VALUE ...] [--json]

`--pythonpath` runs the server from another checkout (a "before" figure in the same session);
`--env` passes settings, e.g. `ASSIST_COMPLETION_IDLE_MS=600000` to turn idle warm-ups off.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
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


def pick_lines(lines: list[str], count: int) -> list[int]:
    """`count` lines of code worth typing, from the file's middle on, within a stretch of at
    most twice as many lines (blank lines, comments and strings between them stay)."""

    def typable(s: str) -> bool:
        t = s.strip()
        return len(t) >= 8 and not t.startswith(("#", '"', "'", "@")) and len(t) <= 90

    for start in range(len(lines) // 3, len(lines) - count):
        rows = [r for r in range(start, min(len(lines), start + 2 * count)) if typable(lines[r])]
        if len(rows) >= count and typable(lines[start]):
            return rows[:count]
    raise SystemExit(f"no {count} typable lines close together")


def suggestion(answer: dict[str, Any]) -> str:
    items = (answer.get("result") or {}).get("items") or []
    return str(items[0].get("insertText", "")) if items else ""


def first_token(text: str) -> str:
    m = NEXT.match(text)
    return m.group(0) if m else ""


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="assist-typing-"))
    repo = work / "repo"
    shutil.copytree(args.corpora / args.corpus, repo, ignore=shutil.ignore_patterns(".assist"))
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    # A model host of this run's own (model.host is on unless --env turns it off), stopped
    # at the end: the next run starts from the same state.
    runtime = Path(tempfile.mkdtemp(prefix="atyp-"))
    env.update(XDG_CONFIG_HOME=str(work / "xdg"), ASSIST_INDEX_VECTORS="false",
               XDG_RUNTIME_DIR=str(runtime))  # fmt: skip
    if args.model:
        env["ASSIST_MODEL"] = str(args.model)
    if args.pythonpath:
        env["PYTHONPATH"] = str(args.pythonpath)
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    log = work / "lsp.log"
    client = Client([sys.executable, "-m", "assistant", "-v", "lsp"], repo, env, log)
    caps = {"window": {"workDoneProgress": True}, "textDocument": {"inlineCompletion": {}}}
    client.wait(client.request("initialize", {"processId": None, "rootUri": repo.as_uri(),
                                              "capabilities": caps}))  # fmt: skip
    client.notify("initialized", {})
    while True:  # the first index
        note = client.notes.get(timeout=600)
        if note.get("method") == "$/progress" and note["params"]["value"].get("kind") == "end":
            break
    path = repo / args.file
    lines = path.read_text().split("\n")
    rows = pick_lines(lines, args.lines)
    start = rows[0]
    doc = [line for r, line in enumerate(lines) if r not in rows]
    uri = path.as_uri()
    version = 1
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": "\n".join(doc)}})  # fmt: skip
    pending: int | None = None
    sent_at: dict[int, float] = {}
    keystrokes: list[int] = []
    pauses: list[dict[str, Any]] = []

    def ask(line: int, col: int) -> int:
        nonlocal pending
        if pending is not None and pending not in client.answers:
            client.notify("$/cancelRequest", {"id": pending})
        pending = client.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": col},
            "context": {"triggerKind": 2}})  # fmt: skip
        sent_at[pending] = time.perf_counter()
        return pending

    def change(text_lines: list[str]) -> None:
        nonlocal version
        version += 1
        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"text": "\n".join(text_lines)}]})  # fmt: skip

    # The cursor lands where the typing will start, and the person takes a moment.
    ask(start, 0)
    time.sleep(args.settle)
    for row in rows:  # in order: each goes back where it was
        full = lines[row]
        indent = full[: len(full) - len(full.lstrip())]
        body = full[len(indent) :]
        tokens = TOKEN.findall(body)
        pause_at = len("".join(tokens[: max(1, len(tokens) // 2)]))
        doc.insert(row, indent)  # a new line, auto-indented
        change(doc)
        ask(row, len(indent))
        time.sleep(args.look)
        for k in range(1, len(body) + 1):
            doc[row] = indent + body[:k]
            change(doc)
            msg_id = ask(row, len(indent) + k)
            keystrokes.append(msg_id)
            if k == pause_at:
                done_at, answer = client.wait(msg_id)
                text = suggestion(answer)
                rest = body[k:]
                pauses.append({
                    "line": row + 1, "ms": round((done_at - sent_at[msg_id]) * 1000, 1),
                    "suggestion": text[:60], "expected": rest[:60],
                    "token_match": bool(text) and first_token(text) == first_token(rest),
                })  # fmt: skip
                time.sleep(args.read)
            else:
                time.sleep(args.interval)
    if pending is not None:
        client.wait(pending)
    client.close()
    subprocess.run([sys.executable, "-m", "assistant", "model", "stop"], env=env,
                   capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(runtime, ignore_errors=True)
    answered = late = cancelled = 0
    for n, msg_id in enumerate(keystrokes):
        got = client.answers.get(msg_id)
        next_sent = sent_at.get(keystrokes[n + 1]) if n + 1 < len(keystrokes) else None
        if got is None or not suggestion(got[1]):
            cancelled += 1
            continue
        if next_sent is None or got[0] <= next_sent:
            answered += 1
        else:
            late += 1
    ms = [p["ms"] for p in pauses]
    ordered = sorted(ms)
    result = {
        "corpus": args.corpus, "file": args.file, "lines": f"{start + 1}-{rows[-1] + 1}",
        "interval_s": args.interval, "settle_s": args.settle,
        "pythonpath": str(args.pythonpath or ""), "env": args.env,
        "pauses": len(pauses),
        "pause_to_suggestion_p50_ms": round(statistics.median(ms), 1),
        "pause_to_suggestion_p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "pause_empty": sum(1 for p in pauses if not p["suggestion"]),
        "next_token_match": sum(1 for p in pauses if p["token_match"]),
        "keystroke_requests": len(keystrokes), "answered_before_next_key": answered,
        "answered_late": late, "cancelled_or_empty": cancelled,
        "detail": pauses,
    }  # fmt: skip
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result["log"] = str(log)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--corpus", default="requests")
    ap.add_argument("--file", default="src/requests/models.py")
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--interval", type=float, default=0.12, help="seconds between keys")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds from open to typing")
    ap.add_argument("--look", type=float, default=1.0, help="seconds before typing a line")
    ap.add_argument("--read", type=float, default=1.0, help="seconds reading a suggestion")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--pythonpath", type=Path)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the work dir and server log")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if key != "detail":
            print(f"{key:28} {value}")
    for p in result["detail"]:
        print(f"  line {p['line']:4} {p['ms']:8.0f} ms  {p['suggestion']!r:40} "
              f"want {p['expected'][:30]!r}")  # fmt: skip


if __name__ == "__main__":
    main()
