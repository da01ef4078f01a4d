"""IPMI/DCMI driver: server power readings and the site power cap, over RMCP+ (IPMI over LAN).

Client library: pyghmi. It is pure Python, speaks RMCP+ (lanplus) natively, and keeps one
authenticated session per BMC open, so a DCMI power reading is one UDP round trip (0.1-0.6 ms on
loopback) instead of a new ipmitool/FreeIPMI process and a full RAKP login per call (about 30 ms and
7.5 ms, PROTOCOLS.md) -- 64 BMCs read every second would otherwise mean 64 logins per second against
BMCs that allow a handful of sessions. pyghmi is what OpenStack VirtualBMC and xCAT/confluent build
on, so it is exercised against real BMC firmware, and it is already a pinned dependency.
python-ipmi 0.6.1 was not chosen: its native LAN interface is IPMI 1.5 RMCP; lanplus goes through
an ipmitool subprocess, which is the slow path again.

How pyghmi is driven (pyghmi==1.6.19 is pinned: this module uses its session internals):

- Every BMC's requests run as one coroutine at a time on the event loop (`_BmcLink`); pyghmi's
  own I/O thread receives, and wakes a request by resolving its future (`_LoopWake`). A BMC whose
  previous request is still running (a hung BMC) reports LOST at once ("busy") instead of
  queueing more, so a hung BMC never delays the others. read() waits for all BMCs together, at
  most `timeout_s`; a BMC that has not answered by then is LOST for this tick while its request
  keeps retransmitting for up to COMMAND_GIVE_UP_S, then drops the session. Until 2026-12 each
  BMC had a worker thread: at a 100 ms tick with 64 BMCs their GIL hand-offs made every socket
  send of the event loop wait (bench/bench_scale.py, README "A big site").
- pyghmi's synchronous `raw_command` registers its wake-up only after sending, so a reply that
  arrives first (loopback, a fast BMC) waits for the retry timer (0.5-1 s); and its login loop
  (`Session.wait_for_rsp`) processes *every* session's packets and blocks. So this driver sends
  with pyghmi (`raw_command(callback=...)`, async login) and waits itself: wake-up registered
  first, then only its own session's queue is processed.
- Sessions are re-established after a failure: the next tick logs in again at once; a failed login
  backs off from RECONNECT_BACKOFF_MIN_S doubling to RECONNECT_BACKOFF_MAX_S (`drivers.backoff`,
  driver clock). Every failure line and LOST reason names the BMC's host:port, and while backing
  off, when the next login is.

Points: a `server_power` point with `source: {driver: <name>, bmc: srvN}` reads DCMI Get Power
Reading (W). The `power_cap` actuator (`source: {driver: <name>}`, no bmc) is the site cap in W:
write() shares it among the BMCs in proportion to `max_power_w`, clamps each share to
[min_power_w, max_power_w], sends Set Power Limit + Activate, and verifies with Get Power Limit. Its
reading is the effective site cap read back: the sum over BMCs of the active limit, or of
`max_power_w` for a BMC with no active limit (an uncapped server may draw up to its maximum); LOST
if any BMC's limit could not be read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pyghmi.ipmi.private.session as ipmisession
import structlog
import yaml

from controller.core.readings import Quality, Reading
from drivers.backoff import Backoff
from drivers.ipmi import client_socket
from drivers.base import Clock, Driver, DriverPoint, LinkState, WriteResult, retry_text
from controller.site.ipmi_schema import BmcConfig, IpmiDriverConfig, IpmiPointSource

log = structlog.get_logger(__name__)

# DCMI (netfn 0x2C, group extension 0xDC; DCMI 1.5 table 6-1), as in PROTOCOLS.md.
NETFN_DCMI = 0x2C
DCMI_GROUP = 0xDC
CMD_GET_POWER_READING = 0x02
CMD_GET_POWER_LIMIT = 0x03
CMD_SET_POWER_LIMIT = 0x04
CMD_ACTIVATE_POWER_LIMIT = 0x05
# Get Power Limit answers 0x80 while no limit is active: a state, not an error (PROTOCOLS.md).
CC_NO_ACTIVE_LIMIT = 0x80
CC_NAMES = {
    0x80: "no active power limit",
    0x84: "power limit out of range",
    0x85: "correction time out of range",
    0x89: "statistics reporting period out of range",
    0xC1: "invalid command (DCMI not supported?)",
    0xD4: "insufficient privilege (DCMI often needs ADMIN)",
}
# Power reading state bit 6: the BMC is measuring (DCMI 1.5 table 6-16).
POWER_MEASUREMENT_ACTIVE = 0x40

# Set Power Limit parameters (DCMI 1.5 table 6-18).
# Exception action 0x11: log a SEL event if the limit cannot be held -- never 0x01 (hard power off).
EXCEPTION_ACTION_LOG_ONLY = 0x11
# Time the BMC may take to bring the server under its limit (ms). The cap loop acts over tens of
# seconds; 1 s is inside what BMCs commonly accept (some reject shorter values with 0x85).
CORRECTION_TIME_MS = 1000
# Statistics sampling period (s) the limit is judged over.
SAMPLING_PERIOD_S = 1

# A command unanswered this long (s) means a dead session: drop it and log in again. Real BMCs take
# from 40 ms to several seconds (PROTOCOLS.md); the tick already reported LOST after timeout_s.
COMMAND_GIVE_UP_S = 3.0
# A login (5 round trips: auth caps, open session, RAKP1/3, privilege) gets this long (s).
LOGIN_TIMEOUT_S = 3.0
# Backoff between failed logins (s): a crashed BMC recovers in minutes (PROTOCOLS.md); a retry every
# 30 s at most keeps us from flooding it, the first retries come quickly for short glitches.
RECONNECT_BACKOFF_MIN_S = 1.0
RECONNECT_BACKOFF_MAX_S = 30.0
# DCMI limits are whole watts; a readback within this of the command is the command.
LIMIT_TOLERANCE_W = 0.5
# An unchanged share is not sent again before this long (s): every read already reads each active
# limit back (a BMC that lost its limit shows in the cap reading and is re-sent at the next write),
# and a 100 ms tick would otherwise send 3 commands to every BMC per tick (192 for 64 BMCs) for
# nothing. The periodic re-send is a backstop, like the Modbus driver's write_refresh_s.
LIMIT_REFRESH_S = 30.0


def _io_recvfrom_nonblocking(mysocket, size):
    """pyghmi's `_io_recvfrom` without the setblocking(0) toggle (see install_pyghmi_fixes)."""
    try:
        return mysocket.recvfrom(size, socket.MSG_DONTWAIT)
    except OSError:
        return None


