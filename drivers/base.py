"""The driver interface: read a set of points into readings, write commands, report health.

A driver never raises into the control loop and never returns a stale value as fresh: a read that
fails yields readings marked LOST, with the reason. Each call is bounded by the driver's own timeout,
which is shorter than the tick. Drivers take their clock as an argument (`clock`), so that the
timestamps they stamp on readings share the controller's time base.
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from pydantic import BaseModel

from controller.site.models import PointConfig
from controller.core.readings import Quality, Reading, put_good_readings

Clock = Callable[[], float]


@dataclass(frozen=True)
class DriverPoint:
    """One point a driver serves: its name, its config, and its source parsed by the driver's schema."""

    name: str
    config: PointConfig
    source: BaseModel


@dataclass(frozen=True)
class WriteResult:
    point: str
    value: float
    # True only when the value was read back (or confirmed by the device) after writing.
    ok: bool
    reason: str = ""
    readback: float | None = None


class LinkState(enum.Enum):
    """A driver's link, derived once in `health()` from the driver's own bookkeeping."""

    # No attempt made yet, or the link was lost and the next read (or the supervision task) may
    # try again at once: readings are LOST until it succeeds.
    CONNECTING = "connecting"
    # The peer answers: readings are live.
    CONNECTED = "connected"
    # Connected, but part of the peer does not answer (a Modbus device id behind a gateway, some
    # BMCs of an IPMI driver): those points are LOST, the others are live.
    DEGRADED = "degraded"
    # The last attempt failed: no new attempt before `next_try_in_s` (the driver's Backoff), so a
    # dead peer costs one attempt per backoff period, not one per tick.
    BACKING_OFF = "backing_off"
    # A problem no retry can fix without an operator (a missing credentials file, a server
    # certificate not in the trust store): attempts continue on the backoff, the line says what to do.
    FAILED = "failed"
    # close() was called: no attempt will be made.
    CLOSED = "closed"


def retry_text(wait_s: float) -> str:
    """How the next attempt is described in status and log lines ("next try in 0.8 s")."""
    if wait_s <= 0:
        return "next try now"
    return f"next try in {wait_s:.1f} s" if wait_s >= 1 else f"next try in {wait_s:.2f} s"


@dataclass
class DriverHealth:
    name: str
    kind: str
    connected: bool = False
    state: LinkState = LinkState.CONNECTING
    # What the driver talks to ("host:port", an endpoint URL, "64 BMCs"): named in every error line.
    endpoint: str = ""
    # Seconds until the next connection attempt (0: allowed now; None: connected, nothing pending).
    next_try_in_s: float | None = None
    last_ok_ts: float | None = None
    last_error: str = ""
    errors_total: int = 0
    reconnects_total: int = 0
    writes_failed_total: int = 0
    requests_total: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def put_readings(out: dict[str, Reading], names: Sequence[str], units: Sequence[str],
                 values: Sequence[float], ts: float) -> None:
    """out[name] = Reading(value, unit, ts) for each point of a request: GOOD when finite (built by
    the core's `put_good_readings`, the fast constructor), else BAD "not_finite" (the device
    answered, the value is unusable)."""
    for i in put_good_readings(out, names, units, values, ts):
        out[names[i]] = Reading(values[i], units[i], ts, Quality.BAD, "not_finite")


class Driver(abc.ABC):
    """Base class of the protocol drivers. Subclasses implement the protocol, nothing else."""

    kind: str = "abstract"

    def __init__(self, name: str, config: BaseModel, points: Mapping[str, DriverPoint],
                 clock: Clock = time.monotonic):
        self.name = name
        self.config = config
        self.points = dict(points)
        self.clock = clock
        self._health = DriverHealth(name=name, kind=self.kind)

    async def start(self) -> None:
        """Open connections. Must not raise when the device is unreachable: reads report LOST."""

    async def close(self) -> None:
        """Close connections; idempotent."""

    @abc.abstractmethod
    async def read(self) -> dict[str, Reading]:
        """Read every reading point this driver serves (actuators too, where they read back)."""

    @abc.abstractmethod
    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        """Write actuator values (point name -> value in the point's unit) and verify each."""

    def health(self) -> DriverHealth:
        return self._health

    def lost_all(self, reason: str) -> dict[str, Reading]:
        """Every point marked LOST now: what a failed read returns, never the last values."""
        now = self.clock()
        return {n: Reading.lost(p.config.unit, now, reason) for n, p in self.points.items()}


def read_budget_s(driver: Driver) -> float:
    """How long one read() of this driver may take by its own rules (s), without the margin.

    Modbus: one request and its retries (a device that has just gone silent; the driver then marks
    it silent and skips its other requests). OPC-UA (one Read when polling) and IPMI (all BMCs at
    once): one timeout_s.
    """
    cfg = driver.config
    timeout = float(getattr(cfg, "timeout_s", 0.5))
    if driver.kind == "modbus":
        return timeout * (1 + int(getattr(cfg, "retries", 0)))
    return timeout
