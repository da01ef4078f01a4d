"""Simulated BMCs answering IPMI over LAN (RMCP+, "lanplus") with DCMI power reading and power limit.

Built on pyghmi's BMC server (`pyghmi.ipmi.bmc.Bmc` and its `ServerSession`), so that a real
client -- the driver's pyghmi, or `ipmitool -I lanplus -C 3` -- talks to it over UDP on 127.0.0.1.

DCMI (netfn 0x2C, group extension 0xDC, DCMI spec 1.5 section 6.6):

- Get DCMI Capabilities (0x01), Get Power Reading (0x02): the current power is `power_w` (settable,
  or a callable given as `power_source`, so the plant model drives it).
- Get Power Limit (0x03): completion code 0x80 while no limit is active, as real BMCs do.
- Set Power Limit (0x04): 0x84 if the limit is outside [min_power_w, max_power_w], 0x85 if the
  correction time is outside [100 ms, 60 s].
- Activate/Deactivate Power Limit (0x05). The active limit is `active_limit_w` (None when inactive).

Fault: `silent = True` drops every packet (a hung BMC); set it back to False to recover.

Threading: pyghmi's server machinery is process-global -- one I/O thread that receives on every
pyghmi socket and queues each packet on its session. So all simulated BMCs of a process share one
pump thread (`_ServerPump`) that waits for packets and processes the queues of *server* sessions
only. One thread per BMC would buy nothing (they would all wait on the same global I/O thread) and
pyghmi's generic `Session.wait_for_rsp` loop is avoided on purpose: it also processes the queues of
*client* sessions, and a pump that steals a reply from a client thread blocked in `raw_command` makes
that client wait for its retry timer (0.5-1 s). With the pump touching only server sessions, the
driver's pyghmi client and 64 simulated BMCs run reliably in one process (the tests and the bench).

Two pyghmi server quirks are fixed here, in subclasses:

- Cipher suites: pyghmi's client proposes suite 17 (SHA-256) first and its server always answers
  with suite 3 (SHA-1) algorithms while reporting success, so the two disagree and the login fails
  with "Incorrect password". The server here rejects every proposal other than suite 3 (RMCP+
  status 0x11, "no cipher suite match"), which makes pyghmi's client fall back to suite 3; ipmitool
  must be told `-C 3`, as against real BMCs without suite 17.
- Re-login from the same UDP port (the driver reconnecting after a failure): pyghmi's server session
  kept the old session's keys and sequence numbers and dropped the new handshake. It is reset.
"""

from __future__ import annotations

import socket
import struct
import threading
import traceback
from typing import Callable, Sequence

import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.private.serversession as serversession
import pyghmi.ipmi.private.session as ipmisession

from drivers.ipmi import client_socket
from drivers.ipmi.driver import install_pyghmi_fixes, wake_io_thread

# The same pyghmi I/O fix as the driver's: servers and clients share pyghmi's one I/O thread.
install_pyghmi_fixes()

# DCMI, DCMI spec 1.5 table 6-1.
NETFN_DCMI = 0x2C
DCMI_GROUP = 0xDC
CMD_GET_CAPABILITIES = 0x01
CMD_GET_POWER_READING = 0x02
CMD_GET_POWER_LIMIT = 0x03
CMD_SET_POWER_LIMIT = 0x04
CMD_ACTIVATE_POWER_LIMIT = 0x05

# Completion codes (IPMI 2.0 table 5-2; DCMI 1.5 table 6-15 to 6-17).
CC_OK = 0x00
CC_NO_ACTIVE_LIMIT = 0x80            # Get Power Limit: no set power limit active
CC_LIMIT_OUT_OF_RANGE = 0x84         # Set Power Limit: power limit out of range
CC_CORRECTION_TIME_OUT_OF_RANGE = 0x85
CC_INVALID_COMMAND = 0xC1
CC_REQUEST_DATA_LENGTH = 0xC7
CC_PARAMETER_OUT_OF_RANGE = 0xC9
CC_INVALID_DATA_FIELD = 0xCC

# RMCP+ open session status (IPMI 2.0 table 13-15): no cipher suite match.
RMCP_NO_CIPHER_SUITE_MATCH = 0x11
# Suite 3 algorithms (IPMI 2.0 table 22-20): RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
SUITE3_ALGORITHMS = (1, 1, 1)

