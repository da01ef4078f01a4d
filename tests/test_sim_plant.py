"""The simulated plant on the wire, read and written through the real drivers (drivers/registry.py).

Everything on 127.0.0.1 with free ports (xdist runs files in parallel). The plant runs in real time;
conditions are polled with bounded deadlines, never slept for.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time

import pytest
import pytest_asyncio

from controller.site.loader import load_config
from controller.core.readings import Quality
from drivers.registry import DriverSet, build_drivers, read_budget_s
from simulations.wire.sim_plant import ControlError, SimPlant, SimPlantClient, control_request
from tests.plant_harness import HEARTBEAT_TIMEOUT_S, sim_config


async def poll(predicate, timeout_s: float, every_s: float = 0.05):
    """Await `predicate()` (sync or async) until truthy; fail after timeout_s. Returns its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)


# One simulated plant for the module (asyncua's server takes over a second of CPU to start); each
# test gets it back with no faults, no silences and the profile's loads.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sim(tmp_path_factory):
    loaded = sim_config(tmp_path_factory.mktemp("sim"))
    async with SimPlant(loaded, free_ports=True, start_time_of_day_s=12 * 3600) as s:
        yield s


@pytest_asyncio.fixture(loop_scope="module")
async def sim(shared_sim):
    yield shared_sim
    shared_sim.clear("all")
    shared_sim.set_load(it_load=None, demand_w=None, available=None, ambient_c=None)


@pytest_asyncio.fixture(loop_scope="module")
async def dset(sim, tmp_path):
    loaded = load_config(sim.write_config(tmp_path / "site.yaml"))
    ds = DriverSet(build_drivers(loaded))
    await ds.start(timeout_s=3.0)
    try:
        yield ds
    finally:
        await ds.close()


async def all_good(ds: DriverSet):
    readings = await ds.read()
    return readings if all(r.good for r in readings.values()) else None


async def test_every_point_reads_good_and_matches_the_plant(sim, dset):
    readings = await poll(lambda: all_good(dset), 5.0)
    assert set(readings) == set(sim.site.points)
    true = sim.sensed()
    # The plant moves between our look and the read: temperatures by far less than 0.5 K here.
    assert readings["it_supply_temp"].value == pytest.approx(true.it_supply_c, abs=0.5)
    assert readings["consumer_demand"].value == pytest.approx(36000.0)  # winter pool, noon
    assert readings["consumer_available"].value == 1.0
    assert readings["leak_rack"].value == 0.0
    assert readings["power_cap"].value == 40000.0  # no limit active: 8 x max_power_w
    before = sim.measurements().server_power_w[0]
    power = (await dset.read())["srv3_power"].value
    after = sim.measurements().server_power_w[0]
    assert min(before, after) - 1 <= power <= max(before, after) + 1


async def test_writes_reach_the_plant(sim, dset):
    await poll(lambda: all_good(dset), 5.0)
    # A new heartbeat too: the shared sim may be in its BMS fallback from an earlier test.
    beat = float(sim.state()["commanded"]["heartbeat"] + 1)
    results = await dset.write({"p1_speed": 80.0, "boiler_enable": 1.0, "power_cap": 20000.0,
                                "heartbeat": beat, "nonexistent": 1.0})
    by_point = {r.point: r for r in results}
    assert by_point["p1_speed"].ok and by_point["boiler_enable"].ok and by_point["power_cap"].ok
    assert not by_point["nonexistent"].ok and by_point["nonexistent"].reason == "unknown_point"
    state = sim.state()
    assert state["commanded"]["p1_pct"] == 80.0
    assert state["commanded"]["boiler_enable"] is True
    assert state["bmc_limits_w"] == {f"srv{i}": 2500.0 for i in range(1, 9)}
    # The BMC limits reach the plant's cap at its next step.
    await poll(lambda: sim.state()["power_cap_w"] == 20000.0, 2.0)
    assert sim.state()["effective"]["p1_pct"] == 80.0


