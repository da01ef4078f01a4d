"""The control API: line-delimited JSON on a unix socket, with the caller's uid from SO_PEERCRED.

Requests (one JSON object per line; every change needs a non-empty `reason`):
  {"op": "status"}                                   read
  {"op": "events", "since": UNIX_TS|null, "limit": N} read
  {"op": "envelope"}                                 read: the 24-hour capacity envelope
  {"op": "plan"}                                     read: the 24-hour plan, its solve and fallback state
  {"op": "mode", "mode": "normal", "reason": "..."}
  {"op": "hold", "reason": "..."}  {"op": "release", "reason": "..."}
  {"op": "override", "point": "v1_position", "value": 30, "duration_s": 900, "reason": "..."}
  {"op": "override_clear", "point": "v1_position", "reason": "..."}
  {"op": "ack", "trip": "it_overtemp", "reason": "..."}
  {"op": "trip_test", "trip": "it_overtemp", "reason": "..."}
  {"op": "alarms"}                                   read: every alarm, its state, owner; NE 107
  {"op": "alarm_ack", "alarm": "it_supply_high", "reason": "..."}
  {"op": "shelve", "alarm": "...", "duration_s": 7200, "reason": "..."}  {"op": "unshelve", ...}
  {"op": "out_of_service", "alarm": "...", "reason": "..."}  {"op": "in_service", ...}
Responses: {"ok": true, ...} or {"ok": false, "error": "one line"}. A change becomes a
controller.core.requests object fed into the next tick; its response comes after that tick and says
whether the step accepted it, or its refusal.

Who may change things: uid 0, the daemon's own uid, and members of the operator group
(`heatctl-operators` unless configured otherwise). Anyone else who can open the socket (mode 0660,
group `heatctl` when that group exists) may read status and events; a change they send is refused,
audited, and told why.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

import structlog

from controller.core.alarms import ALARM_OPS, AlarmRequest
from controller.core.modes import Mode
from controller.core.requests import (AckTripRequest, ClearOverrideRequest, HoldRequest, ModeRequest,
                                 OverrideRequest, ReleaseRequest, Request, TripTestRequest)

log = structlog.get_logger(__name__)

OPERATOR_GROUP = "heatctl-operators"
SOCKET_MODE = 0o660
MAX_LINE = 64 * 1024
# A burst of CLI calls (a script polling status from many shells) waits in the kernel's queue instead
# of getting ECONNREFUSED; the kernel caps it at net.core.somaxconn (4096 by default since Linux 5.4).
LISTEN_BACKLOG = 1024
# Numeric arguments are bounded before they reach SQLite (an INTEGER is 64-bit: 10**29 overflows it).
MAX_EVENTS_LIMIT = 10_000
MAX_SINCE = 2.0 ** 40  # seconds since 1970: year ~36,800, far past any real timestamp, fits a double
READ_OPS = frozenset({"status", "events", "alarms", "envelope", "plan"})
CHANGE_OPS = frozenset({"mode", "hold", "release", "override", "override_clear", "ack", "trip_test"}
                       | set(ALARM_OPS))


@dataclass(frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        return user_name(self.uid)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def peer_credentials(sock: socket.socket) -> Caller:
    """The connecting process's pid, uid and gid, as the kernel saw them at connect()."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Caller(pid, uid, gid)


@dataclass(frozen=True)
class Authorizer:
    """Who may change the plant. `writer_uids` defaults to root and the daemon's own uid."""

    writer_uids: frozenset[int] = field(default_factory=lambda: frozenset({0, os.getuid()}))
    operator_group: str | None = OPERATOR_GROUP

    def refusal(self, caller: Caller) -> str | None:
        """None if `caller` may change things, else why not (one line)."""
        if caller.uid in self.writer_uids:
            return None
        if self.operator_group and self._in_group(caller.uid, self.operator_group):
            return None
        who = f"{caller.user} (uid {caller.uid})"
        allowed = ", ".join(f"uid {u}" for u in sorted(self.writer_uids)) or "no uid"
        group = f" or a member of group {self.operator_group}" if self.operator_group else ""
        return f"not authorized: {who} may read status and events only; changes need {allowed}{group}"

    @staticmethod
    def _in_group(uid: int, group: str) -> bool:
        try:
            g = grp.getgrnam(group)
            pw = pwd.getpwuid(uid)
        except KeyError:
            return False
        return g.gr_gid in os.getgrouplist(pw.pw_name, pw.pw_gid)


class ApiHandler(Protocol):
    """What the daemon provides to the server."""

    def api_status(self) -> dict[str, Any]: ...

    def api_events(self, since: float | None, limit: int) -> dict[str, Any]: ...

    def api_alarms(self) -> dict[str, Any]: ...

    def api_change(self, request: Request, caller: Caller) -> Awaitable[dict[str, Any]]: ...

    def api_refused(self, op: str, caller: Caller, why: str, reason: str) -> None: ...