# Correction time a Set Power Limit may ask for (ms): real BMCs accept about 1-60 s.
CORRECTION_TIME_MIN_MS = 100
CORRECTION_TIME_MAX_MS = 60_000
# How long the pump waits for a packet before looking at its BMCs again (s). Only bounds how
# quickly stop() takes effect; packets wake it at once.
_PUMP_IDLE_S = 0.2
# Upper bound on waiting for pyghmi's I/O thread to let go of a socket (s); it takes ~1 ms.
_RETIRE_WAIT_S = 2.0


class _SimServerSession(serversession.ServerSession):
    """One client's session on a simulated BMC, with the cipher-suite and re-login fixes."""

    def __init__(self, authdata, kg, clientaddr, netsocket, request, uuid, bmc):
        self.k1 = None  # pyghmi reads it before RAKP3 has set it if a stray data packet arrives
        self.remseqnumber = None
        super().__init__(authdata, kg, clientaddr, netsocket, request, uuid, bmc)
        bmc._sessions[clientaddr] = self

    def create_open_session_response(self, request):
        algorithms = (request[12], request[20], request[28]) if len(request) >= 32 else None
        if algorithms != SUITE3_ALGORITHMS:
            # Not suite 3: refuse, so that the client falls back to suite 3 (see module doc).
            self.clientsessionid = request[4:8]
            return bytearray([request[0], RMCP_NO_CIPHER_SUITE_MATCH, 0, 0]) + self.clientsessionid
        return super().create_open_session_response(request)

    def _got_rmcp_openrequest(self, data):
        # A new handshake on an existing session (the client logs in again from the same port):
        # forget the old session's keys and sequence numbers, or the handshake is dropped.
        self.sessionid = 0
        self.sequencenumber = 0
        self.integrityalgo = 0
        self.confalgo = 0
        self.k1 = None
        self.remseqnumber = None
        self.kg = self.bmc.kg
        self.ipmicallback = None
        super()._got_rmcp_openrequest(data)

    def _handle_ipmi_packet(self, data, sockaddr=None, qent=None):
        if (data[4] in (0, 2) and len(data) >= 13 and bytes(data[5:13]) == bytes(8)):
            # A sessionless IPMI 1.5 packet (Get Channel Auth Capabilities: a client logging in
            # again from the same port). pyghmi's answer to that deletes the handlers of *every*
            # BMC this client address talks to; hand it to this BMC's sessionless path instead.
            return self.bmc.sessionless_data(data, sockaddr)
        return super()._handle_ipmi_packet(data, sockaddr, qent)

    def close_server_session(self):
        # Close Session (netfn 6 cmd 0x3c): forget this client, or every ipmitool call leaks one.
        self.bmc._forget_session(self.sockaddr)

    def process_pktqueue(self):
        if self.bmc.silent or self.bmc.closed:
            self.pktqueue.clear()
            return
        try:
            super().process_pktqueue()
        except Exception:  # a malformed packet must not stop the pump for every BMC
            traceback.print_exc()


class _DcmiBmc(pyghmi_bmc.Bmc):
    """pyghmi BMC server with a DCMI handler; state lives in the owning SimBmc."""

    def __init__(self, sim: "SimBmc", authdata: dict[str, str], host: str, port: int):
        self.sim = sim
        self._sessions: dict = {}
        self.silent = False
        self.closed = False
        super().__init__(authdata, port=port, address=host)
        # Port 0: the kernel chose one. pyghmi routes session packets by this number.
        self.port = self.serversocket.getsockname()[1]

    def sessionless_data(self, data, sockaddr):
        # As pyghmi's IpmiServer.sessionless_data, but opens _SimServerSession for a new session.
        if self.silent or len(data) < 22:
            return
        data = bytearray(data)
        if data[0] == 6 and data[2:4] == b"\xff\x07" and data[4] == 6 and data[5] == 16:
            _SimServerSession(self.authdata, self.kg, sockaddr, self.serversocket, data[16:],
                              self.uuid, bmc=self)
            return
        super().sessionless_data(data, sockaddr)

    def _forget_session(self, clientaddr) -> None:
        self._sessions.pop(clientaddr, None)
        handlers = ipmisession.Session.bmc_handlers.get(clientaddr)
        if handlers is not None:
            handlers.pop(self.port, None)
            if not handlers:
                ipmisession.Session.bmc_handlers.pop(clientaddr, None)

    def process_all(self) -> bool:
        """Handle every packet queued for this BMC (sessionless ones and each session's).

        Returns whether there was any.
        """
        if self.closed:
            return False
        busy = bool(self.pktqueue)
        if self.silent:
            self.pktqueue.clear()
        else:
            self.process_pktqueue()
        for session in list(self._sessions.values()):
            busy |= bool(session.pktqueue)
            session.process_pktqueue()
        return busy

    def close(self) -> None:
        self.closed = True
        for clientaddr in list(self._sessions):
            self._forget_session(clientaddr)
        ipmisession.Session.bmc_handlers.pop(self.serversocket, None)

    def release_socket(self) -> None:
        """Close the socket; only once pyghmi's I/O thread no longer selects on it (`_retire`)."""
        self.serversocket.close()

    def handle_raw_request(self, request, session):
        if self.silent:
            return
        if request["netfn"] != NETFN_DCMI:
            return super().handle_raw_request(request, session)
        try:
            code, data = self.sim._dcmi(request["command"], bytes(request["data"]))
        except Exception:
            traceback.print_exc()
            code, data = 0xFF, b""
        session.send_ipmi_response(data=list(data), code=code)


