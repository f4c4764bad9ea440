"""Find or start the model host (llm/host.py), and `HostedModel`, the front-end's side of it.

A host is named by what its loaded model depends on: the GGUF file (path, size, modification
time) and the load settings (context, threads, GPU layers, FIM). Front-ends configured alike
share one; a changed file or setting gets its own, and the old one exits when idle.

Where hosts live: `$XDG_RUNTIME_DIR/assist` (a per-user tmpfs on Linux) or else
`<tmp>/assist-<uid>`. The directory must be ours and closed to everyone else; one that is not
is refused rather than repaired, since another user could have made it to catch our prompts
(`HostingUnavailable`: the model then loads in-process, llm/source.py).

A host is alive while it holds its lock (llm/host_files.py), whether or not it answers: a
client starts a host only when it can take that lock itself, and waits for one that holds it
but is slow (paused, busy, swamped), up to `model.timeout`, rather than replace it. So there is
never more than one host per model, and every one is listed by `assist model hosts`
and stopped by `assist model stop`, paused or not; a socket where something else answers is
named in one line, and left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.gguf import read_gguf
from assistant.llm.host_files import (
    HostingUnavailable,
    is_host_process,
    lock_holder,
    open_log,
    open_private,
    runtime_dir,
    try_lock,
)
from assistant.llm.protocol import FimKind, Request
from assistant.llm.remote import RemoteModel, ServerGone

COUNTS_KEPT = 4096
"""Token counts a `HostedModel` remembers (a round trip to the host each otherwise)."""
SOCKET_PATH_MAX = 100
"""`sun_path` holds 108 bytes on Linux and 104 on macOS."""


def hosting_supported() -> bool:
    return os.name == "posix" and hasattr(socket, "AF_UNIX")


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """What a host loads; equal specs share a host."""

    model: str
    settings: ModelSettings
    idle_s: float

    def key(self) -> str:
        st = os.stat(self.model)
        s = self.settings
        facts = [self.model, st.st_size, st.st_mtime_ns, s.n_ctx, s.n_threads,
                 str(s.n_gpu_layers), s.fim, _code_stamp()]  # fmt: skip
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]

    def load_settings(self) -> dict[str, Any]:
        s = self.settings
        return {"n_ctx": s.n_ctx, "n_threads": s.n_threads, "n_gpu_layers": s.n_gpu_layers,
                "fim": s.fim, "max_tokens": s.max_tokens, "temperature": s.temperature}  # fmt: skip


@functools.cache
def _code_stamp() -> str:
    """The version of the code a host would run: an upgraded (or edited) assist starts a host
    of its own rather than talk to one still running the old code."""
    from assistant import __version__

    package = Path(__file__).parent.parent
    newest = max(p.stat().st_mtime_ns for p in package.rglob("*.py"))
    return f"{__version__}/{newest}"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        """A blocking connect, bounded by the timeout: a host whose listen queue is full is
        waited for, not taken for dead (a non-blocking connect fails at once with EAGAIN)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                wait = max(float(self.timeout), 0.001)
                limit = struct.pack("ll", int(wait), int(wait % 1 * 1_000_000))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            sock.connect(str(self.socket_path))
            sock.settimeout(self.timeout)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Junk(OSError):
    """Something answered on a host's socket, but not as a model host does."""


ANSWER_MAX = 1 << 20
"""Bytes of a plain answer read at most: what answers on a socket is not trusted either."""


