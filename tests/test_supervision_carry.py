"""A read still in flight when the tick's window closes (controller.daemon.supervision): the tick
gets the last completed read's readings with their own timestamps, never restamped; the read in
flight serves the next tick; past the driver's read budget, or after a crash, the points are LOST.
Against the real simulated Modbus server on 127.0.0.1 (a silent server keeps a read in flight)."""

from __future__ import annotations

import asyncio
import time

import pytest
from controller.core.readings import Quality
from controller.daemon.supervision import DriverSupervisor
from drivers.modbus.driver import ModbusDriver
from tests.modbus_harness import driver_config, point, points, poll_until
from simulations.wire.modbus_server import ModbusPlantServer


@pytest.fixture
async def plc():
    """A real Modbus server with one float point (21.5) and a supervised driver on it (0.6 s timeout)."""
    pts = points(point("t", unit="degC", table="input", address=0, data_type="float32"))
    srv = ModbusPlantServer(pts)
    await srv.start()
    srv.set_value("t", 21.5)
    drv = ModbusDriver("plc", driver_config(srv.port, timeout_s=0.6), pts, clock=time.monotonic)
    sup = DriverSupervisor("plc", drv, time.monotonic)
    await sup.start()
    yield srv, drv, sup
    await sup.close()
    await srv.stop()


async def test_a_read_in_flight_serves_the_last_readings_with_their_own_age_then_lost(plc):
    srv, drv, sup = plc
    task = sup.begin("read", drv.read())
    await asyncio.wait({task}, timeout=2.0)
    first = sup.finish_read(task, "none")["t"]
    assert first.good and first.value == 21.5

    srv.silent = True  # the next read stays in flight until the driver's 0.6 s timeout
    srv.set_value("t", 30.0)
    sup.supervise(0.1)
    task = sup.begin("read", drv.read())
    await asyncio.wait({task}, timeout=0.05)  # the tick's read window closes first
    assert not task.done()
    carried = sup.finish_read(task, "window closed")["t"]
    assert carried is first and carried.ts == first.ts  # the old reading, its own age
    assert sup.reads_carried_total == 1

    sup.supervise(0.1)
    again = sup.begin("read", drv.read())
    assert again is task  # the read in flight is the next tick's read too, not a second one
    # Past the driver's read budget (timeout + margin) while still in flight: LOST, not old.
    sup.budget_s = 0.0
    lost = sup.finish_read(again, "window closed")["t"]
    assert lost.quality is Quality.LOST and lost.value is None
    sup.budget_s = 1.0

    srv.silent = False
    await asyncio.wait({task}, timeout=3.0)  # the silent read ends (timeout: LOST readings)

    async def fresh() -> bool:
        sup.supervise(0.1)
        t = sup.begin("read", drv.read())
        await asyncio.wait({t}, timeout=2.0)
        r = sup.finish_read(t, "none")["t"]
        return r.good and r.value == 30.0 and r.ts > first.ts
    await poll_until(fresh, timeout_s=5.0)


async def test_a_crashed_driver_never_serves_its_last_readings(plc):
    srv, drv, sup = plc
    task = sup.begin("read", drv.read())
    await asyncio.wait({task}, timeout=2.0)
    assert sup.finish_read(task, "none")["t"].good
    srv.silent = True
    task = sup.begin("read", drv.read())
    sup._crash("raised RuntimeError: boom (test)")  # as _collect records a call that raised
    r = sup.finish_read(task, "window closed")["t"]
    assert r.quality is Quality.LOST and sup.latest is None
    srv.silent = False
    await asyncio.wait({task}, timeout=3.0)