class SimBmc:
    """One simulated BMC on `host` (127.0.0.1) and `port` (0: a free port; see `.port` after start).

    `power_w` is what Get Power Reading reports (W); give `power_source` (a callable returning W)
    instead to let a plant model drive it. `active_limit_w` is the active DCMI power limit or None.
    """

    def __init__(self, username: str, password: str, *, name: str = "bmc", host: str = "127.0.0.1",
                 port: int = 0, power_w: float = 0.0, min_power_w: float = 0.0,
                 max_power_w: float = 65535.0, power_source: Callable[[], float] | None = None):
        self.name = name
        self.host = host
        self._requested_port = port
        self._username = username
        self._password = password
        self.power_w = float(power_w)
        self.power_source = power_source
        self.min_power_w = float(min_power_w)
        self.max_power_w = float(max_power_w)
        self._lock = threading.Lock()
        self._limit_w: int | None = None        # set by Set Power Limit (W, DCMI is whole watts)
        self._limit_active = False
        self._exception_action = 0
        # Defaults a BMC ships with; ipmitool's `set_limit limit N` writes them back unchanged.
        self._correction_time_ms = 1000
        self._sampling_period_s = 1
        self._min_seen_w: float | None = None
        self._max_seen_w: float | None = None
        self._server: _DcmiBmc | None = None
        # Counters for tests: requests answered per DCMI command.
        self.requests: dict[int, int] = {}

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"BMC {self.name} is not started")
        return self._server.port

    def start(self) -> "SimBmc":
        if self._server is None:
            anchor_pyghmi_io()  # before the first server socket: the I/O thread's list never empties
            self._server = _DcmiBmc(self, {self._username: self._password}, self.host,
                                    self._requested_port)
            _ServerPump.get().add(self._server)
            wake_io_thread()  # so that pyghmi's I/O thread selects on the new socket
        return self

    def stop(self) -> None:
        if self._server is not None:
            _ServerPump.get().remove([self._server])
            self._server = None

    def __enter__(self) -> "SimBmc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- fault --------------------------------------------------------------------------------
    @property
    def silent(self) -> bool:
        return self._server is not None and self._server.silent

    @silent.setter
    def silent(self, value: bool) -> None:
        if self._server is None:
            raise RuntimeError(f"BMC {self.name} is not started")
        self._server.silent = bool(value)

    # --- state the plant reads ----------------------------------------------------------------
    @property
    def active_limit_w(self) -> float | None:
        with self._lock:
            return float(self._limit_w) if self._limit_active and self._limit_w is not None else None

    def current_power_w(self) -> float:
        return float(self.power_source() if self.power_source is not None else self.power_w)

    # --- DCMI ---------------------------------------------------------------------------------
    def _dcmi(self, command: int, data: bytes) -> tuple[int, bytes]:
        """Answer one DCMI request: (completion code, response data after the completion code)."""
        self.requests[command] = self.requests.get(command, 0) + 1
        if not data or data[0] != DCMI_GROUP:
            # Another group on netfn 0x2C (ipmitool asks PICMG/HPM first): not implemented here.
            return CC_INVALID_COMMAND, b""
        handler = {
            CMD_GET_CAPABILITIES: self._get_capabilities,
            CMD_GET_POWER_READING: self._get_power_reading,
            CMD_GET_POWER_LIMIT: self._get_power_limit,
            CMD_SET_POWER_LIMIT: self._set_power_limit,
            CMD_ACTIVATE_POWER_LIMIT: self._activate_power_limit,
        }.get(command)
        if handler is None:
            return CC_INVALID_COMMAND, b""
        return handler(data[1:])

    def _get_capabilities(self, data: bytes) -> tuple[int, bytes]:
        # DCMI 1.5 table 6-3: group, spec 1.5, parameter revision 2, then the parameter's data.
        if len(data) < 1:
            return CC_REQUEST_DATA_LENGTH, b""
        head = bytes([DCMI_GROUP, 1, 5, 2])
        if data[0] == 1:    # supported capabilities: power management (bit 0 of platform caps)
            return CC_OK, head + bytes([0x00, 0x01, 0x00])
        if data[0] == 2:    # mandatory platform attributes: SEL 0, no auto-rollover; ID 0x20
            return CC_OK, head + bytes([0x00, 0x00, 0x00, 0x20, 0x00])
        if data[0] == 3:    # optional platform attributes: BMC at 0x20, channel 0
            return CC_OK, head + bytes([0x20, 0x00])
        if data[0] == 4:    # manageability access attributes: LAN on channel 1
            return CC_OK, head + bytes([0x01, 0xFF, 0xFF])
        if data[0] == 5:    # enhanced power statistics: none (rolling averages not offered)
            return CC_OK, head + bytes([0x00])
        return CC_PARAMETER_OUT_OF_RANGE, b""

    def _get_power_reading(self, data: bytes) -> tuple[int, bytes]:
        # DCMI 1.5 table 6-16. Mode 1 = system power statistics; enhanced mode 2 is not offered.
        if len(data) < 3:
            return CC_REQUEST_DATA_LENGTH, b""
        if data[0] != 1:
            return CC_INVALID_DATA_FIELD, b""
        now_w = _u16(self.current_power_w())
        with self._lock:
            self._min_seen_w = now_w if self._min_seen_w is None else min(self._min_seen_w, now_w)
            self._max_seen_w = now_w if self._max_seen_w is None else max(self._max_seen_w, now_w)
            lo, hi = int(self._min_seen_w), int(self._max_seen_w)
        import time as _time  # timestamp: seconds since the epoch, as BMCs report it

        state = 0x40  # bit 6: power measurement active
        return CC_OK, bytes([DCMI_GROUP]) + struct.pack(
            "<HHHHIIB", now_w, lo, hi, now_w, int(_time.time()) & 0xFFFFFFFF, 1000, state)

    def _get_power_limit(self, data: bytes) -> tuple[int, bytes]:
        # DCMI 1.5 table 6-17: data is returned with 0x80 too (ipmitool prints it).
        with self._lock:
            body = bytes([DCMI_GROUP, 0, 0, self._exception_action]) + struct.pack(
                "<HIHH", self._limit_w or 0, self._correction_time_ms, 0, self._sampling_period_s)
            return (CC_OK if self._limit_active else CC_NO_ACTIVE_LIMIT), body

    def _set_power_limit(self, data: bytes) -> tuple[int, bytes]:
        # DCMI 1.5 table 6-18: reserved(3), exception action, limit W (2), correction time ms (4),
        # reserved (2), statistics sampling period s (2).
        if len(data) < 14:
            return CC_REQUEST_DATA_LENGTH, b""
        action = data[3]
        limit_w, correction_ms, _, period_s = struct.unpack_from("<HIHH", data, 4)
        if not self.min_power_w <= limit_w <= self.max_power_w:
            return CC_LIMIT_OUT_OF_RANGE, b""
        if not CORRECTION_TIME_MIN_MS <= correction_ms <= CORRECTION_TIME_MAX_MS:
            return CC_CORRECTION_TIME_OUT_OF_RANGE, b""
        with self._lock:
            self._limit_w = limit_w
            self._exception_action = action
            self._correction_time_ms = correction_ms
            self._sampling_period_s = period_s
        return CC_OK, bytes([DCMI_GROUP])

    def _activate_power_limit(self, data: bytes) -> tuple[int, bytes]:
        # DCMI 1.5 table 6-19: 1 activate, 0 deactivate.
        if len(data) < 1 or data[0] not in (0, 1):
            return CC_INVALID_DATA_FIELD, b""
        with self._lock:
            if data[0] == 1 and self._limit_w is None:
                return CC_NO_ACTIVE_LIMIT, b""  # nothing set to activate
            self._limit_active = data[0] == 1
        return CC_OK, bytes([DCMI_GROUP])


