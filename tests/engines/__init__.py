"""Real engines from Debian packages, started on 127.0.0.1 for tests: Slurm (with munge),
Prometheus (central store with the remote-write receiver, or agent), VictoriaMetrics single-node.

Each harness is a context manager that owns its processes (foreground, logs and state in a given
directory, ports chosen free on 127.0.0.1), can be stopped and started again keeping its state, and
reaps everything on exit. Nothing here listens on any other address (tests/test_engines_loopback.py
checks each engine's sockets with `bound_sockets`).

    tests/engines/slurm.py            SlurmCluster, ensure_munge
    tests/engines/prometheus.py       Prometheus (mode="server" | "agent")
    tests/engines/victoriametrics.py  VictoriaMetrics
    tests/engines/exposition.py       Exposition: a /metrics page served from a thread

Shared here: Process (one foreground daemon, logged, stopped and reaped), HttpEngine (an engine
on HOST:port: start with a free port kept across restarts, readiness, stop, context manager; the
base of Prometheus and VictoriaMetrics), PromQueryAPI, free_port, wait_until, which_or_skip.

Missing binaries: `which_or_skip(binary, package)` skips with the Debian package to install, or
fails when the environment variable CI is set (CI must install it: see .ci/run).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

T = TypeVar("T")

HOST = "127.0.0.1"  # the only address any engine here listens on

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def in_ci() -> bool:
    """True when the environment variable CI is set to something other than ""/0/false/no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> None:
    """Skip the test with `message`, or fail it under CI (where everything must be installed)."""
    if in_ci():
        pytest.fail(f"{message} (CI is set: .ci/run must provide it)", pytrace=False)
    pytest.skip(message)


def which(binary: str) -> str | None:
    """shutil.which, also looking in the sbin directories (often not on a user's PATH)."""
    found = shutil.which(binary)
    if found:
        return found
    for d in _SBIN:
        p = Path(d, binary)
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def which_or_skip(binary: str, package: str) -> str:
    """The path of `binary`; when missing, skip naming the Debian package (fail when CI is set)."""
    path = which(binary)
    if path is None:
        unavailable(f"{binary} not found: apt-get install --no-install-recommends {package}")
    return path  # type: ignore[return-value]


