"""Tick lateness (issue 14): how late each tick starts against its grid deadline, reported by the
daemon itself in `heatctl status` and as the heatctl_tick_lateness_seconds histogram."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from controller.daemon.lateness import Lateness
from controller.daemon.metrics import DaemonMetrics
from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from controller.daemon.status import build_status
from tests.runtime_fakes import FakeClock, FakeDrivers, load, write_config


def test_quantiles_are_ranks_of_the_recent_window():
    lat = Lateness(window=1000)
    for i in range(1000):
        lat.record(deadline=float(i), start=i + i / 1000.0)  # 0, 1 ms, ... 999 ms late
    v = lat.view()
    assert (v["p50_s"], v["p99_s"], v["p999_s"]) == pytest.approx((0.5, 0.99, 0.999), abs=1e-9)
    assert v["max_s"] == v["max_window_s"] == pytest.approx(0.999) and v["samples"] == 1000


def test_early_start_is_zero_and_the_max_outlives_the_window():
    lat = Lateness(window=3)
    assert lat.view()["p50_s"] is None and lat.view()["max_s"] is None
    assert lat.record(10.0, 9.5) == 0.0
    lat.record(11.0, 11.25)
    for k in range(3):
        lat.record(12.0 + k, 12.0 + k)
    v = lat.view()
    assert v["max_window_s"] == 0.0 and v["max_s"] == 0.25 and v["total"] == 5


async def test_the_daemon_reports_how_late_its_ticks_start(tmp_path):
    """A sleep that always wakes 30 ms late (a loaded machine): every tick is 30 ms late, none overruns."""
    clock = FakeClock()
    config = write_config(tmp_path, 1.0)

    async def late_sleep(dt):
        await clock.sleep(dt + 0.030)

    reg = CollectorRegistry()
    loaded = load(config)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"), socket_path=None)
    d = Daemon(options, loaded, clock=clock, wall=clock.wall, sleep=late_sleep, driver_factory=FakeDrivers(),
               notifier=SystemdNotifier(env={}), metrics=DaemonMetrics(loaded.site, registry=reg))
    await d.start()
    await d.run(max_ticks=20)
    lat = build_status(d)["ticks"]["lateness"]
    assert d.overruns_total == 0
    # The first tick is due at start (0 late); the 19 after it each wake 30 ms past their deadline.
    assert abs(lat["p50_s"] - 0.030) < 1e-9 and abs(lat["max_s"] - 0.030) < 1e-9
    assert lat["samples"] == 20
    assert reg.get_sample_value("heatctl_tick_lateness_seconds_count") == 20
    assert reg.get_sample_value("heatctl_tick_lateness_seconds_bucket", {"le": "0.025"}) == 1
    assert reg.get_sample_value("heatctl_tick_lateness_seconds_bucket", {"le": "0.05"}) == 20


async def test_the_daemon_freezes_what_lives_for_good_once_ready(tmp_path):
    """Full GC collections walk every tracked object; on the big site each held the event loop
    ~40 ms (controller/daemon/gc_pauses.py). Once ready, the daemon freezes what exists: the
    config, the controller and the drivers are in the permanent generation."""
    import gc

    clock = FakeClock()
    config = write_config(tmp_path, 1.0)
    loaded = load(config)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"), socket_path=None)
    gc.unfreeze()
    try:
        d = Daemon(options, loaded, clock=clock, wall=clock.wall, sleep=clock.sleep, driver_factory=FakeDrivers(),
                   notifier=SystemdNotifier(env={}), metrics=DaemonMetrics(loaded.site, registry=CollectorRegistry()))
        await d.start()
        assert gc.get_freeze_count() == 0
        await d.run(max_ticks=2)
        assert gc.get_freeze_count() > 1000
        tracked = {id(o) for o in gc.get_objects()}  # collections walk these; frozen ones are not here
        assert id(d.ctrl.site) not in tracked and id(d.ctrl) not in tracked
        assert id(d.state) in tracked  # this tick's state is new: collectable as ever
    finally:
        gc.unfreeze()