def _u16(watts: float) -> int:
    """Watts as DCMI's unsigned 16-bit field (whole watts, clamped to 0..65535)."""
    if watts != watts:  # NaN: a model bug; report 0 rather than crash the BMC
        return 0
    return max(0, min(0xFFFF, int(round(watts))))


class _ServerPump:
    """The one thread per process that processes the packets of every simulated BMC (module doc)."""

    _instance: "_ServerPump | None" = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> "_ServerPump":
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        self._servers: list[_DcmiBmc] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-bmc-pump", daemon=True)
        self._thread.start()

    def add(self, server: _DcmiBmc) -> None:
        with self._lock:
            self._servers = [*self._servers, server]

    def remove(self, servers: Sequence[_DcmiBmc]) -> None:
        with self._lock:
            self._servers = [s for s in self._servers if s not in servers]
            for server in servers:
                server.close()
        _retire([server.serversocket for server in servers])
        for server in servers:
            server.release_socket()

    def _run(self) -> None:
        while True:
            # Register the wake-up before looking at the queues: a packet queued after the look
            # sets this event, one queued before it is seen by the look (no lost wake-up).
            wake = threading.Event()
            if ipmisession.iosockets:
                ipmisession.ioqueue.append(
                    (ipmisession._monotonic_time() + _PUMP_IDLE_S, wake, None))
            # No code in this process runs pyghmi's generic event loop (which would drain this
            # queue): it would grow by one entry per packet received. Nothing else reads it.
            ipmisession.sessionqueue.clear()
            with self._lock:
                servers = self._servers
            busy = False
            for server in servers:
                try:
                    busy |= server.process_all()
                except Exception:
                    traceback.print_exc()
            if not busy:
                wake.wait(_PUMP_IDLE_S)


