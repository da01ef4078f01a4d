"""A restart is not an acknowledgement: trips latched before it stay latched after it."""

from __future__ import annotations

import structlog
import pytest

from controller.core.modes import Mode
from tests.runtime_fakes import flushed, FakeClock, make_daemon


@pytest.fixture(autouse=True)
def _default_structlog():
    structlog.reset_defaults()
    yield


async def latch_a_leak(tmp_path):
    """A running daemon whose leak trip has just latched."""
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    drivers.plant.values["leak_rack"] = 1.0
    clock.advance(1.0)
    assert await d.tick()
    assert d.state.trips["leak"].latched
    # The tick handed the latched trip to the database writer thread at once; a crash comes after
    # that thread has written it (it raced the restart's read under load: a flaky KeyError).
    flushed(d)
    return d, clock, drivers


async def test_latched_trip_survives_a_crash_and_needs_an_ack(tmp_path):
    d, clock, drivers = await latch_a_leak(tmp_path)
    # A crash: no shutdown, nothing flushed but what the tick itself saved.
    drivers.plant.values["leak_rack"] = 0.0
    d2, clock2, drivers2 = make_daemon(tmp_path, clock=FakeClock(9000.0))
    await d2.start()
    assert d2.state.trips["leak"].latched and "before restart" in d2.state.trips["leak"].cause
    for _ in range(200):  # well past the safe_degrade exit dwell: still held by the trip
        clock2.advance(1.0)
        assert await d2.tick()
    assert d2.state.mode is Mode.SAFE_DEGRADE and d2.state.trips["leak"].latched
    restored, _ = flushed(d2).events(kinds=["trips_restored"])
    assert len(restored) == 1 and "leak" in restored[0].message
    await d2.shutdown()


async def test_an_acknowledged_and_reset_trip_is_not_restored(tmp_path):
    import asyncio

    from controller.core.requests import AckTripRequest
    from tests.runtime_fakes import api_caller
    d, clock, drivers = await latch_a_leak(tmp_path)
    drivers.plant.values["leak_rack"] = 0.0
    clock.advance(1.0)
    assert await d.tick()
    ack = asyncio.ensure_future(d.api_change(AckTripRequest(reason="dried", user="eng", trip="leak"), api_caller()))
    await asyncio.sleep(0)
    clock.advance(1.0)
    assert await d.tick()
    assert (await ack)["accepted"] and not d.state.trips["leak"].latched
    # A crash after the reset: nothing to restore.
    d2, _, _ = make_daemon(tmp_path, clock=FakeClock(9000.0))
    await d2.start()
    assert not d2.state.trips.get("leak") or not d2.state.trips["leak"].latched
    await d2.shutdown()


async def test_losing_the_buildings_bms_link_keeps_the_pool_heated(tmp_path):
    """Comm loss to the consumer's BMS (OPC-UA), end to end through the daemon: its points go LOST,
    the daemon stays out of safe_degrade (they are not critical) and writes boiler_enable = 1 and
    P3 = 0 to the plant; when the link returns the boiler goes back to the thermostat."""
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    for _ in range(3):
        clock.advance(1.0)
        assert await d.tick()
    assert drivers.plant.actuators["boiler_enable"] == 0.0  # the pool is at setpoint: no boiler
    drivers.current["bms_opcua"].silent = True
    clock.advance(1.0)
    assert await d.tick()
    assert not d.last.checked["consumer_available"].good
    assert d.state.mode is not Mode.SAFE_DEGRADE
    assert drivers.plant.actuators["boiler_enable"] == 1.0
    assert drivers.plant.actuators["p3_speed"] == 0.0
    drivers.current["bms_opcua"].silent = False
    clock.advance(1.0)
    assert await d.tick()
    assert d.last.checked["consumer_available"].good
    await d.shutdown()
