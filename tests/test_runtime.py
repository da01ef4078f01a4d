"""The daemon's loop on a fake clock with fake drivers: scheduling, start-up, drivers, reload, signals."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal

import pytest
import structlog

from controller.daemon.audit import AuditStore
from controller.core.commands import OutputSource
from controller.core.modes import Mode
from controller.core.readings import Quality
from controller.core.requests import OverrideRequest, TripTestRequest
from controller.daemon.runtime import (Daemon, RuntimeOptions, SystemdNotifier, carry_over, schedule_next,
                                verdict)
from controller.core.step import Controller
from tests.runtime_fakes import (flushed, FakeClock, FakeDrivers, FakePlant, api_caller, load,
                                 make_daemon, write_config)


@pytest.fixture(autouse=True)
def _default_structlog():
    # Another verb's in-process test may leave structlog bound to a closed capture stream.
    structlog.reset_defaults()
    yield


def last_round(plant):
    """The last write to each driver of the reference plant (bms_modbus and bmcs), merged."""
    return {**plant.writes[-2], **plant.writes[-1]}


# --- scheduling: a pure table ------------------------------------------------------------------

@pytest.mark.parametrize("deadline,end,period,expected", [
    (10.0, 10.2, 1.0, (11.0, 0)),    # on time: the next grid point
    (10.0, 10.999, 1.0, (11.0, 0)),
    (10.0, 11.3, 1.0, (12.0, 1)),    # ran past one deadline: skip it
    (10.0, 12.5, 1.0, (13.0, 2)),    # ran 2.5 periods: skip two, no burst
    (10.0, 12.0, 1.0, (13.0, 2)),    # exactly on a grid point counts as missed
    (0.0, 0.35, 0.1, (0.4, 3)),
])
def test_schedule_next_skips_missed_deadlines(deadline, end, period, expected):
    nxt, skipped = schedule_next(deadline, end, period)
    assert skipped == expected[1]
    assert nxt == pytest.approx(expected[0])
    assert end < nxt <= end + period + 1e-9  # never delayed beyond one period after the late tick


async def test_overrun_counted_and_next_tick_not_delayed_beyond_a_period(tmp_path):
    d, clock, drivers = make_daemon(tmp_path, tick=1.0)
    await d.start()
    t0 = clock()
    orig_read = drivers.current["bms_modbus"].read

    async def slow_read():
        if d.ticks == 3:
            clock.advance(2.5)  # the 4th tick's read takes 2.5 periods
        return await orig_read()

    drivers.current["bms_modbus"].read = slow_read
    await d.run(max_ticks=8)
    starts = [s - t0 for s in d.tick_starts]
    assert starts[:4] == pytest.approx([0, 1, 2, 3])
    # The late tick ended at 5.5: deadlines 4 and 5 are skipped; the next is 6, then the grid again.
    assert starts[4:] == pytest.approx([6, 7, 8, 9])
    assert d.overruns_total == 1 and d.skipped_total == 2
    assert d.ticks == 8


async def test_startup_writes_safe_state_and_holds_it_until_a_complete_valid_snapshot(tmp_path):
    plant = FakePlant()
    del plant.values["it_supply_temp"]  # a critical reading missing at start-up
    d, clock, drivers = make_daemon(tmp_path, drivers=FakeDrivers(plant))
    await d.start()
    safe = d.ctrl.safe_outputs
    first = {k: v for w in plant.writes for k, v in w.items()}
    assert first == safe  # written before the first tick
    for _ in range(3):
        assert await d.tick()
        clock.advance(1.0)
        assert d.state.mode is Mode.SAFE_DEGRADE and not d.state.started
        assert {o.source for p, o in d.last.commands.items() if p != "heartbeat"} == {OutputSource.STARTUP}
    plant.values["it_supply_temp"] = 35.0
    assert await d.tick()
    assert d.state.mode is Mode.NORMAL and d.state.started
    await d.shutdown()


async def test_crashed_driver_marks_its_points_lost_and_is_restarted(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    clock.advance(1.0)
    drv = drivers.current["bms_opcua"]
    drv.crash = 1
    assert await d.tick()
    bad = {n: c for n, c in d.last.checked.items() if not c.good}
    assert set(bad) == set(drv.points)
    assert d.supervisors["bms_opcua"].crashed is not None
    # While crashed (before the restart backoff), still LOST without calling the driver.
    reads = drv.reads
    assert await d.tick()
    assert drv.reads == reads
    assert not d.last.checked["consumer_supply_temp"].good
    for _ in range(3):
        clock.advance(1.0)
        assert await d.tick()
        await asyncio.sleep(0)
    assert drv.starts == 2 and drv.closes >= 1
    assert d.supervisors["bms_opcua"].crashed is None
    assert d.last.checked["consumer_supply_temp"].good
    events, _ = flushed(d).events(kinds=["driver_outage", "driver_recovered"])
    assert [e.kind for e in events] == ["driver_outage", "driver_recovered"]
    assert events[0].fields["driver"] == "bms_opcua"
    await d.shutdown()


async def test_hung_driver_is_cancelled_and_restarted(tmp_path):
    d, clock, drivers = make_daemon(tmp_path, tick=0.5)
    await d.start()
    drv = drivers.current["bms_modbus"]
    drv.hang = True
    assert await d.tick()
    assert not d.last.checked["it_supply_temp"].good
    drv.hang = False
    for _ in range(30):
        clock.advance(0.5)
        assert await d.tick()
        await asyncio.sleep(0)
        if d.last.checked["it_supply_temp"].good:
            break
    assert d.last.checked["it_supply_temp"].good
    assert d.supervisors["bms_modbus"].restarts_total == 1
    await d.shutdown()


async def test_silent_driver_outage_logged_once_and_recovery_once(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    clock.advance(1.0)
    drivers.current["bms_modbus"].silent = True
    for _ in range(5):
        assert await d.tick()
        clock.advance(1.0)
    drivers.current["bms_modbus"].silent = False
    for _ in range(3):
        assert await d.tick()
        clock.advance(1.0)
    events, _ = flushed(d).events(kinds=["driver_outage", "driver_recovered"])
    assert [(e.kind, e.fields["driver"]) for e in events] == [
        ("driver_outage", "bms_modbus"), ("driver_recovered", "bms_modbus")]
    await d.shutdown()


# --- config reload ---------------------------------------------------------------------------

async def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    old_sha, old_ctrl = d.loaded.sha256, d.ctrl
    cfg = tmp_path / "site.yaml"
    good_text = cfg.read_text()
    cfg.write_text(good_text.replace("  min_dwell_s: 300", "  min_dwell_s: 300\n  min_dwell_s: 10"))
    assert await d.reload() is False
    assert d.loaded.sha256 == old_sha and d.ctrl is old_ctrl
    clock.advance(1.0)
    assert await d.tick()  # still running on the old config
    events, _ = flushed(d).events(kinds=["config_refused"])
    assert len(events) == 1
    assert any("duplicate key" in p for p in events[0].fields["problems"])
    assert "site.yaml:" in events[0].fields["problems"][0]  # file:line: path: message
    refused = [c for c in flushed(d).configs() if not c.accepted]
    assert len(refused) == 1 and "min_dwell_s: 10" in refused[0].text
    await d.shutdown()


async def test_sighup_with_a_good_config_swaps_between_ticks_and_carries_state(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    clock.advance(1.0)
    fut = asyncio.ensure_future(d.api_change(
        OverrideRequest(reason="commissioning", user="eng", point="v1_position", value=30.0, duration_s=600),
        api_caller()))
    await asyncio.sleep(0)
    assert await d.tick()
    assert (await fut)["accepted"]
    clock.advance(1.0)
    fut = asyncio.ensure_future(d.api_change(TripTestRequest(reason="proof", user="eng", trip="leak"), api_caller()))
    await asyncio.sleep(0)
    assert await d.tick()
    assert (await fut)["accepted"]
    energy = d.state.energy
    assert d.state.trips["leak"].latched
    cfg = tmp_path / "site.yaml"
    cfg.write_text(cfg.read_text().replace("setpoint: 40.0 ", "setpoint: 41.0 "))
    builds = len(drivers.built)
    assert await d.reload() is True
    assert d.ctrl.site.loops.consumer_supply.setpoint == 41.0
    assert len(drivers.built) == builds  # drivers unchanged: not rebuilt
    assert d.state.energy == energy
    assert d.state.trips["leak"].latched
    assert d.state.overrides["v1_position"].value == 30.0
    assert d.state.mode is Mode.SAFE_DEGRADE  # the latched trip's
    clock.advance(1.0)
    assert await d.tick()
    assert d.last.commands["p1_speed"].source is OutputSource.TRIP
    assert [c.cause for c in flushed(d).configs()] == ["start-up", "SIGHUP"]
    await d.shutdown()


async def test_reload_that_changes_drivers_rebuilds_them(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    cfg = tmp_path / "site.yaml"
    cfg.write_text(cfg.read_text().replace("port: 15020", "port: 15021"))
    old = drivers.current
    assert await d.reload() is True
    assert drivers.current is not old
    assert all(drv.closes == 1 for drv in old.values())
    assert all(drv.starts == 1 for drv in drivers.current.values())
    clock.advance(1.0)
    assert await d.tick()
    assert d.last.checked["it_supply_temp"].good
    await d.shutdown()


def test_carry_over_keeps_what_still_exists():
    from tests.step_helpers import make_controller, snap
    ctrl = make_controller()
    st = ctrl.initial_state(0.0)
    res = ctrl.step(st, snap(ctrl.site, 0.0), [
        OverrideRequest(reason="r", user="u", point="d1_fan", value=40.0, duration_s=100),
        TripTestRequest(reason="r", user="u", trip="it_overtemp")], 0.0)
    new_ctrl = Controller(ctrl.site)
    state, notes = carry_over(res.state, new_ctrl, 1.0)
    assert notes == []
    assert state.trips["it_overtemp"].latched and state.overrides["d1_fan"].value == 40.0
    assert state.mode is res.state.mode and state.started and state.tick == res.state.tick
    assert state.loops["dump"].output == res.state.loops["dump"].output
    # A config without that trip: dropped, and said so.
    site = ctrl.site.model_copy(update={"trips": {k: v for k, v in ctrl.site.trips.items() if k != "sensor_lost"}})
    trips = dict(res.state.trips)
    from dataclasses import replace
    trips["sensor_lost"] = replace(trips["it_overtemp"])
    _, notes = carry_over(replace(res.state, trips=trips), Controller(site), 1.0)
    assert notes == ["latched trip sensor_lost dropped: no longer configured"]


# --- requests --------------------------------------------------------------------------------

def test_verdict_matches_each_request_to_its_own_event_by_id():
    from controller.core.events import Event
    # Two identical requests (same user, reason, point): only the id tells their answers apart.
    a = OverrideRequest(reason="r", user="u", point="d1_fan", value=40.0, duration_s=100, request_id=7)
    b = OverrideRequest(reason="r", user="u", point="d1_fan", value=40.0, duration_s=100, request_id=8)
    c = OverrideRequest(reason="r", user="u", point="d1_fan", value=40.0, duration_s=100, request_id=9)
    events = [Event(0, "request_refused", "", {"request_id": 8, "refusal": "unknown actuator"}),
              Event(0, "override_set", "", {"point": "d1_fan", "request_id": 7})]
    assert verdict(a, events)[:2] == (True, "")
    assert verdict(b, events)[:2] == (False, "unknown actuator")
    assert verdict(c, events) == (None, "", None)


async def test_requests_are_answered_after_the_tick_with_the_steps_verdict(tmp_path):
    d, clock, _ = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    from controller.core.requests import AckTripRequest, ModeRequest
    f1 = asyncio.ensure_future(d.api_change(ModeRequest(reason="commissioning", user="eng", mode=Mode.BYPASS), api_caller()))
    f2 = asyncio.ensure_future(d.api_change(AckTripRequest(reason="nothing", user="eng", trip="leak"), api_caller()))
    await asyncio.sleep(0)
    assert not f1.done()
    clock.advance(1.0)
    assert await d.tick()
    r1, r2 = await f1, await f2
    assert r1["accepted"] and r1["mode"] == "bypass" and r1["held"]
    assert not r2["accepted"] and "not latched" in r2["refusal"]
    events, _ = flushed(d).events(kinds=["request_refused", "mode_changed"])
    assert {e.kind for e in events} == {"request_refused", "mode_changed"}
    mine = [e for e in events if e.user == "eng"]
    assert len(mine) == 2 and all(e.uid == os.getuid() for e in mine)
    await d.shutdown()


# --- shutdown and signals --------------------------------------------------------------------

async def test_sigterm_writes_the_safe_state_saves_counters_and_exits(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    d.install_signal_handlers()
    plant = drivers.plant
    ticks = 0

    orig = d.tick

    async def tick_then_signal():
        nonlocal ticks
        ok = await orig()
        ticks += 1
        if ticks == 5:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.01)  # let the loop run the signal handler
        return ok

    d.tick = tick_then_signal
    await asyncio.wait_for(d.run(), 10)
    assert ticks == 5
    last = last_round(plant)
    assert last == d.ctrl.safe_outputs  # the safe state, no heartbeat
    store = AuditStore(tmp_path / "state", read_only=True)
    saved, _ = store.load_energy()
    assert saved.it_j > 0
    kinds = [e.kind for e in store.events()[0]]
    assert kinds[0] == "daemon_start" and kinds[-1] == "daemon_stop"
    store.close()


async def test_safe_state_at_shutdown_keeps_a_latched_leak_trips_pumps_off(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()
    drivers.plant.values["leak_rack"] = 1.0
    clock.advance(1.0)
    assert await d.tick()
    assert d.state.trips["leak"].latched
    await d.shutdown()
    last = last_round(drivers.plant)
    assert last["p1_speed"] == 0.0 and last["p2_speed"] == 0.0  # not the 100 % of the plain safe state
    assert last["boiler_enable"] == 1.0


async def test_sighup_signal_reloads_between_ticks(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    d.install_signal_handlers()
    cfg = tmp_path / "site.yaml"
    seen = []
    orig = d.tick

    async def tick():
        ok = await orig()
        seen.append(d.loaded.sha256)
        if len(seen) == 2:
            cfg.write_text(cfg.read_text().replace("setpoint: 40.0 ", "setpoint: 41.0 "))
            os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.002)  # real time for the worker thread that loads the config
        if d.reloads_ok and seen.count(d.loaded.sha256) >= 2:
            d.request_stop("test over")
        return ok

    d.tick = tick
    await asyncio.wait_for(d.run(max_ticks=5000), 30)
    # The load runs in a worker thread while the loop keeps ticking on the old config; the new one
    # is swapped in between two ticks, once.
    first, last = seen[0], seen[-1]
    assert first != last and seen == [first] * seen.count(first) + [last] * seen.count(last)
    assert seen.count(first) >= 2 and d.reloads_ok == 1


# --- energy counters -------------------------------------------------------------------------

async def test_energy_counters_persist_and_restore_without_double_counting(tmp_path):
    d, clock, _ = make_daemon(tmp_path)
    await d.start()
    await d.run(max_ticks=25)  # run() shuts down at the end: counters saved
    e1 = d.state.energy
    assert e1.delivered_j > 0 and e1.it_j > 0
    stopped_at = clock.t
    d2, clock2, _ = make_daemon(tmp_path, clock=FakeClock(5000.0))
    await d2.start()
    # Restored exactly; the time the daemon was not running is unmetered, not guessed: counted
    # once metering resumes, at the first tick with a complete snapshot (dead_time.py).
    assert d2.state.energy == e1
    assert await d2.tick()
    # (the last persisted tick is at most one 1 s tick before the stop)
    assert d2.state.energy.unmetered_s == pytest.approx(e1.unmetered_s + 5000.0 - stopped_at, abs=1.0)
    # the first tick after a restart integrates nothing (no interval)
    assert dataclasses.replace(d2.state.energy, unmetered_s=0.0) == dataclasses.replace(e1, unmetered_s=0.0)
    clock2.advance(1.0)
    assert await d2.tick()
    assert d2.state.energy.it_j == pytest.approx(e1.it_j + 32000.0 * 1.0)
    await d2.shutdown()


async def test_a_crash_loses_at_most_n_ticks_of_metering(tmp_path):
    d, clock, _ = make_daemon(tmp_path, energy_every_ticks=10)
    await d.start()
    for _ in range(25):
        assert await d.tick()
        clock.advance(1.0)
    # No shutdown: as after SIGKILL. What is on disk (once the writer thread has caught up with
    # what the tick handed it) is the counters of tick 20.
    flushed(d)
    store = AuditStore(tmp_path / "state", read_only=True)
    saved, _ = store.load_energy()
    store.close()
    per_tick = 32000.0
    assert d.state.energy.it_j - saved.it_j == pytest.approx(5 * per_tick)
    assert saved.it_j == pytest.approx(19 * per_tick)  # 20 ticks = 19 intervals


async def test_history_row_per_minute(tmp_path):
    d, clock, _ = make_daemon(tmp_path)
    await d.start()
    for _ in range(130):
        assert await d.tick()
        clock.advance(1.0)
    rows = flushed(d).history()
    assert len(rows) >= 2
    r = rows[0]
    assert r["mode"] == "normal" and r["it_w"] == pytest.approx(32000.0)
    assert r["consumer_supply_c"] == pytest.approx(40.0) and r["consumer_setpoint_c"] == 40.0
    assert '"delivered_j"' in r["counters"]
    await d.shutdown()


async def test_a_failing_step_is_not_a_completed_tick(tmp_path):
    d, clock, drivers = make_daemon(tmp_path)
    await d.start()
    assert await d.tick()

    def boom(*a, **k):
        raise ZeroDivisionError("bug")

    d.ctrl.step = boom
    clock.advance(1.0)
    assert await d.tick() is False
    assert d.tick_failures_total == 1
    assert last_round(drivers.plant) == d.ctrl.safe_outputs
    await d.shutdown()


async def test_bad_quality_is_data_not_a_crash(tmp_path):
    plant = FakePlant()
    plant.values["it_flow"] = float("nan")
    d, clock, _ = make_daemon(tmp_path, drivers=FakeDrivers(plant))
    await d.start()
    assert await d.tick()
    assert not d.last.checked["it_flow"].good
    assert d.state.mode is Mode.SAFE_DEGRADE
    await d.shutdown()
    assert Quality.GOOD  # keeps the import honest


async def test_a_driver_that_never_connects_is_down_after_the_connect_grace(tmp_path):
    from controller.daemon.supervision import CONNECT_GRACE_S
    d, clock, drivers = make_daemon(tmp_path)
    drivers_built = drivers
    await d.start()
    drivers_built.current["bmcs"].silent = True
    for _ in range(int(CONNECT_GRACE_S) + 2):
        assert await d.tick()
        if clock() - d.supervisors["bmcs"].created < CONNECT_GRACE_S:
            assert d.supervisors["bmcs"].status()["state"] == "connecting"
        clock.advance(1.0)
    assert d.supervisors["bmcs"].status()["state"] == "down"
    events, _ = flushed(d).events(kinds=["driver_outage"])
    assert [e.fields["driver"] for e in events] == ["bmcs"]
    await d.shutdown()


async def test_metrics_observed_each_tick_and_served(tmp_path):
    import urllib.request
    pytest.importorskip("controller.daemon.metrics")
    clock = FakeClock()
    config = write_config(tmp_path, 1.0)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"), socket_path=None,
                             metrics_addr=("127.0.0.1", 0))
    d = Daemon(options, load(config), clock=clock, wall=clock.wall, sleep=clock.sleep,
               driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}))
    await d.start()
    for _ in range(3):
        assert await d.tick()
        d._account(clock(), clock(), clock(), 0, True)
        clock.advance(1.0)
    cfg = tmp_path / "site.yaml"
    cfg.write_text("broken: [\n")
    assert await d.reload() is False
    port = d._metrics_stop.port
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read())
    text = body.decode()
    assert "heatctl_ticks_total 3.0" in text
    assert 'heatctl_config_reloads_total{result="refused"} 1.0' in text
    await d.shutdown()


async def test_a_driver_that_keeps_reconnecting_makes_its_points_maintenance_required(tmp_path):
    # NE 107 M from the daemon's own driver facts: more than MAINTENANCE_RECONNECTS reconnects of
    # the BMC driver within the hour, and its points (not the BMS's) need maintenance.
    from controller.core.alarms import GOOD, MAINTENANCE, MAINTENANCE_RECONNECTS

    d, clock, drivers = make_daemon(tmp_path, tick=1.0)
    await d.start()
    bmc_point = next(n for n, s in d.loaded.sources.items() if getattr(s, "driver", None) == "bmcs")
    bms_point = next(n for n, s in d.loaded.sources.items() if getattr(s, "driver", None) == "bms_modbus")
    bmcs = drivers.current["bmcs"]
    orig_read, seen = bmcs.read, []

    async def read():
        seen.append(d.alarm_state.ne107.get(bmc_point))
        if d.ticks == 3:  # the link has dropped and come back, again and again
            bmcs._health.reconnects_total = MAINTENANCE_RECONNECTS + 1
        return await orig_read()

    bmcs.read = read
    await d.run(max_ticks=6)
    assert seen[3] == GOOD  # before the reconnects
    assert d.alarm_state.ne107[bmc_point] == MAINTENANCE
    assert d.alarm_state.ne107[bms_point] == GOOD
