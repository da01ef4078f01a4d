"""Where pyghmi's client sockets listen: on loopback for a BMC on loopback, never on every address.

pyghmi (1.6.19) opens its shared client I/O socket bound to `('', 0)`, on AF_INET6 with
IPV6_V6ONLY off: a UDP port open on every address of every interface (`[::]`), for a driver that
only talks to BMCs on 127.0.0.1 (the simulated plant, the tests, the demo, the benchmarks) as for a
plant-room box whose BMCs sit on a management network. For a BMC whose host is a loopback address,
`assign(...)` below hands the session a socket bound to loopback instead (shared by up to
pyghmi's MAX_BMCS_PER_SOCKET sessions, like pyghmi's own pool); any other BMC keeps pyghmi's
choice, and never shares a loopback socket (it could not reach the BMC from there). A site that
wants its BMC traffic on one interface only should firewall the management network: pyghmi has no
bind option, and the kernel picks the source address by route.

The socket is made by pyghmi's own `_assignsocket(server)` (its server-mode path: bound where
asked, added to the I/O thread's sockets, I/O thread started) and counted in `Session.socketpool`,
which pyghmi decrements when the session ends. Its address family follows pyghmi's process-wide
`ipv6support`, which also decides whether pyghmi sends to an IPv4 BMC as `::ffff:a.b.c.d`.
"""

from __future__ import annotations

import ipaddress
import socket

import pyghmi.ipmi.private.session as ipmisession

# Loopback sockets made here, by the local address they are bound to.
_LOOPBACK: dict[tuple[int, str], list[socket.socket]] = {}


def loopback_version(host: str) -> int | None:
    """4 or 6 if `host` is a literal loopback address (127.0.0.0/8, ::1), else None (names are
    not resolved here: pyghmi resolves them itself and may pick any of the answers)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return ip.version if ip.is_loopback else None


def _ipv6_mode() -> bool:
    """pyghmi's `ipv6support`, found out the way pyghmi does if no socket has done it yet."""
    if ipmisession.ipv6support is None:
        try:
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
            ipmisession.ipv6support = True
        except OSError:
            ipmisession.ipv6support = False
            ipmisession.myself = "127.0.0.1"
    return bool(ipmisession.ipv6support)


def assign(host: str, forbidden: tuple | list = ()) -> socket.socket:
    """The I/O socket for a new client session to the BMC at `host` (pyghmi's `_assignsocket`)."""
    version = loopback_version(host)
    pool = ipmisession.Session.socketpool
    if version is None:
        mine = [s for socks in _LOOPBACK.values() for s in socks]
        return ipmisession.Session._assignsocket(forbiddensockets=list(forbidden) + mine)
    if version == 6:
        family, local = socket.AF_INET6, "::1"
    elif _ipv6_mode():
        family, local = socket.AF_INET6, "::ffff:127.0.0.1"  # pyghmi sends to ::ffff:127.x.y.z
    else:
        family, local = socket.AF_INET, "127.0.0.1"
    socks = _LOOPBACK.setdefault((family, local), [])
    for sock in socks:
        if sock not in forbidden and pool.get(sock, 0) < ipmisession.MAX_BMCS_PER_SOCKET:
            pool[sock] = pool.get(sock, 0) + 1
            return sock
    sock = ipmisession.Session._assignsocket((family, socket.SOCK_DGRAM, 0, "", (local, 0)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16777216)  # as pyghmi's own sockets
    except OSError:
        pass
    pool[sock] = 1
    socks.append(sock)
    return sock