def parse_request(msg: dict[str, Any], user: str) -> Request:
    """A change request's JSON -> a controller.core.requests object; ValueError with a one-line message."""
    op = msg.get("op")
    reason = msg.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a non-empty 'reason' is required for every change")

    def text(key: str) -> str:
        v = msg.get(key)
        if not isinstance(v, str) or not v:
            raise ValueError(f"'{key}' must be a non-empty string")
        return v

    def number(key: str) -> float:
        v = msg.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"'{key}' must be a number")
        return float(v)

    if op == "mode":
        try:
            mode = Mode(text("mode"))
        except ValueError:
            raise ValueError(f"unknown mode {msg.get('mode')!r}; expected one of "
                             f"{', '.join(m.value for m in Mode)}") from None
        return ModeRequest(reason=reason, user=user, mode=mode)
    if op == "hold":
        return HoldRequest(reason=reason, user=user)
    if op == "release":
        return ReleaseRequest(reason=reason, user=user)
    if op == "override":
        return OverrideRequest(reason=reason, user=user, point=text("point"), value=number("value"),
                               duration_s=number("duration_s"))
    if op == "override_clear":
        return ClearOverrideRequest(reason=reason, user=user, point=text("point"))
    if op == "ack":
        return AckTripRequest(reason=reason, user=user, trip=text("trip"))
    if op == "trip_test":
        return TripTestRequest(reason=reason, user=user, trip=text("trip"))
    if op in ALARM_OPS:
        return AlarmRequest(reason=reason, user=user, op=op, alarm=text("alarm"),
                            duration_s=number("duration_s") if op == "shelve" else None)
    raise ValueError(f"unknown op {op!r}")


class ApiServer:
    """Serves the control API on a unix socket for the daemon (`handler`)."""

    def __init__(self, path: str | Path, handler: ApiHandler, authorizer: Authorizer | None = None,
                 socket_group: str | None = OPERATOR_GROUP):
        self.path = Path(path)
        self.handler = handler
        self.authorizer = authorizer or Authorizer()
        self.socket_group = socket_group
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Bind the socket (0660, group `socket_group` if it exists). OSError with a clear message on failure."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path} exists and is not a socket; not removing it")
            if _socket_alive(self.path):
                raise OSError(f"{self.path} is in use: another heatctl daemon is running")
            self.path.unlink()  # a stale socket from a daemon that did not exit cleanly
        # Created with the umask applied, then set: no window in which it is wider than 0660.
        old = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE,
                                                           backlog=LISTEN_BACKLOG)
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)
        if self.socket_group:
            try:
                os.chown(self.path, -1, grp.getgrnam(self.socket_group).gr_gid)
            except KeyError:  # root and the daemon's user only; say which group would open it
                log.warning("api_socket_group_missing", path=str(self.path), group=self.socket_group,
                            fix=f"groupadd {self.socket_group} and add the operators to it")
            except PermissionError as exc:
                log.warning("api_socket_chown_failed", path=str(self.path), group=self.socket_group,
                            error=str(exc))
        log.info("api_listening", path=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._clients):
                t.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - shutting down
                pass
            self._server = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            sock = writer.get_extra_info("socket")
            caller = peer_credentials(sock)
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    await self._send(writer, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                    break
                if not line:
                    break
                resp = await self._dispatch(line, caller)
                await self._send(writer, resp)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - one bad client must not take the daemon down
            log.error("api_client_error", error=f"{type(exc).__name__}: {exc}")
        finally:
            if task is not None:
                self._clients.discard(task)
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, resp: dict[str, Any]) -> None:
        writer.write(json.dumps(resp, default=str).encode() + b"\n")
        await writer.drain()

    async def _dispatch(self, line: bytes, caller: Caller) -> dict[str, Any]:
        try:
            msg = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "request is not JSON (one object per line)"}
        if not isinstance(msg, dict):
            return {"ok": False, "error": "request must be a JSON object"}
        op = msg.get("op")
        if op == "status":
            return {"ok": True, "status": self.handler.api_status()}
        if op == "envelope" and hasattr(self.handler, "api_envelope"):
            return {"ok": True, **self.handler.api_envelope()}
        if op == "plan" and hasattr(self.handler, "api_plan"):
            return {"ok": True, **self.handler.api_plan()}
        if op == "events":
            since = msg.get("since")
            limit = msg.get("limit", 50)
            if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float))
                                      or not 0 <= since <= MAX_SINCE):
                return {"ok": False, "error": f"'since' must be a UNIX timestamp in 0..{MAX_SINCE:.0f} or null"}
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS_LIMIT:
                return {"ok": False, "error": f"'limit' must be an integer in 1..{MAX_EVENTS_LIMIT}"}
            return {"ok": True, **self.handler.api_events(since, limit)}
        if op == "alarms":
            return {"ok": True, **self.handler.api_alarms()}
        if op not in CHANGE_OPS:
            return {"ok": False, "error": f"unknown op {op!r}; expected one of "
                                          f"{', '.join(sorted(READ_OPS | CHANGE_OPS))}"}
        why = self.authorizer.refusal(caller)
        reason = msg.get("reason") if isinstance(msg.get("reason"), str) else ""
        if why is not None:
            self.handler.api_refused(op, caller, why, reason)
            return {"ok": False, "accepted": False, "error": why}
        try:
            request = parse_request(msg, caller.user)
        except ValueError as exc:
            self.handler.api_refused(op, caller, str(exc), reason)
            return {"ok": False, "accepted": False, "error": str(exc)}
        return await self.handler.api_change(request, caller)


def _socket_alive(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()
