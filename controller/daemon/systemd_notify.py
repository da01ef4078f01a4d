"""systemd's notify protocol (sd_notify(3)) without a dependency: READY=1, STATUS=, STOPPING=1 and
WATCHDOG=1 as datagrams to $NOTIFY_SOCKET. WATCHDOG=1 only after a completed tick."""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, Mapping

import structlog

log = structlog.get_logger("heatctl.daemon")

Clock = Callable[[], float]


class SystemdNotifier:
    """sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET (path or @abstract).

    WATCHDOG=1 is sent only by `watchdog()`, which the loop calls after each completed tick; at most
    one per quarter of WATCHDOG_USEC (systemd's own advice is half; a quarter leaves room for a slow
    tick without a kill)."""

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock = time.monotonic):
        env = os.environ if env is None else env
        self.clock = clock
        addr = env.get("NOTIFY_SOCKET") or None
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]
        self.address = addr
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_s: float | None = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> None:
        if not self.address:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self.address)
            self._failed = False
        except OSError as exc:
            if not self._failed:  # once, and again only after it worked in between
                log.warning("sd_notify_failed", address=self.address, error=str(exc))
            self._failed = True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        if self.watchdog_s is None:
            return
        now = self.clock()
        if self._last_ping is not None and now - self._last_ping < self.watchdog_s / 4:
            return
        self._last_ping = now
        self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