def install_pyghmi_fixes() -> None:
    """Make pyghmi's I/O thread never block in a receive. Idempotent; applied on import.

    pyghmi toggles a shared socket's blocking mode per call: `_io_sendto` sets it blocking (in any
    thread that sends) and the I/O thread sets it non-blocking just before each `recvfrom`. When a
    send lands in between, the I/O thread blocks in `recvfrom` on that one socket and stops serving
    every other socket until a packet arrives there: with 8 sessions and a BMC server in one
    process, all traffic stalled for seconds within a few hundred requests. MSG_DONTWAIT makes
    the receive non-blocking whatever the socket's mode.
    """
    ipmisession._io_recvfrom = _io_recvfrom_nonblocking
    ipmisession._io_wait = _io_wait_poking_the_io_socket


def _io_wait_poking_the_io_socket(timeout, myaddr=None, evq=None):
    """pyghmi's `_io_wait` (a wait piggy-backed on its I/O thread's select), with the poke that
    shortens that select sent by `wake_io_thread` to the first I/O socket's own address.

    pyghmi pokes `(myself, port)`, with `myself` guessed once per process ('::1' or
    '::ffff:127.0.0.1') for a first socket it assumes is its own, bound to [::]. The first socket
    may be a simulated BMC's (127.0.0.1), or the driver's bound to loopback
    (drivers.ipmi.client_socket): a poke to '::1' then never arrives, and a wait such as pyghmi's
    logout sleeps until some other packet or its 300 s select timeout ends the select.
    """
    evt = threading.Event()
    if evq is not None:
        evq.append(evt)
    deadline = timeout + ipmisession._monotonic_time()
    ipmisession.ioqueue.append((deadline, evt, myaddr))
    if deadline < ipmisession.selectdeadline:
        wake_io_thread()
    evt.wait()


