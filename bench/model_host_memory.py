"""Memory of the three front-ends with and without the shared model host.

Runs the real front-ends on a small repository, each as a user would, with `model.host` off
(every process loads the model) and on (one host serves them all):
- the TUI (`assist` in tmux), after one chat question is answered;
- the language server (`assist lsp`), after one completion;
- the pre-commit hook (`git commit` with `assist hook install`), sampled while it runs.
The TUI and the language server stay up while the hook runs, as on a developer's machine.

For each process: RSS, PSS (shared pages split between the processes that map them: the fair
share of an mmap-ed GGUF) and USS (private pages). Prints one JSON object.

    python bench/model_host_memory.py [--model PATH.gguf] [--n-ctx 4096]

Default model: the embedded SmolLM2-135M. Vectors are off (`index.vectors = false`) so that
only the generating model is compared, not the embedder each process keeps for search.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lsp_client import RawLspClient  # noqa: E402 (the tests' raw JSON-RPC client)

UNDOCUMENTED = "\n\ndef add(a, b):\n    return a + b\n"


def memory(pid: int) -> dict[str, int]:
    """RSS, PSS and USS of a process in bytes, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, rest = line.partition(":")
            fields[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {"rss": 0, "pss": 0, "uss": 0}
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0), "uss": private}


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return found


def summed(pids: list[int]) -> dict[str, int]:
    total = {"rss": 0, "pss": 0, "uss": 0}
    for p in pids:
        for k, v in memory(p).items():
            total[k] += v
    return total


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if done.returncode not in (0, 1):
        raise RuntimeError(f"git {args}: {done.stderr}")
    return done.stdout + done.stderr


def make_repo(where: Path, env: dict[str, str]) -> Path:
    repo = where / "repo"
    (repo / "pkg").mkdir(parents=True)
    for i in range(12):
        (repo / "pkg" / f"mod{i}.py").write_text(
            f'"""Module {i}."""\n\n\ndef helper_{i}(x):\n    """Scale."""\n    return x * {i}\n'
        )
    git(repo, env, "init", "-q")
    git(repo, env, "add", ".")
    git(repo, env, "commit", "-q", "-m", "init")
    return repo