async def test_heartbeat_stopping_makes_the_bms_fall_back(sim, dset):
    async with SimPlantClient(sim.control_port) as ctl:
        beat = 0
        # Beat for longer than the timeout: no fallback while the heartbeat moves.
        t_end = time.monotonic() + HEARTBEAT_TIMEOUT_S + 0.5
        while time.monotonic() < t_end:
            beat += 1
            (result,) = await dset.write({"heartbeat": float(beat)})
            assert result.ok, result.reason
            assert not (await ctl.state())["fallback_active"]
            await asyncio.sleep(0.2)  # the controller's tick, not a wait for a condition
        stopped = time.monotonic()
        state = await poll(lambda: _fallen_back(ctl), HEARTBEAT_TIMEOUT_S + 1.0)
        waited = time.monotonic() - stopped
    assert HEARTBEAT_TIMEOUT_S - 0.5 <= waited <= HEARTBEAT_TIMEOUT_S + 1.0
    assert state["boiler_on"] is True
    assert state["effective"]["d1_pct"] == 100.0 and state["effective"]["boiler_enable"] is True
    # The commands stay as written: the BMS overrides them, it does not change the registers.
    assert state["commanded"]["d1_pct"] == 0.0


async def _fallen_back(ctl: SimPlantClient):
    state = await ctl.state()
    return state if state["fallback_active"] else None


async def test_faults_from_the_control_interface_show_in_the_readings(sim, dset):
    await poll(lambda: all_good(dset), 5.0)
    async with SimPlantClient(sim.control_port) as ctl:
        await ctl.inject("sensor_nan", "it_supply_c")
        await ctl.inject("leak", "rack")
        await ctl.inject("sensor_nan", "consumer_supply_c")

        async def faulted():
            r = await dset.read()
            ok = (r["it_supply_temp"].quality is Quality.BAD and r["leak_rack"].value == 1.0
                  and r["consumer_supply_temp"].quality is Quality.BAD)
            return r if ok else None

        r = await poll(faulted, 3.0)
        assert r["it_supply_temp"].reason == "not_finite"
        assert r["consumer_supply_temp"].reason == "BadSensorFailure"
        assert r["leak_cdu"].value == 0.0
        state = await ctl.state()
        assert state["sensed"]["it_supply_c"] is None  # NaN on the wire as null
        assert state["measurements"]["it_supply_c"] is not None  # the truth is untouched
        assert {"kind": "leak", "target": 1, "value": None} in state["faults"]

        await ctl.clear("all")
        await poll(lambda: all_good(dset), 3.0)

        with pytest.raises(ControlError, match="unknown fault kind"):
            await ctl.inject("meteor", "p1")
        with pytest.raises(ControlError, match="pump_failure target"):
            await ctl.inject("pump_failure", "p9")
        with pytest.raises(ControlError, match="it_load is a fraction"):
            await ctl.set_load(it_load=2.0)
        loads = await ctl.set_load(it_load=0.5, demand_w=10000.0)
        assert loads["it_load_fraction"] == 0.5 and loads["consumer_demand_w"] == 10000.0
        r = await poll(lambda: _reads(dset, "consumer_demand", 10000.0), 3.0)
        assert r


async def _reads(ds: DriverSet, point: str, value: float):
    r = (await ds.read())[point]
    return r.good and r.value == value


async def test_silent_servers_give_lost_points_within_the_timeout(sim, dset):
    await poll(lambda: all_good(dset), 5.0)
    # Blocking client, as a script would use it, from a thread (the sim's loop keeps running).
    await asyncio.to_thread(control_request, sim.control_port, "inject", kind="silent",
                            target="modbus")
    await asyncio.to_thread(control_request, sim.control_port, "inject", kind="silent",
                            target="srv2")
    modbus = dset.drivers["bms_modbus"]
    bound = read_budget_s(modbus) + dset.margin_s
    started = time.monotonic()
    readings = await dset.read()
    elapsed = time.monotonic() - started
    assert elapsed <= bound + 0.2
    for name in modbus.points:
        assert readings[name].quality is Quality.LOST, name
    assert readings["srv2_power"].quality is Quality.LOST
    assert readings["srv1_power"].good and readings["tank_top_temp"].good
    assert sorted(sim.state()["silent"]) == ["bms_modbus", "srv2"]
    sim.clear("silent")
    await poll(lambda: all_good(dset), 5.0)