_pyghmi_anchor = None


def anchor_pyghmi_io() -> None:
    """Keep one socket in pyghmi's I/O thread for the life of the process (idempotent).

    pyghmi's I/O thread selects on its process-global socket list and only re-reads that list
    when select() returns. `stop_bmcs` takes the BMCs' sockets out of it; when that empties it
    (no pyghmi client in this process), the thread sits in select() on no sockets for up to 300 s,
    and the BMCs of the next SimPlant or SimBmc in the same process never hear a packet (seen: every
    login after the first sim's stop failed; and a driver's first read after a lone SimBmc had
    started and stopped). One socket of pyghmi's own client pool, opened before the
    first BMC and never closed, keeps the list from emptying. Opened the way the IPMI driver
    opens its socket to a BMC on loopback (an unconnected UDP socket on an ephemeral port, bound
    to loopback: pyghmi's own would listen on every address).
    """
    global _pyghmi_anchor
    if _pyghmi_anchor is None:
        _pyghmi_anchor = client_socket.assign("127.0.0.1")


def _retire(sockets: Sequence) -> None:
    """Take sockets out of pyghmi's I/O thread, and return once its select() no longer has them.

    Closing a socket that the I/O thread is selecting on kills that thread (EBADF), and with it
    every pyghmi session in the process. So: remove them from its list, wake it (a 1-byte datagram,
    which pyghmi ignores), and wait until it has been round its loop once more.
    """
    for sock in sockets:
        try:
            ipmisession.iosockets.remove(sock)
        except ValueError:
            pass
    if ipmisession.iothread is None or not ipmisession.iothread.is_alive():
        return
    looped = threading.Event()
    # An already expired wake-up: the I/O thread sets it after its next select() returns.
    ipmisession.ioqueue.append((ipmisession._monotonic_time(), looped, None))
    for target in [*sockets, *ipmisession.iosockets[:1]]:
        try:
            with socket.socket(target.family, socket.SOCK_DGRAM) as poke:
                poke.sendto(b"\x01", target.getsockname()[:2])
        except OSError:
            pass
    looped.wait(_RETIRE_WAIT_S)


def start_bmcs(count: int, username: str, password: str, *, host: str = "127.0.0.1",
               power_w: float | Sequence[float] = 0.0, min_power_w: float = 0.0,
               max_power_w: float = 65535.0, name_prefix: str = "srv") -> list[SimBmc]:
    """Start `count` simulated BMCs on free ports, named srv1..srvN. Stop each with `.stop()`."""
    powers = [power_w] * count if isinstance(power_w, (int, float)) else list(power_w)
    bmcs: list[SimBmc] = []
    try:
        for i in range(count):
            bmcs.append(SimBmc(username, password, name=f"{name_prefix}{i + 1}", host=host,
                               power_w=powers[i], min_power_w=min_power_w,
                               max_power_w=max_power_w).start())
    except BaseException:
        for bmc in bmcs:
            bmc.stop()
        raise
    return bmcs


def stop_bmcs(bmcs: Sequence[SimBmc]) -> None:
    """Stop many BMCs at once (one wait for pyghmi's I/O thread instead of one per BMC)."""
    servers = [bmc._server for bmc in bmcs if bmc._server is not None]
    for bmc in bmcs:
        bmc._server = None
    if servers:
        _ServerPump.get().remove(servers)
