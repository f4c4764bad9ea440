"""Find or start the model host (llm/host.py), and `HostedModel`, the front-end's side of it.

A host is named by what its loaded model depends on: the GGUF file (path, size, modification
time) and the load settings (context, threads, GPU layers, FIM). Front-ends configured alike
share one; a changed file or setting gets its own, and the old one exits when idle.

Where hosts live: `$XDG_RUNTIME_DIR/assist` (a per-user tmpfs on Linux) or else
`<tmp>/assist-<uid>`. The directory must be ours and closed to everyone else; one that is not
is refused rather than repaired, since another user could have made it to catch our prompts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.gguf import read_gguf
from assistant.llm.protocol import FimKind, Request
from assistant.llm.remote import RemoteModel, ServerGone

COUNTS_KEPT = 4096
"""Token counts a `HostedModel` remembers (a round trip to the host each otherwise)."""
SOCKET_PATH_MAX = 100
"""`sun_path` holds 108 bytes on Linux and 104 on macOS."""


def hosting_supported() -> bool:
    return os.name == "posix" and hasattr(socket, "AF_UNIX")


def runtime_dir() -> Path:
    """The per-user directory of host sockets, made owner-only if new, refused if unsafe."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        where = Path(base) / "assist"
    else:
        where = Path(tempfile.gettempdir()) / f"assist-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        where.mkdir(mode=0o700)
    info = os.lstat(where)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise AssistError(
            f"{where} is not a private directory of this user (a symlink, another owner, or "
            "open to others): a model host will not put its socket there",
            "remove it (or `chmod 700` it if it is yours), or set model.host = false",
        )
    return where


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
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def ask(path: Path, method: str, endpoint: str, body: Any = None, timeout: float = 10) -> Any:
    """One JSON request to the host at `path`; OSError when nobody answers there."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, endpoint, data, headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}: {payload[:200]!r}")
        return json.loads(payload)
    except (http.client.HTTPException, json.JSONDecodeError) as exc:
        raise OSError(str(exc)) from None
    finally:
        conn.close()


class Host:
    """The host for one spec: its socket, and how to start it when nobody answers there."""

    @classmethod
    def of(cls, path: str | Path, settings: ModelSettings) -> Host:
        """The host that would serve the GGUF at `path` with these settings."""
        return cls(HostSpec(str(Path(path).resolve()), settings, settings.host_idle))

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        folder = runtime_dir()
        key = spec.key()
        self.socket = folder / f"model-{key}.sock"
        self.lock_path = folder / f"model-{key}.lock"
        self.log_path = folder / f"model-{key}.log"
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            raise AssistError(
                f"the model host's socket path is too long for the system: {self.socket}",
                "set XDG_RUNTIME_DIR to a shorter directory, or set model.host = false",
            )

    def props(self) -> dict[str, Any] | None:
        try:
            found = ask(self.socket, "GET", "/props", timeout=5)
        except OSError:
            return None
        return found if isinstance(found, dict) else None

    def ensure(self, timeout: float) -> dict[str, Any]:
        """The running host's facts, starting it first if nobody answers (one starter at a
        time: the others wait on the lock and then find it)."""
        found = self.props()
        if found is not None:
            return found
        import fcntl  # POSIX only, as hosting is (`hosting_supported`)

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            found = self.props()
            if found is not None:
                return found
            return self._start(timeout)
        finally:
            os.close(fd)  # closing releases the lock

    def _start(self, timeout: float) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # nobody answered there: a dead host's
        spec = {"socket": str(self.socket), "model": self.spec.model,
                "settings": self.spec.load_settings(), "idle_s": self.spec.idle_s}  # fmt: skip
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                         0o600)  # fmt: skip
        try:
            # The spec goes on stdin: a command line is readable by every user (/proc/PID/cmdline).
            process = subprocess.Popen(
                [sys.executable, "-m", "assistant.llm.host"],
                stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd,
                start_new_session=True,  # outlives this front-end, and its Ctrl-C
                close_fds=True,
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.props()
            if found is not None:
                return found
            if process.poll() is not None:
                raise AssistError(
                    f"the model host could not start: {self._log_tail()}",
                    f"see {self.log_path}, or set model.host = false to load the model here",
                )
            time.sleep(0.05)
        raise AssistError(
            f"the model host did not answer within {timeout:.0f} s (still loading the model?)",
            f"see {self.log_path}; raise model.timeout, or set model.host = false",
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"


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
        found = self.host.props()  # a running host has read the file: no need to parse it again
        if found is None:
            read_gguf(path)  # a file that is not GGUF fails here, before a host is started
            found = self.host.ensure(settings.timeout)
        self._props = found
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
                count = len(ask(self.host.socket, "POST", "/tokenize", {"content": text})["tokens"])
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


def running_hosts() -> list[dict[str, Any]]:
    """Every host of this user that answers, with its socket."""
    if not hosting_supported():
        return []
    found = []
    for sock in sorted(runtime_dir().glob("model-*.sock")):
        try:
            props = ask(sock, "GET", "/props", timeout=5)
        except OSError:
            continue
        if isinstance(props, dict):
            found.append({**props, "socket": str(sock)})
    return found


def stop_hosts(sockets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Ask hosts to exit (all of this user's by default); the ones asked."""
    stopped = []
    for host in running_hosts():
        if sockets is None or host["socket"] in sockets:
            with contextlib.suppress(OSError):
                ask(Path(host["socket"]), "POST", "/shutdown", {})
                stopped.append(host)
    return stopped