@pytest.mark.skipif(shutil.which("ipmitool") is None, reason="ipmitool not installed")
async def test_ipmitool_reads_the_plant_power_from_a_simulated_bmc(sim):
    port = sim.ports["srv5"]
    before = sim.measurements().server_power_w[4]
    proc = await asyncio.create_subprocess_exec(
        "ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", "admin",
        "-P", "heatctl-sim", "-C", "3", "dcmi", "power", "reading",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 15.0)
    after = sim.measurements().server_power_w[4]
    assert proc.returncode == 0, err.decode()
    m = re.search(r"Instantaneous power reading:\s+(\d+)\s+Watts", out.decode())
    assert m, out.decode()
    # DCMI reports whole watts; the plant's power moves (first-order lag) while ipmitool runs, and the
    # BMC answers from the plant's latest step, which can be a little older than `before`: 2 % slack.
    slack = 1 + 0.02 * max(before, after)
    assert min(before, after) - slack <= int(m.group(1)) <= max(before, after) + slack


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed")
async def test_mbpoll_reads_the_it_supply_temperature(sim):
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "tcp", "-p", str(sim.ports["bms_modbus"]), "-a", "1", "-t", "3:float",
        "-B", "-0", "-r", "0", "-c", "1", "-1", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 15.0)
    assert proc.returncode == 0
    m = re.search(r"\[0\]:\s+([-\d.]+)", out.decode())
    assert m and float(m.group(1)) == pytest.approx(sim.sensed().it_supply_c, abs=0.5)


async def test_steps_follow_the_given_clock_times_speed(tmp_path):
    now = [100.0]
    loaded = sim_config(tmp_path, heartbeat_timeout_s=10.0)
    # Not started: step() needs no sockets (values go to the servers' stores), and asyncua's
    # server takes over a second to start.
    s = SimPlant(loaded, free_ports=True, control_port=None, autostep=False,
                 clock=lambda: now[0], speed=10.0, start_time_of_day_s=0.0)
    await s.step()  # the first step only sets the clock's origin
    assert s.plant.t_s == 0.0
    now[0] += 0.5
    await s.step()
    assert s.plant.t_s == pytest.approx(5.0)
    assert not s.state()["fallback_active"]
    now[0] += 0.6  # 11 plant seconds without a heartbeat change
    await s.step()
    assert s.state()["fallback_active"]
    # Night (00:00): the pool's covers are on, 28 kW.
    assert s.loads().consumer_demand_w == 28000.0
    s.set_load(demand_w=5000.0)
    assert s.loads().consumer_demand_w == 5000.0
    s.set_load(demand_w=None)
    assert s.loads().consumer_demand_w == 28000.0
    with pytest.raises(ValueError, match="unknown target"):
        s.inject("silent", "nowhere")
    with pytest.raises(ValueError, match="unknown drivers or BMCs"):
        SimPlant(loaded, ports={"bms_modbuss": 0})


async def test_the_bms_says_when_it_runs_on_its_fallback(sim, dset):
    """The plant's own word (the bms_fallback point, a Modbus discrete input) tells the truth:
    0 while the heartbeat moves, 1 when the BMS is forced onto its fallback."""
    beat = int(sim.state()["commanded"]["heartbeat"])

    async def beat_and_read():
        nonlocal beat
        beat += 1
        (result,) = await dset.write({"heartbeat": float(beat)})
        assert result.ok, result.reason
        return (await dset.read())["bms_fallback"]

    r = await poll(lambda: _value_is(beat_and_read(), 0.0), 3.0)
    assert r and not sim.state()["fallback_active"]
    sim.inject("bms_fallback")
    await poll(lambda: _value_is(beat_and_read(), 1.0), 3.0)
    state = sim.state()
    assert state["fallback_active"] and state["effective"]["p1_pct"] == 100.0
    assert state["effective"]["boiler_enable"] is True
    sim.clear("bms_fallback")
    await poll(lambda: _value_is(beat_and_read(), 0.0), 3.0)


async def _value_is(reading_coro, want: float):
    r = await reading_coro
    return r.good and r.value == want


async def test_a_heartbeat_register_that_ignores_writes_does_not_read_back(sim, dset):
    beat = float(sim.state()["commanded"]["heartbeat"] + 1)
    (ok,) = await dset.write({"heartbeat": beat})
    assert ok.ok
    sim.inject("ignore_writes", "heartbeat")
    assert sim.state()["ignore_writes"] == ["heartbeat"]
    (bad,) = await dset.write({"heartbeat": beat + 1})
    assert not bad.ok and bad.reason.startswith("readback_mismatch") and bad.readback == beat
    assert sim.state()["commanded"]["heartbeat"] == beat  # the plant's BMS saw no new value
    with pytest.raises(ValueError, match="ignore_writes: 'it_supply_temp' is not an actuator point"):
        sim.inject("ignore_writes", "it_supply_temp")
    sim.clear("ignore_writes", "heartbeat")
    (again,) = await dset.write({"heartbeat": beat + 2})
    assert again.ok and again.readback == beat + 2