def run_mode(hosted: bool, model: str, n_ctx: int, work: Path) -> dict[str, Any]:
    runtime = Path(tempfile.mkdtemp(prefix="amem-"))
    home = work / ("home-host" if hosted else "home-local")
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSIST_", "GIT_"))}
    env.update(
        HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), XDG_RUNTIME_DIR=str(runtime),
        ASSIST_MODEL=model, ASSIST_MODEL_HOST="true" if hosted else "false",
        ASSIST_MODEL_N_CTX=str(n_ctx), ASSIST_INDEX_VECTORS="false",
        ASSIST_CHAT_MAX_TOKENS="16", ASSIST_DOCSTRING_MAX_TOKENS="16",
        GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@example.com", TERM="xterm-256color",
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )  # fmt: skip
    repo = make_repo(home, env)
    tmux_socket = f"amem-{os.getpid()}-{int(hosted)}"
    flags = [a for k in ("HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "ASSIST_MODEL",
                         "ASSIST_MODEL_HOST", "ASSIST_MODEL_N_CTX", "ASSIST_INDEX_VECTORS",
                         "ASSIST_CHAT_MAX_TOKENS", "PATH", "TERM")
             for a in ("-e", f"{k}={env[k]}")]  # fmt: skip

    def tmux(*args: str) -> str:
        clean = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(["tmux", "-L", tmux_socket, *args], env=clean, text=True,
                              capture_output=True, timeout=60).stdout  # fmt: skip

    def screen_until(text: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while text not in tmux("capture-pane", "-p", "-t", "tui"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the TUI never showed {text!r}")
            time.sleep(0.2)

    result: dict[str, Any] = {}
    lsp = None

    def host_pid() -> int | None:
        """This run's host (another one of this user's is not counted)."""
        from assistant.llm.hosting import running_hosts

        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        found = running_hosts()
        return int(found[0]["pid"]) if found else None

    try:
        installed = Path(sys.executable).with_name("assist")
        tmux("new-session", "-d", "-s", "tui", "-x", "110", "-y", "32", "-c", str(repo),
             *flags, str(installed))  # fmt: skip
        screen_until("Ask about the code")
        tmux("send-keys", "-t", "tui", "what does helper_3 do?", "Enter")
        screen_until("tok/s")
        tui_pid = int(tmux("list-panes", "-t", "tui", "-F", "#{pane_pid}").split()[0])

        lsp = RawLspClient([sys.executable, "-m", "assistant", "lsp"], repo, env,
                           work / f"lsp-{int(hosted)}.err")  # fmt: skip
        lsp.initialize(repo)
        uri = (repo / "pkg" / "mod3.py").as_uri()
        text = (repo / "pkg" / "mod3.py").read_text()
        lsp.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}})  # fmt: skip
        where = {"textDocument": {"uri": uri}, "position": {"line": 5, "character": 15}}
        lsp.call("textDocument/completion", where)

        subprocess.run([sys.executable, "-m", "assistant", "hook", "install"], cwd=repo,
                       env=env, capture_output=True, timeout=120, check=True)  # fmt: skip
        (repo / "pkg" / "mod3.py").write_text(text + UNDOCUMENTED)
        git(repo, env, "add", ".")
        peak: dict[str, int] = {"rss": 0, "pss": 0, "uss": 0}
        peak_all: dict[str, int] = {"rss": 0, "pss": 0, "uss": 0}
        began = time.perf_counter()
        commit = subprocess.Popen(["git", "-C", str(repo), "commit", "-q", "-m", "x"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        others = tree(tui_pid) + tree(lsp.proc.pid)
        host = host_pid() if hosted else None  # started by the TUI's question
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                hook = summed(tree(commit.pid))
                everyone = summed(others + tree(commit.pid) + ([host] if host else []))
                for k in peak:
                    peak[k] = max(peak[k], hook[k])
                    peak_all[k] = max(peak_all[k], everyone[k])
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        _, err = commit.communicate(timeout=900)
        result["hook_seconds"] = round(time.perf_counter() - began, 2)
        stop.set()
        sampler.join()
        result["hook_output"] = err.decode(errors="replace").strip().splitlines()[-1:]
        result["tui"] = summed(tree(tui_pid))
        result["lsp"] = summed(tree(lsp.proc.pid))
        result["hook_peak"] = peak
        result["host"] = memory(host) if host else None
        result["all_at_hook_peak"] = peak_all
    finally:
        if lsp is not None:
            lsp.close()
        tmux("kill-server")
        if hosted:
            subprocess.run([sys.executable, "-m", "assistant", "model", "stop"], env=env,
                           capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(runtime, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="GGUF file (default: the embedded SmolLM2-135M)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()
    if args.model is None:
        from assistant.llm.source import embedded_model_path

        args.model = str(embedded_model_path())
    out: dict[str, Any] = {"model": Path(args.model).name, "n_ctx": args.n_ctx,
                           "model_file_bytes": Path(args.model).stat().st_size}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for hosted in (False, True):
            out["host" if hosted else "in_process"] = run_mode(hosted, args.model, args.n_ctx,
                                                               Path(tmp))  # fmt: skip
    mib = 2**20
    for mode in ("in_process", "host"):
        r = out[mode]
        out[f"{mode}_total_pss_mib"] = round(r["all_at_hook_peak"]["pss"] / mib, 1)
        out[f"{mode}_total_rss_mib"] = round(r["all_at_hook_peak"]["rss"] / mib, 1)
    out["pss_ratio_host_to_in_process"] = round(
        out["host_total_pss_mib"] / out["in_process_total_pss_mib"], 3
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
