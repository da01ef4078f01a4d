"""The control API's client side: find the daemon's socket, send one request, read one response.

Wire format (both directions): one JSON object per line, UTF-8. Every response has `ok`; a refused
or failed request has `error` (one line, for the operator). See controller/daemon/api_server.py.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time

DEFAULT_SOCKET = "/run/heatctl/heatctl.sock"
SOCKET_ENV = "HEATCTL_SOCKET"
# A change is answered after the tick that applied it: at most one tick period (up to 60 s by the
# config schema) plus the tick itself. Reads are answered at once.
CHANGE_TIMEOUT_S = 130.0
READ_TIMEOUT_S = 10.0
MAX_LINE = 8 * 1024 * 1024


# The CLI's exit code when the daemon cannot be reached at all (documented in `heatctl --help`).
EXIT_UNREACHABLE = 3

# A full listen queue (a burst of calls) refuses with ECONNREFUSED or EAGAIN just like a dead daemon
# does; a brief retry tells the two apart without making the dead case slow to report.
CONNECT_RETRY_S = 0.5
CONNECT_RETRY_STEP_S = 0.02
_RETRY_ERRNOS = (errno.ECONNREFUSED, errno.EAGAIN)


class ApiError(Exception):
    """A one-line message for the operator and the exit code the CLI should return."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def socket_path(arg: str | None = None) -> str:
    """--socket, else $HEATCTL_SOCKET, else the default path."""
    return arg or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def call(path: str, request: dict, timeout_s: float | None = None) -> dict:
    """Send one request and return the daemon's response; raise ApiError (never anything else)."""
    if timeout_s is None:
        timeout_s = READ_TIMEOUT_S if request.get("op") in ("status", "events", "alarms") else CHANGE_TIMEOUT_S
    sock = _connect(path, timeout_s)
    try:
        try:
            buf = _exchange(sock, path, request, timeout_s)
        except socket.timeout:
            raise ApiError(f"no answer from the daemon on {path} within {timeout_s:g} s") from None
        except OSError as exc:
            raise ApiError(f"connection to the daemon on {path} failed: {exc.strerror or exc}") from None
    finally:
        sock.close()
    if not buf:
        raise ApiError(f"the daemon on {path} closed the connection without an answer")
    try:
        resp = json.loads(buf)
    except ValueError:
        raise ApiError(f"unreadable answer from the daemon on {path}") from None
    if not isinstance(resp, dict):
        raise ApiError(f"unreadable answer from the daemon on {path}")
    return resp


def _connect(path: str, timeout_s: float) -> socket.socket:
    """A connected socket, retrying a refused/busy connect for CONNECT_RETRY_S; ApiError otherwise."""
    give_up = time.monotonic() + CONNECT_RETRY_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno in _RETRY_ERRNOS and time.monotonic() < give_up:
                time.sleep(CONNECT_RETRY_STEP_S)
                continue
            _raise_unreachable(path, exc)


def _socket_group(path: str) -> str:
    """The group that may open the socket: its own group, else the installed default."""
    import grp
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        return "heatctl-operators"  # systemd/heatctl.sysusers.conf, api.socket_group's default


def _raise_unreachable(path: str, exc: OSError) -> None:
    if isinstance(exc, FileNotFoundError):
        msg = f"no socket at {path} (is `heatctl run` running? set --socket or ${SOCKET_ENV})"
    elif isinstance(exc, ConnectionRefusedError):
        msg = f"connection refused on {path} (stale socket: the daemon is not running)"
    elif isinstance(exc, PermissionError):
        group = _socket_group(path)
        msg = (f"permission denied on {path} (join group {group}: sudo usermod -aG {group} $USER, then log "
               f"in again; or run as root)")
    else:
        msg = f"{path}: {exc.strerror or exc}"
    raise ApiError(f"cannot reach the daemon: {msg}", EXIT_UNREACHABLE) from None


def _exchange(sock: socket.socket, path: str, request: dict, timeout_s: float) -> bytearray:
    sock.sendall(json.dumps(request).encode() + b"\n")
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_LINE:
            raise ApiError(f"response from {path} too long")
    return buf


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1h30m', '500ms' -> seconds. ValueError with a one-line message."""
    t = text.strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if not t or pos != len(t):
        raise ValueError(f"expected a duration like 90s, 15m, 2h or 1h30m, got {text!r}")
    if total <= 0:
        raise ValueError(f"expected a duration > 0, got {text!r}")
    return total


# --- helpers shared by the CLI verbs that talk to the daemon ----------------------------------

def add_socket_argument(parser) -> None:
    parser.add_argument("--socket", default=None, metavar="PATH",
                        help=f"the daemon's control socket (default: ${SOCKET_ENV}, else {DEFAULT_SOCKET})")


def reason_type(text: str) -> str:
    """argparse type for --reason: every change to the plant says why."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty: every change needs a reason")
    return text.strip()


def duration_type(text: str) -> float:
    import argparse

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_json_argument(p) -> None:
    """--json for a change verb: the daemon's whole answer as JSON (exit codes unchanged)."""
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")


def run_change(args, request: dict, describe=None) -> int:
    """Send a change, print one line (accepted / refused), return the exit code.

    0: accepted; 1: refused by the daemon (the reason is printed); 3: the daemon is unreachable."""
    import sys

    path = socket_path(getattr(args, "socket", None))
    try:
        resp = call(path, request)
    except ApiError as exc:
        print(f"heatctl: {exc}", file=sys.stderr)
        return exc.exit_code
    if getattr(args, "json", False):
        import json
        print(json.dumps(resp, indent=2, sort_keys=True, default=str))
        return 0 if resp.get("accepted") else 1
    if resp.get("accepted"):
        print(f"accepted: {resp.get('message', request.get('op'))} (tick {resp.get('tick')}, mode {resp.get('mode')}"
              + (", held" if resp.get("held") else "") + ")")
        if describe is not None:
            describe(resp)
        return 0
    print(f"heatctl: {request.get('op', '').replace('_', '-')} {resp.get('error', 'refused')}"
          if resp.get("error", "").startswith("refused") else f"heatctl: {resp.get('error', 'refused')}",
          file=sys.stderr)
    return 1