def ask(path: Path, method: str, endpoint: str, body: Any = None, timeout: float = 10) -> Any:
    """One JSON request to the host at `path`; Junk when what answers is not a host, OSError
    when nobody answers there."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, endpoint, data, headers)
        response = conn.getresponse()
        payload = response.read(ANSWER_MAX)
        if response.status != 200:
            raise Junk(f"HTTP {response.status}: {payload[:120]!r}")
        return json.loads(payload)
    except http.client.RemoteDisconnected:
        raise  # hung up without a word (a host leaving, or refusing us): nobody answers
    except (http.client.HTTPException, ValueError, RecursionError) as exc:
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise Junk(f"{type(exc).__name__}: {text}") from None
    finally:
        conn.close()


class Host:
    """The host for one spec: its socket and lock, and how to start it when none lives."""

    @classmethod
    def of(cls, path: str | Path, settings: ModelSettings) -> Host:
        """The host that would serve the GGUF at `path` with these settings."""
        return cls(HostSpec(str(Path(path).resolve()), settings, settings.host_idle))

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.folder = runtime_dir()
        key = spec.key()
        self.socket = self.folder / f"model-{key}.sock"
        self.lock_path = self.folder / f"model-{key}.lock"
        self.log_path = self.folder / f"model-{key}.log"
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            raise HostingUnavailable(
                f"the model host's socket path is too long for the system: {self.socket}",
                "set XDG_RUNTIME_DIR to a shorter directory, or set model.host = false",
            )

    def props(self, timeout: float = 5) -> dict[str, Any] | None:
        try:
            found = ask(self.socket, "GET", "/props", timeout=timeout)
        except OSError:
            return None
        return found if isinstance(found, dict) else None

    def ensure(
        self, timeout: float, before_start: Callable[[], object] | None = None
    ) -> dict[str, Any]:
        """The running host's facts. Only a client that can take the host's lock starts one
        (`before_start` first); one that cannot waits for the live host that holds it to
        answer, up to `timeout`, and never removes its socket."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.props(timeout=max(deadline - time.monotonic(), 0.05))
            if found is not None:
                return found
            fd = open_private(self.folder, self.lock_path.name, os.O_RDWR)
            try:
                if try_lock(fd):  # no host lives: what is left at the socket is a dead one's
                    os.ftruncate(fd, 0)  # nor its pid: the new host writes its own
                    if before_start is not None:
                        before_start()
                    return self._start(fd, deadline, timeout)
            finally:
                os.close(fd)  # the host keeps the lock: it holds the same open file
            if time.monotonic() >= deadline:
                pid = lock_holder(self.folder, self.lock_path.name)
                who = f"the model host (pid {pid})" if pid else "the model host"
                raise AssistError(
                    f"{who} is alive but did not answer within {timeout:g} s (paused, busy, or "
                    "still loading the model?)",
                    f"wait and retry, `assist model stop` it, or raise model.timeout; see "
                    f"{self.log_path}",
                )
            time.sleep(0.05)

    def _start(self, lock_fd: int, deadline: float, timeout: float) -> dict[str, Any]:
        spec = {"socket": str(self.socket), "model": self.spec.model, "lock_fd": lock_fd,
                "settings": self.spec.load_settings(), "idle_s": self.spec.idle_s}  # fmt: skip
        log_fd = open_log(self.folder, self.log_path.name)
        try:
            # The spec goes on stdin: a command line is readable by every user (/proc/PID/cmdline).
            process = subprocess.Popen(
                [sys.executable, "-m", "assistant.llm.host"],
                stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd,
                start_new_session=True,  # outlives this front-end, and its Ctrl-C
                pass_fds=(lock_fd,),  # the lock passes to the host with no gap between us
                cwd="/",  # holds no repository's directory open while it lives
            )  # fmt: skip
        finally:
            os.close(log_fd)
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(json.dumps(spec).encode())
        process.stdin.close()
        # Reap it when it exits while this process lives (an idle exit), leaving no zombie.
        threading.Thread(target=process.wait, name="assist-host-reaper", daemon=True).start()
        while time.monotonic() < deadline:
            found = self.props(timeout=max(min(deadline - time.monotonic(), 5), 0.05))
            if found is not None:
                return found
            if process.poll() is not None:
                raise AssistError(
                    f"the model host could not start: {self._log_tail()}",
                    f"see {self.log_path}, or set model.host = false to load the model here",
                )
            time.sleep(0.05)
        raise AssistError(
            f"the model host did not answer within {timeout:g} s (still loading the model?)",
            f"see {self.log_path}; raise model.timeout, or set model.host = false",
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no log"


class HostedModel(RemoteModel):
    """A `Model` whose weights live in the model host; starts the host when it is missing and
    again when it died, retrying a request that had not yet produced text."""

    def __init__(self, path: str, settings: ModelSettings) -> None:
        if not Path(path).is_file():
            read_gguf(path)  # says what is wrong with the path, in its own words
        super().__init__("http://assist-model-host", settings)
        self.host = Host.of(path, settings)
        self.name = Path(path).name
        self.url = f"the model host ({self.host.socket})"
        # A running host has read the file: it is parsed here only before a host is started
        # (one that is not GGUF fails then, in its own words).
        self._props = self.host.ensure(settings.timeout, before_start=lambda: read_gguf(path))
        self._infill = True  # the host fills holes itself, with FIM tokens or by emulation
        self.ends_with_done = True
        self.warms = True
        self._counts: dict[str, int] = {}

    @property
    def fim_kind(self) -> FimKind:
        kind = self._props.get("fim_kind")
        return kind if kind in ("tokens", "server", "emulated") else "emulated"

    @property
    def fim_label(self) -> str:
        return f"{self._props.get('fim_label', '?')}, in the model host"

    @property
    def host_pid(self) -> int:
        return int(self._props.get("pid") or 0)

    def context_window(self) -> int:
        return int(self._props.get("n_ctx") or self.settings.n_ctx)

    def count_tokens(self, text: str) -> int:
        """Exact, from the host's tokenizer (prompts are packed to the token); remembered,
        since packing a prompt counts the same chunks again and again."""
        if not text:
            return 0
        known = self._counts.get(text)
        if known is not None:
            return known
        for attempt in (0, 1):
            try:
                answer = ask(self.host.socket, "POST", "/tokenize", {"content": text},
                             timeout=self.settings.timeout)  # fmt: skip
                count = len(answer["tokens"])
                break
            except (OSError, KeyError, TypeError):
                if attempt:
                    raise ServerGone(
                        "the model host does not answer", f"see {self.host.log_path}"
                    ) from None
                self._props = self.host.ensure(self.settings.timeout)  # a dead host: another
        if len(self._counts) >= COUNTS_KEPT:
            self._counts.clear()
        self._counts[text] = count
        return count

    def connection(self) -> http.client.HTTPConnection:
        return UnixHTTPConnection(self.host.socket, self.settings.timeout)

    def _stream(
        self, endpoint: str, body: dict[str, Any], pick: Callable[[Any], str], request: Request
    ) -> Iterator[str]:
        for attempt in (0, 1):
            produced = False
            try:
                for piece in super()._stream(endpoint, body, pick, request):
                    produced = True
                    yield piece
                return
            except ServerGone:
                if produced or attempt:
                    raise
                # A dead host (killed, crashed, or gone idle just now): start another.
                self._props = self.host.ensure(self.settings.timeout)


# -- `assist model hosts` and `assist model stop` ----------------------------------------------

PROBE_S = 3.0
"""Seconds a listed host has to answer: a live one answers `/props` at once, even mid-answer."""


def running_hosts(timeout: float = PROBE_S) -> list[dict[str, Any]]:
    """This user's hosts, each with its socket and `state`: "serving" (with the host's facts),
    "silent" (alive by its lock, but no answer) or "junk" (something else answers there)."""
    if not hosting_supported():
        return []
    folder = runtime_dir()
    keys = {
        p.name.removeprefix("model-").rsplit(".", 1)[0]
        for pattern in ("model-*.sock", "model-*.lock")
        for p in folder.glob(pattern)
    }
    found = []
    for key in sorted(keys):
        pid = lock_holder(folder, f"model-{key}.lock")
        entry = _probe(folder / f"model-{key}.sock", pid, timeout)
        if entry is not None:
            found.append(entry)
    return found


def _probe(sock: Path, pid: int | None, timeout: float) -> dict[str, Any] | None:
    """One socket's entry; None for a dead host's leftovers (nobody holds its lock)."""
    where = {"socket": str(sock), "pid": pid}
    if not sock.exists():
        if pid is None:
            return None
        return {**where, "state": "silent", "problem": "holds its lock but has no socket yet"}
    try:
        props = ask(sock, "GET", "/props", timeout=timeout)
    except Junk as exc:
        return {**where, "state": "junk", "problem": f"answers, but not as a model host: {exc}"}
    except OSError as exc:
        if pid is None:
            return None
        why = " ".join(str(exc).split())[:80] or type(exc).__name__
        problem = f"holds its lock but does not answer ({why}): paused or stuck?"
        return {**where, "state": "silent", "problem": problem}
    if not _is_facts(props):
        return {**where, "state": "junk", "problem": "answers, but not as a model host"}
    return {**props, "socket": str(sock), "state": "serving"}


def _is_facts(props: Any) -> bool:
    """`props` is what a host says of itself, with the types the listing prints."""
    if not isinstance(props, dict):
        return False
    numbers = ("resident_bytes", "requests", "idle_for_s", "idle_s")
    return (
        type(props.get("pid")) is int
        and props["pid"] > 0
        and isinstance(props.get("name"), str)
        and all(type(props.get(k)) in (int, float) for k in numbers)
    )


def stop_hosts(
    sockets: Sequence[str] | None = None, timeout: float = PROBE_S
) -> list[dict[str, Any]]:
    """Stop hosts (all of this user's by default): asked if they answer, signalled if they
    only hold their lock; each with its `outcome`: "stopped", "signalled" or "not stopped"."""
    done = []
    for host in running_hosts(timeout):
        if sockets is None or host["socket"] in sockets:
            done.append({**host, "outcome": _stop(host, timeout)})
    return done


def _stop(host: dict[str, Any], timeout: float) -> str:
    if host["state"] == "serving":
        try:
            ask(Path(host["socket"]), "POST", "/shutdown", {}, timeout=timeout)
            return "stopped"
        except OSError:
            pass
    pid = host.get("pid")
    if not pid or not is_host_process(pid):
        return "not stopped"
    try:
        os.kill(pid, signal.SIGTERM)  # the host's handler leaves as `/shutdown` does
        os.kill(pid, signal.SIGCONT)  # and a paused host wakes to hear it
    except ProcessLookupError:
        return "stopped"
    except OSError:
        return "not stopped"
    return "signalled"