def root_or_skip(why: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"needs root: {why}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice, so parallel workers rarely
    collide; harnesses retry with new ports when a daemon still finds its port taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.2,
               what: str = "condition", on_timeout: Callable[[], str] | None = None) -> T:
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass
    (TimeoutError naming `what`, the last value or exception, and on_timeout()'s diagnostics)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - the last error is reported on timeout
            last = exc
        if time.monotonic() >= deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise TimeoutError(f"{what}: not true after {timeout:g} s (last: {last!r}){extra}")
        time.sleep(interval)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"({path}: no log)"
    return f"--- last lines of {path}:\n" + "\n".join(text[-lines:])


def _proc_net_address(hexaddr: str) -> str:
    """"0100007F" (IPv4) or 32 hex digits (IPv6) from /proc/net/{tcp,udp}[6]: the kernel prints the
    address as 32-bit words in host byte order (little-endian here)."""
    raw = bytes.fromhex(hexaddr)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    if len(packed) == 16 and packed[:12] == b"\0" * 10 + b"\xff\xff":
        packed = packed[12:]  # ::ffff:a.b.c.d, an IPv6 socket bound to an IPv4 address: that address
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def bound_sockets(pids: list[int]) -> set[tuple[str, str, int]]:
    """(protocol, address, port) of every TCP socket listening, and every UDP socket bound, that
    one of `pids` holds open: the sockets found by inode (/proc/PID/fd -> socket:[INODE]) in
    /proc/PID/net/{tcp,tcp6,udp,udp6}. What `ss -ltnup` shows for those processes, without ss."""
    found: set[tuple[str, str, int]] = set()
    for pid in pids:
        inodes = set()
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue  # the process ended meanwhile
        if not inodes:
            continue
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            try:
                rows = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                f = row.split()
                local, state, inode = f[1], f[3], f[9]
                addr, port = local.rsplit(":", 1)
                # TCP 0A = LISTEN; UDP 07 = unconnected (a bound server socket)
                if inode in inodes and state == ("0A" if proto.startswith("tcp") else "07"):
                    found.add((proto.rstrip("6"), _proc_net_address(addr), int(port, 16)))
    return found


class EngineError(RuntimeError):
    pass


class Process:
    """One foreground daemon: Popen with stdout+stderr appended to `log`, stopped with SIGTERM,
    then SIGKILL after `grace` seconds, and always reaped."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name, self.argv, self.log, self.env, self.cwd = name, argv, Path(log), env, cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        if self.running:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        _live.add(self)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def exited(self) -> int | None:
        """The exit status if the process was started and has ended, else None."""
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.running:
            self.popen.send_signal(sig)  # type: ignore[union-attr]

    def stop(self, grace: float = 10.0) -> int | None:
        p = self.popen
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        _live.discard(self)
        return p.returncode

    def check_alive(self) -> None:
        rc = self.exited()
        if rc is not None:
            raise EngineError(f"{self.name} exited with status {rc}\n{tail(self.log)}")


_live: set[Process] = set()


@atexit.register
def _reap_forgotten() -> None:
    """Last resort for harnesses never closed (a test that forgot the `with`)."""
    for p in list(_live):
        try:
            p.stop(grace=5)
        except Exception:  # noqa: BLE001
            pass


def http_get(url: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> bytes:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return r.read()


class PromQueryAPI:
    """The Prometheus HTTP query API (served by Prometheus and VictoriaMetrics alike)."""

    url: str

    def api(self, path: str, **params: Any) -> Any:
        """GET {url}/api/v1/{path}; the `data` of a success, EngineError otherwise."""
        params = {k: v for k, v in params.items() if v is not None}
        try:
            body = http_get(f"{self.url}/api/v1/{path}", params)
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                doc = json.loads(body)
            except ValueError:
                raise EngineError(f"{path}: HTTP {e.code}: {body[:300]!r}") from None
            raise EngineError(f"{path}: HTTP {e.code}: {doc.get('error', doc)}") from None
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise EngineError(f"{path}: {doc}")
        return doc["data"]

    def query(self, promql: str, time: float | None = None) -> list[dict]:
        """Instant query: the result list ([{"metric": {...}, "value": [ts, "v"]}, ...])."""
        return self.api("query", query=promql, time=time)["result"]

    def query_range(self, promql: str, start: float, end: float, step: float | str = 1
                    ) -> list[dict]:
        """Range query: [{"metric": {...}, "values": [[ts, "v"], ...]}, ...]."""
        return self.api("query_range", query=promql, start=start, end=end, step=step)["result"]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query (None when empty; EngineError when several)."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise EngineError(f"{promql}: {len(result)} series, expected one: {result}")
        return float(result[0]["value"][1])

    def wait_until(self, predicate: Callable[[], T], timeout: float = 30.0,
                   interval: float = 0.25, what: str = "condition") -> T:
        return wait_until(predicate, timeout, interval, what, on_timeout=self.diagnostics)

    def diagnostics(self) -> str:
        return ""


class HttpEngine(PromQueryAPI):
    """One engine process serving HTTP on HOST:port, with its state and log under `root`: the
    plumbing Prometheus and VictoriaMetrics share. The port is chosen free on the first start and
    kept across stop()/start() (URLs handed out stay valid after a restart, the data dir is kept).

    A subclass names its binary (`binary`, `package`, `title`), builds its argv (`argv(path)`), says
    when it is ready (`ready()`), and may prepare its files (`prepare()`) before each start.
    """

    binary = ""
    package = ""
    title = ""

    def __init__(self, root: str | os.PathLike, log_name: str, start_timeout: float = 30.0):
        self.root = Path(root).absolute()
        self.log = self.root / log_name
        self.start_timeout = start_timeout
        self.port = 0
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def write_url(self) -> str:
        """The Prometheus remote-write endpoint (where the engine receives it)."""
        return f"{self.url}/api/v1/write"

    def argv(self, binary: str) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def start(self, attempts: int = 3):
        """Start (or restart: same port, same storage) and wait until ready(); a port taken between
        choosing and binding it on the first start is retried with a new one."""
        path = which_or_skip(self.binary, self.package)
        self.prepare()
        first = self.port == 0
        for attempt in range(1, attempts + 1):
            if first:
                self.port = free_port()
            self.process = Process(self.title, self.argv(path), self.log, cwd=self.root)
            self.process.start()
            try:
                self.wait_ready(self.start_timeout)
                return self
            except (EngineError, TimeoutError):
                self.process.stop()
                clash = "address already in use" in self.log.read_text(errors="replace")
                if not (first and clash) or attempt == attempts:
                    raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            self.process.check_alive()
            return self.ready()
        wait_until(ready, timeout, 0.1, f"{self.title} ready on {self.url}", on_timeout=self.diagnostics)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM (a clean shutdown: the engine keeps what it has on disk) and reap."""
        return self.process.stop(grace) if self.process else None

    def restart(self):
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.running)

    def close(self) -> None:
        self.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def diagnostics(self) -> str:
        return tail(self.log)
