"""The driver interface: read a set of points into readings, write commands, report health.

A driver never raises into the control loop and never returns a stale value as fresh: a read that
fails yields readings marked LOST, with the reason. Each call is bounded by the driver's own timeout,
which is shorter than the tick. Drivers take their clock as an argument (`clock`), so that the
timestamps they stamp on readings share the controller's time base.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from pydantic import BaseModel

from controller.site.models import PointConfig
from controller.core.readings import Reading

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


@dataclass
class DriverHealth:
    name: str
    kind: str
    connected: bool = False
    last_ok_ts: float | None = None
    last_error: str = ""
    errors_total: int = 0
    reconnects_total: int = 0
    writes_failed_total: int = 0
    requests_total: int = 0
    extra: dict[str, float] = field(default_factory=dict)


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