def wake_io_thread() -> None:
    """Make pyghmi's I/O thread go round its loop (and so select on sockets created since).

    pyghmi opens sockets without telling its I/O thread, which may sit in a select() of up to 300 s
    on the old list; its own `_io_wait` pokes it with a 1-byte datagram (ignored as too short to be
    IPMI). The driver's waits do not use `_io_wait`, so a new session pokes it here.
    """
    sockets = list(ipmisession.iosockets)
    if not sockets:
        return
    target = sockets[0]
    try:
        with socket.socket(target.family, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"\x01", target.getsockname()[:2])
    except OSError:
        pass


install_pyghmi_fixes()


class BmcError(Exception):
    """A BMC did not answer, refused, or answered something unusable; the message says which."""


@dataclass(frozen=True)
class _ReadResult:
    power_w: float
    measuring: bool
    # Active limit in W, None when no limit is active; not read (None, read=False) without a cap point.
    limit_w: float | None = None
    limit_read: bool = False


class _LoopWake:
    """A wake-up that pyghmi's I/O thread can set (it calls `.set()` on the objects queued in its
    `ioqueue`): resolves a future on the event loop, so a coroutine can wait for the next packet
    from its BMC without a thread of its own."""

    __slots__ = ("_loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self.future = loop.create_future()

    def set(self) -> None:  # on pyghmi's I/O thread
        try:
            self._loop.call_soon_threadsafe(self._fire)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    def _fire(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        if timeout_s > 0 and not self.future.done():
            await asyncio.wait((self.future,), timeout=timeout_s)


class _BmcLink:
    """One BMC: its pyghmi session, the task running its current request, and its reconnect backoff.

    Its requests are coroutines on the event loop: pyghmi's calls made here only send a datagram
    or handle queued packets (none of them waits: `incommand` is always cleared before the next
    request, see `_command`), and the wait for a reply is a future that pyghmi's I/O thread
    resolves (`_LoopWake`). One request at a time per BMC: `busy` while its task runs.
    """

    def __init__(self, cfg: BmcConfig, username: str, password: str, timeout_s: float,
                 clock: Clock):
        self.cfg = cfg
        self.name = cfg.name
        self._username = username
        self._password = password
        # Retransmit a request when no reply came within the tick's timeout.
        self._retransmit_s = timeout_s
        self._clock = clock
        self._task: asyncio.Task | None = None
        self._session: ipmisession.Session | None = None
        self.endpoint = f"{cfg.host}:{cfg.port}"
        self.backoff = Backoff(RECONNECT_BACKOFF_MIN_S, RECONNECT_BACKOFF_MAX_S)
        self._login_error = ""
        self._ever_logged_in = False
        self.reconnects = 0
        # State of the asyncio side: whether the last tick got an answer (None: not asked yet).
        self.answering: bool | None = None

    # --- asyncio side -------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def submit(self, fn: Callable, *args) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(fn(*args))
        # A result nobody waits for any more (the tick timed out) must not warn as "never retrieved".
        self._task.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._task

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()  # its `finally` clears the command in progress

    # --- requests (coroutines) ----------------------------------------------------------------
    async def read(self, want_limit: bool) -> _ReadResult:
        rsp = await self._command(CMD_GET_POWER_READING, [DCMI_GROUP, 0x01, 0x00, 0x00])
        data = _require_ok(rsp, "get power reading")
        if len(data) < 18:
            raise BmcError(f"get power reading: short answer ({len(data)} bytes)")
        (power_w,) = struct.unpack_from("<H", data, 1)
        measuring = bool(data[17] & POWER_MEASUREMENT_ACTIVE)
        if not want_limit:
            return _ReadResult(float(power_w), measuring)
        return _ReadResult(float(power_w), measuring, await self._get_limit(), True)

    async def apply_limit(self, limit_w: int) -> float | None:
        """Set, activate and read back one power limit; returns the active limit read back (W)."""
        payload = bytes([DCMI_GROUP, 0, 0, 0, EXCEPTION_ACTION_LOG_ONLY]) + struct.pack(
            "<HIHH", limit_w, CORRECTION_TIME_MS, 0, SAMPLING_PERIOD_S)
        _require_ok(await self._command(CMD_SET_POWER_LIMIT, list(payload)), f"set power limit {limit_w} W")
        _require_ok(await self._command(CMD_ACTIVATE_POWER_LIMIT, [DCMI_GROUP, 0x01, 0x00, 0x00]),
                    "activate power limit")
        return await self._get_limit()

    def logout(self) -> None:
        """Close Session, best effort: one datagram, no wait (pyghmi's logout sends without retry
        once no command is in progress)."""
        session, self._session = self._session, None
        if session is not None and not session.broken:
            session.incommand = False
            session.lastpayload = None
            try:
                session.logout()
            except Exception:  # closing is best effort: the BMC times the session out anyway
                pass

    async def _get_limit(self) -> float | None:
        rsp = await self._command(CMD_GET_POWER_LIMIT, [DCMI_GROUP, 0x00, 0x00])
        if rsp.get("code") == CC_NO_ACTIVE_LIMIT:
            return None
        data = _require_ok(rsp, "get power limit")
        if len(data) < 6:
            raise BmcError(f"get power limit: short answer ({len(data)} bytes)")
        (limit_w,) = struct.unpack_from("<H", data, 4)
        return float(limit_w)

    # --- session ------------------------------------------------------------------------------
    async def _command(self, command: int, data: list[int]) -> dict:
        session = await self._ensure_session()
        answer: list[dict] = []
        session.raw_command(netfn=NETFN_DCMI, command=command, data=data,
                            callback=answer.append, timeout=self._retransmit_s)
        start = time.monotonic()
        give_up_at = start + COMMAND_GIVE_UP_S
        resend_at = start + self._retransmit_s
        try:
            while True:
                wake = self._arm_wakeup(session, COMMAND_GIVE_UP_S)
                session.process_pktqueue()
                if answer:
                    rsp = answer[0]
                    if "error" in rsp and "code" not in rsp:
                        raise BmcError(rsp["error"])
                    return rsp
                if session.broken:
                    raise BmcError("session lost")
                now = time.monotonic()
                if now >= give_up_at:
                    raise BmcError(f"no answer in {COMMAND_GIVE_UP_S:.0f} s")
                if now >= resend_at:
                    if session.lastpayload:
                        # As pyghmi's own retry: resend the same request, mark the sequence taboo.
                        session.hasretried = 1
                        session.send_payload()
                    resend_at = now + self._retransmit_s
                await wake.wait(min(resend_at, give_up_at) - now)
        except BmcError:
            self._drop_session()
            raise
        except Exception as exc:  # pyghmi raises plain exceptions on malformed traffic
            self._drop_session()
            raise BmcError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            session.incommand = False
            while session.evq:
                session.evq.popleft().set()

    async def _ensure_session(self) -> ipmisession.Session:
        session = self._session
        if session is not None and session.logged and not session.broken:
            return session
        self._session = None
        now = self._clock()
        if not self.backoff.ready(now):
            raise BmcError(f"not connected ({self._login_error}); "
                           f"{retry_text(self.backoff.wait_s(now))}")
        try:
            session = await self._login()
        except BmcError as exc:
            delay = self.backoff.failure(self._clock())
            self._login_error = str(exc)
            raise BmcError(f"{exc}; {retry_text(delay)}") from exc
        self.backoff.success()
        if self._ever_logged_in:
            self.reconnects += 1
        self._ever_logged_in = True
        self._session = session
        return session

    async def _login(self) -> ipmisession.Session:
        result: list[dict] = []
        # pyghmi registers every new session here under the str user/password and "deletes" it
        # under bytes, so the entry stays; a later Session() with the same parameters would be
        # handed the old, broken session object instead of a new one.
        initting_key = (self.cfg.host, self._username, self._password, self.cfg.port, None)
        ipmisession.Session.initting_sessions.pop(initting_key, None)
        try:
            session = _LoginSession(
                bmc=self.cfg.host, userid=self._username, password=self._password,
                port=self.cfg.port, onlogon=result.append)
        except Exception as exc:
            raise BmcError(f"login: {type(exc).__name__}: {exc}") from exc
        wake_io_thread()  # the session may have opened a socket the I/O thread does not watch yet
        start = time.monotonic()
        deadline = start + LOGIN_TIMEOUT_S
        resend_at = start + self._retransmit_s
        try:
            while not result and not (session.logged and not session.logging):
                wake = self._arm_wakeup(session, LOGIN_TIMEOUT_S)
                session.process_pktqueue()
                if result or session.broken:
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                if now >= resend_at:
                    if session.lastpayload:
                        # pyghmi's own handshake retry (resend, new open-session request or RAKP
                        # restart), on our schedule: its timer grows by 1 s per retry and would
                        # turn into a full re-login, so it is held at its initial value.
                        session.timeout = ipmisession.initialtimeout
                        with ipmisession.util.protect(ipmisession.WAITING_SESSIONS):
                            ipmisession.Session.waiting_sessions.pop(session, None)
                        session._timedout()
                    resend_at = now + self._retransmit_s
                    continue
                await wake.wait(min(resend_at, deadline) - now)
        except Exception as exc:
            self._abandon(session)
            raise BmcError(f"login: {type(exc).__name__}: {exc}") from exc
        finally:
            ipmisession.Session.initting_sessions.pop(initting_key, None)
        if result and "error" in result[0]:
            self._abandon(session)
            raise BmcError(f"login: {result[0]['error']}")
        if not (session.logged and not session.logging and not session.broken):
            self._abandon(session)
            raise BmcError(f"login: no answer in {LOGIN_TIMEOUT_S:.0f} s")
        # Never re-login inside a command (pyghmi would block for up to ~20 s): a command that
        # fails drops the session, and the next tick logs in again under our own bounds.
        session.logontries = 0
        return session

    @staticmethod
    def _arm_wakeup(session: ipmisession.Session, horizon_s: float) -> _LoopWake:
        """Register with pyghmi's I/O thread a wake-up for the next packet from this BMC.

        Registered *before* looking at the session's queue, so no reply can slip in between.
        """
        wake = _LoopWake(asyncio.get_running_loop())
        ipmisession.ioqueue.append(
            (ipmisession._monotonic_time() + horizon_s, wake, session.sockaddr))
        return wake

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._abandon(session)

    @staticmethod
    def _abandon(session: ipmisession.Session) -> None:
        # Clear the command in progress first, or pyghmi's logout waits for it to time out.
        session.incommand = False
        session.lastpayload = None
        try:
            if not session.broken:
                session._mark_broken("abandoned")  # sends Close Session, best effort
        except Exception:
            pass


class _LoginSession(ipmisession.Session):
    """pyghmi's client session, with the last login step (Set Session Privilege) asynchronous.

    pyghmi sends that request from inside the packet handler and blocks in its own wait, which can
    miss a fast reply and sleep through its retry timer (module docstring). Here the request is
    sent with a callback and the login loop of `_BmcLink._login` keeps processing packets.
    Its socket is bound to loopback for a BMC on loopback, not to every address
    (drivers.ipmi.client_socket).
    """

    def _assignsocket(self, server=None, forbiddensockets=()):
        # An instance method where pyghmi has a classmethod: pyghmi calls it on the new session
        # (self.bmc is set by then), so the socket can follow the BMC's address.
        return client_socket.assign(self.bmc, forbiddensockets)

    def _req_priv_level(self):
        # As pyghmi 1.6.19 Session._req_priv_level, with the response handled in a callback.
        self.logged = 1
        self.logoutexpiry = None
        self.maxtimeout = 4
        self.logontries = 1
        self.raw_command(netfn=0x6, command=0x3B, data=[self.privlevel],
                         callback=self._got_priv_level)

    def _got_priv_level(self, response):
        self.incommand = False
        code = response.get("code", 0xFFFF)
        if code in (0x80, 0x81) and self.privlevel == 4:
            # Some BMCs refuse ADMIN only at this step: ask for OPERATOR, as pyghmi does.
            self.privlevel = 3
            self.raw_command(netfn=0x6, command=0x3B, data=[self.privlevel],
                             callback=self._got_priv_level)
            return
        self.logging = False
        if code:
            self.logged = 0
            self.onlogpayload = None
            error = response.get("error") or f"completion code 0x{code:02x}"
            self.onlogon({"error": f"{error} while requesting privilege level {self.privlevel}"})
            return
        with ipmisession.util.protect(ipmisession.KEEPALIVE_SESSIONS):
            ipmisession.Session.keepalive_sessions[self] = {
                "ipmisession": self,
                "timeout": ipmisession._monotonic_time() + ipmisession.MAX_IDLE,
            }
        self.onlogon({"success": True})


def _require_ok(rsp: dict, what: str) -> bytes:
    code = rsp.get("code", 0xFFFF)
    if code != 0:
        raise BmcError(f"{what}: completion code 0x{code:02x} ({CC_NAMES.get(code, 'error')})")
    data = bytes(rsp.get("data", b""))
    if not data or data[0] != DCMI_GROUP:
        raise BmcError(f"{what}: answer is not DCMI")
    return data


def load_credentials(path: str) -> tuple[str, str]:
    """Read `username:` and `password:` from a YAML file; raise ValueError naming what is wrong."""
    with open(Path(path), encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"username", "password"}:
        raise ValueError(f"{path}: expected exactly the keys username and password")
    username, password = data["username"], data["password"]
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise ValueError(f"{path}: username and password must be strings")
    if len(username) > 16 or len(password) > 20:
        raise ValueError(f"{path}: IPMI allows 16 characters of username and 20 of password")
    return username, password


def share_cap(cap_w: float, bmcs: tuple[BmcConfig, ...]) -> dict[str, int]:
    """The site cap shared in proportion to max_power_w, each clamped to [min, max] (whole W)."""
    total_max = sum(b.max_power_w for b in bmcs)
    shares = {}
    for b in bmcs:
        share = cap_w * b.max_power_w / total_max
        # Down to whole watts (DCMI's unit), never below the BMC's floor nor above its ceiling.
        shares[b.name] = int(min(math.ceil(b.max_power_w), max(math.ceil(b.min_power_w),
                                                                math.floor(share))))
    return shares


class IpmiDriver(Driver):
    """DCMI power readings and the shared site power cap over IPMI/RMCP+ (module docstring)."""

    kind = "ipmi"

    def __init__(self, name: str, config: IpmiDriverConfig, points: Mapping[str, DriverPoint],
                 clock: Clock = time.monotonic, *, min_read_interval_s: float | None = None):
        super().__init__(name, config, points, clock)
        self.config: IpmiDriverConfig = config
        by_name = {b.name: b for b in config.bmcs}
        if len(by_name) != len(config.bmcs):
            raise ValueError(f"driver {name}: duplicate BMC names")
        if len({(b.host, b.port) for b in config.bmcs}) != len(config.bmcs):
            # pyghmi hands out one shared session per host/port/user: two links would interleave.
            raise ValueError(f"driver {name}: two BMCs with the same host and port")
        self._power_points: dict[str, str] = {}   # point -> BMC name
        self._cap_points: list[str] = []
        for pname, point in self.points.items():
            source = point.source
            if not isinstance(source, IpmiPointSource):
                raise ValueError(f"point {pname}: source is not an IPMI source")
            if source.bmc is None:
                self._cap_points.append(pname)
            elif source.bmc not in by_name:
                raise ValueError(f"point {pname}: unknown BMC {source.bmc!r} in driver {name}")
            else:
                self._power_points[pname] = source.bmc
        username, password = load_credentials(config.credentials_file)
        self._links = {b.name: _BmcLink(b, username, password, config.timeout_s, clock)
                       for b in config.bmcs}
        # BMCs a read must ask: those with a power point, and all of them for the cap readback.
        self._read_bmcs = list(self._links) if self._cap_points else sorted(
            set(self._power_points.values()), key=list(self._links).index)
        self._closed = False
        # BMC -> (share sent, limit read back, driver clock when verified): what need not be re-sent.
        self._applied: dict[str, tuple[int, float, float]] = {}
        # BMC -> (its last answer, driver clock when read), and when to ask it next: BMCs are read
        # at most every min_read_interval_s (config; default 0, every read), spread over that
        # interval after the first read. A cached answer keeps the time it was read, so max_age_s
        # still judges it; the interval is held to half the smallest max_age_s of this driver's
        # points so that a BMC that answers is never seen stale (bench/bench_scale.py
        # --ipmi-read-interval 0.9: 64 BMCs at a 100 ms tick).
        self._answers: dict[str, tuple[_ReadResult, float]] = {}
        self._next_read: dict[str, float] = {}
        wanted = config.min_read_interval_s if min_read_interval_s is None else min_read_interval_s
        freshest = min((p.config.max_age_s for p in self.points.values()), default=math.inf)
        self.min_read_interval_s = min(wanted, 0.5 * freshest)

    async def start(self) -> None:
        """Sessions open on the first read (a login is bounded like any other request)."""

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for link in self._links.values():
            link.shutdown()  # a request still running is cancelled (its finally clears it)
        running = [link._task for link in self._links.values() if link._task is not None]
        if running:
            await asyncio.wait(running, timeout=self.config.timeout_s)
        for link in self._links.values():
            link.logout()

    # --- read ---------------------------------------------------------------------------------
    async def read(self) -> dict[str, Reading]:
        want_limit = bool(self._cap_points)
        start = self.clock()
        due = [n for n in self._read_bmcs if start >= self._next_read.get(n, -math.inf)]
        fresh = await self._run_all({n: (_BmcLink.read, want_limit) for n in due},
                                    "next try at the next read") if due else {}
        now = self.clock()
        first_round = not self._answers
        for i, (bmc, outcome) in enumerate(fresh.items()):
            if isinstance(outcome, BmcError):
                self._answers.pop(bmc, None)
                self._next_read.pop(bmc, None)  # asked again at the next read
            else:
                self._answers[bmc] = (outcome, now)
                # After the first read, BMC i waits (i + 1) / n of the interval: spread out.
                spread = (i + 1) / len(fresh) if first_round else 1.0
                self._next_read[bmc] = now + self.min_read_interval_s * spread
        outcomes: dict[str, object] = {n: fresh[n] if n in fresh else self._answers[n][0]
                                       for n in self._read_bmcs}
        readings: dict[str, Reading] = {}
        for pname, bmc in self._power_points.items():
            unit = self.points[pname].config.unit
            outcome = outcomes[bmc]
            ts = now if bmc in fresh else self._answers[bmc][1]
            if isinstance(outcome, BmcError):
                readings[pname] = Reading.lost(unit, now, f"{self._links[bmc].endpoint}: {outcome}")
            elif not outcome.measuring:
                readings[pname] = Reading(outcome.power_w, unit, ts, Quality.BAD,
                                          "power measurement inactive")
            else:
                readings[pname] = Reading(outcome.power_w, unit, ts)
        for bmc, outcome in fresh.items():
            applied = self._applied.get(bmc)
            if applied is not None and (isinstance(outcome, BmcError) or not outcome.limit_read
                                        or outcome.limit_w is None
                                        or abs(outcome.limit_w - applied[1]) > LIMIT_TOLERANCE_W):
                del self._applied[bmc]  # lost, reset or changed behind our back: send it again
        for pname in self._cap_points:
            unit = self.points[pname].config.unit
            failed = [n for n, o in outcomes.items() if isinstance(o, BmcError)]
            if failed:
                readings[pname] = Reading.lost(unit, now, f"limit not read from {', '.join(failed)}")
            else:
                # As old as the oldest answer it sums.
                oldest = min([now] + [self._answers[n][1] for n in outcomes if n not in fresh])
                readings[pname] = Reading(self._effective_cap_w(outcomes), unit, oldest)
        ipmisession.sessionqueue.clear()  # see _run_all
        return readings

    def _effective_cap_w(self, outcomes: Mapping[str, _ReadResult]) -> float:
        return sum(o.limit_w if o.limit_w is not None else self._links[n].cfg.max_power_w
                   for n, o in outcomes.items())

    # --- write --------------------------------------------------------------------------------
    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        results = []
        for pname, value in commands.items():
            if pname not in self._cap_points:
                results.append(WriteResult(pname, value, ok=False,
                                           reason=f"not an actuator of driver {self.name}"))
                self._health.writes_failed_total += 1
                continue
            results.append(await self._write_cap(pname, value))
        return results

    async def _write_cap(self, pname: str, cap_w: float) -> WriteResult:
        if not math.isfinite(cap_w) or cap_w < 0:
            self._health.writes_failed_total += 1
            return WriteResult(pname, cap_w, ok=False, reason=f"invalid cap {cap_w!r}")
        shares = share_cap(cap_w, self.config.bmcs)
        now = self.clock()
        unchanged = {n: a[1] for n, s in shares.items()
                     if (a := self._applied.get(n)) is not None and a[0] == s
                     and now - a[2] < LIMIT_REFRESH_S}
        outcomes = await self._run_all({n: (_BmcLink.apply_limit, s) for n, s in shares.items()
                                        if n not in unchanged}) if len(unchanged) < len(shares) else {}
        problems = []
        readback = sum(unchanged.values())
        for bmc, outcome in outcomes.items():
            if isinstance(outcome, BmcError):
                self._applied.pop(bmc, None)
                problems.append(f"{bmc} ({self._links[bmc].endpoint}): {outcome}")
            elif outcome is None or abs(outcome - shares[bmc]) > LIMIT_TOLERANCE_W:
                self._applied.pop(bmc, None)
                problems.append(f"{bmc}: limit read back {outcome} W, sent {shares[bmc]} W")
            else:
                self._applied[bmc] = (shares[bmc], outcome, now)
                readback += outcome
                if bmc in self._answers:  # the cap reading shows what was just verified
                    answer, ts = self._answers[bmc]
                    self._answers[bmc] = (dataclasses.replace(answer, limit_w=outcome), ts)
        ipmisession.sessionqueue.clear()
        if problems:
            self._health.writes_failed_total += 1
            return WriteResult(pname, cap_w, ok=False, reason="; ".join(problems))
        reason = ""
        if readback > cap_w + LIMIT_TOLERANCE_W * len(shares):
            reason = f"cap below the servers' minimum limits: {readback:.0f} W applied"
        return WriteResult(pname, cap_w, ok=True, reason=reason, readback=readback)

    # --- all BMCs at once ---------------------------------------------------------------------
    async def _run_all(self, jobs: Mapping[str, tuple], next_try: str = "sent again at the next write"
                       ) -> dict[str, object]:
        """Run one job per BMC concurrently, all bounded by timeout_s; failures as BmcError."""
        outcomes: dict[str, object] = {}
        futures: dict[asyncio.Future, str] = {}
        for bmc, (fn, arg) in jobs.items():
            link = self._links[bmc]
            if link.busy:
                outcomes[bmc] = BmcError(f"busy: the previous request is still unanswered; {next_try}")
            else:
                futures[link.submit(fn, link, arg)] = bmc
        self._health.requests_total += len(jobs)
        if futures:
            done, _ = await asyncio.wait(futures, timeout=self.config.timeout_s)
            for future, bmc in futures.items():
                if future not in done:
                    # A BMC that failed is asked again at the driver's next call of the kind (a
                    # read: every tick; a cap: its verified value is forgotten, so it is re-sent).
                    outcomes[bmc] = BmcError(f"timeout ({self.config.timeout_s:g} s); {next_try}")
                elif isinstance(future.exception(), BmcError):
                    outcomes[bmc] = future.exception()
                elif future.exception() is not None:
                    exc = future.exception()
                    outcomes[bmc] = BmcError(f"{type(exc).__name__}: {exc}")
                else:
                    outcomes[bmc] = future.result()
        self._account(outcomes)
        # Nothing in this process runs pyghmi's generic event loop, which is what drains this
        # queue of "sessions with packets"; each packet adds an entry. Nothing else reads it.
        ipmisession.sessionqueue.clear()
        return {bmc: outcomes[bmc] for bmc in jobs}

    def _account(self, outcomes: Mapping[str, object]) -> None:
        health = self._health
        now = self.clock()
        for bmc, outcome in outcomes.items():
            link = self._links[bmc]
            if isinstance(outcome, BmcError):
                health.errors_total += 1
                health.last_error = f"{bmc} ({link.endpoint}): {outcome}"
                if link.answering is not False:
                    log.warning("ipmi_bmc_not_answering", driver=self.name, bmc=bmc,
                                host=link.cfg.host, port=link.cfg.port, reason=str(outcome))
                link.answering = False
            else:
                if link.answering is False:
                    log.info("ipmi_bmc_recovered", driver=self.name, bmc=bmc)
                link.answering = True
        answering = sum(1 for link in self._links.values() if link.answering)
        health.connected = answering == len(self._links)
        if all(not isinstance(o, BmcError) for o in outcomes.values()):
            health.last_ok_ts = now
        health.reconnects_total = sum(link.reconnects for link in self._links.values())
        health.extra = {"bmcs_answering": float(answering), "bmcs_total": float(len(self._links))}

    def health(self):
        h = self._health
        links = list(self._links.values())
        h.endpoint = links[0].endpoint if len(links) == 1 else f"{len(links)} BMCs"
        down = [link for link in links if link.answering is not True]
        now = self.clock()
        if self._closed:
            h.state, h.next_try_in_s = LinkState.CLOSED, None
        elif not down:
            h.state, h.next_try_in_s = LinkState.CONNECTED, None
        else:
            # The soonest login of a BMC that does not answer (0: the next read tries at once).
            h.next_try_in_s = min(link.backoff.wait_s(now) for link in down)
            if len(down) < len(links):
                h.state = LinkState.DEGRADED
            else:
                h.state = LinkState.BACKING_OFF if h.next_try_in_s > 0 else LinkState.CONNECTING
        return h
