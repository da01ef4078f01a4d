"""The plant's own word on its fallback: the model's bms_fallback fault, and the point served over
OPC-UA (the Modbus case is in test_sim_plant.py, on the shared sim)."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.site.loader import load_config, parse_config_text
from drivers.registry import DriverSet, build_drivers
from simulations.plant.binding import PlantBinding
from simulations.plant.faults import Fault
from simulations.plant.loop import PlantLoop, plant_config_of
from simulations.plant.model import Actuators
from simulations.wire.sim_plant import SimPlant
from tests.step_helpers import REFERENCE, reference_site

MODBUS_SOURCE = "source: {driver: bms_modbus, table: discrete_input, address: 2, data_type: bool}"
OPCUA_SOURCE = 'source: {driver: bms_opcua, node_id: "ns=2;s=Bms.FallbackActive"}'


def test_the_bms_fallback_fault_forces_the_fallback_and_the_point_says_so():
    site = reference_site()
    loop = PlantLoop(site, plant_config_of(site), 0.0)
    plant, binding = loop.plant, PlantBinding(site)
    plant.set_actuators(Actuators(p1_pct=40.0, heartbeat=1), 0.0)
    plant.advance(1.0, _loads())
    assert not plant.fallback_active() and binding.point_values(plant.measurements())["bms_fallback"] == 0.0
    plant.inject(Fault("bms_fallback"))
    plant.advance(1.0, _loads())
    assert plant.fallback_active() and plant.effective_actuators().p1_pct == 100.0
    assert binding.point_values(plant.measurements())["bms_fallback"] == 1.0
    assert plant.meters.fallback_s == pytest.approx(1.0)
    plant.clear("bms_fallback")
    plant.set_actuators(Actuators(p1_pct=40.0, heartbeat=2), plant.t_s)
    plant.advance(1.0, _loads())
    assert not plant.fallback_active() and binding.point_values(plant.measurements())["bms_fallback"] == 0.0


def _loads():
    from simulations.plant.model import Loads
    return Loads(0.5, 20000.0, True, 5.0)


async def test_the_fallback_point_is_served_over_opcua_too(tmp_path):
    text = REFERENCE.read_text()
    assert MODBUS_SOURCE in text
    text = text.replace(MODBUS_SOURCE, OPCUA_SOURCE) + "\nsimulation:\n  heartbeat_timeout_s: 1.0\n"
    loaded = parse_config_text(text, str(tmp_path / "src.yaml"))
    async with SimPlant(loaded, free_ports=True) as sim:
        ds = DriverSet(build_drivers(load_config(sim.write_config(tmp_path / "site.yaml"))))
        await ds.start(timeout_s=3.0)
        try:
            # Nobody beats: the BMS falls back after its 1 s, and says so over OPC-UA.
            deadline = time.monotonic() + 10.0
            while True:
                r = (await ds.read())["bms_fallback"]
                if r.good and r.value == 1.0:
                    break
                assert time.monotonic() < deadline, f"no fallback over OPC-UA: {r}"
                await asyncio.sleep(0.1)
            assert sim.state()["fallback_active"]
            beat, deadline = 7, time.monotonic() + 10.0
            while True:  # beating, as a controller does each tick
                (w,) = await ds.write({"heartbeat": float(beat)})
                assert w.ok, w.reason
                beat += 1
                r = (await ds.read())["bms_fallback"]
                if r.good and r.value == 0.0:
                    break
                assert time.monotonic() < deadline, f"fallback not left over OPC-UA: {r}"
                await asyncio.sleep(0.1)
        finally:
            await ds.close()
