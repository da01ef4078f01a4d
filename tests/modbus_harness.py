"""A real simulated Modbus server and ModbusDriver on 127.0.0.1 for the Modbus tests: point and
config builders, a bounded poll (`poll_until`, never a sleep standing in for a condition) and the
`rig` fixture (servers and drivers closed at the end of the test). Test files take the fixture by
importing it: `from tests.modbus_harness import rig  # noqa: F401 - a fixture`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest

from controller.site.modbus_schema import ModbusDriverConfig, ModbusPointSource
from controller.site.models import PointConfig
from drivers.base import DriverPoint
from drivers.modbus.driver import ModbusDriver
from simulations.wire.modbus_server import ModbusPlantServer

# Short enough to keep the file fast, long enough for a loaded CI box on loopback.
TIMEOUT_S = 0.15


def point(name: str, unit: str = "x", **source: Any) -> DriverPoint:
    return DriverPoint(name, PointConfig(unit=unit, range=(-1e12, 1e12)),
                       ModbusPointSource(driver="plc", **source))


def points(*pts: DriverPoint) -> dict[str, DriverPoint]:
    return {p.name: p for p in pts}


def driver_config(port: int, **kw: Any) -> ModbusDriverConfig:
    kw.setdefault("timeout_s", TIMEOUT_S)
    kw.setdefault("retries", 0)
    kw.setdefault("reconnect_min_s", 0.05)
    kw.setdefault("reconnect_max_s", 0.2)
    return ModbusDriverConfig(kind="modbus", host="127.0.0.1", port=port, **kw)


async def poll_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float,
                     every_s: float = 0.01) -> float:
    """Await predicate() until true; return the time it took. Fails the test after timeout_s."""
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)


class Rig:
    """A server and a driver on it, closed at the end of the test."""

    def __init__(self) -> None:
        self.servers: list[ModbusPlantServer] = []
        self.drivers: list[ModbusDriver] = []

    async def server(self, pts: dict[str, DriverPoint], **kw: Any) -> ModbusPlantServer:
        srv = ModbusPlantServer(pts, **kw)
        await srv.start()
        self.servers.append(srv)
        return srv

    async def driver(self, srv: ModbusPlantServer, pts: dict[str, DriverPoint] | None = None,
                     clock: Callable[[], float] = time.monotonic, name: str = "plc",
                     read_deadline_s: float | None = None, **cfg: Any) -> ModbusDriver:
        drv = ModbusDriver(name, driver_config(srv.port, **cfg), pts or srv.points, clock=clock,
                           read_deadline_s=read_deadline_s)
        await drv.start()
        self.drivers.append(drv)
        return drv

    async def close(self) -> None:
        for d in self.drivers:
            await d.close()
        for s in self.servers:
            await s.stop()


@pytest.fixture
async def rig():
    r = Rig()
    yield r
    await r.close()
