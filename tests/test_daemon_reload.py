"""SIGHUP loads and checks the config off the event loop (issue 13): a slow load never holds the
tick; the new config is swapped in between two ticks once it is ready."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import controller.daemon.runtime as runtime
from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from tests.runtime_fakes import FakeDrivers, load, write_config

LOAD_S = 1.0  # a config that takes 1 s to load and check: 10 ticks at 100 ms


@pytest.mark.serial
async def test_a_slow_config_load_never_holds_the_100_ms_tick(tmp_path, monkeypatch):
    config = write_config(tmp_path, 0.1)
    real_load = runtime.load_config
    loading = threading.Event()

    def slow_load(path):
        # Stands in for a large or hostile file (the loader bounds its own time): the worker thread
        # is busy for LOAD_S while the loop must keep ticking.
        loading.set()
        time.sleep(LOAD_S)
        return real_load(path)

    monkeypatch.setattr(runtime, "load_config", slow_load)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"), socket_path=None)
    d = Daemon(options, load(config), clock=time.monotonic, wall=time.time, sleep=asyncio.sleep,
               driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}), metrics=None)
    await d.start()
    task = asyncio.ensure_future(d.run())
    try:
        while d.ticks < 3:
            await asyncio.sleep(0.01)
        config.write_text(config.read_text().replace("setpoint: 40.0 ", "setpoint: 41.0 "))
        old_sha = d.loaded.sha256
        d.request_reload()
        give_up = time.monotonic() + 10
        while not loading.is_set() and time.monotonic() < give_up:
            await asyncio.sleep(0.01)
        ticks_at_load = d.ticks
        while not d.reloads_ok and time.monotonic() < give_up:
            await asyncio.sleep(0.01)
        assert d.reloads_ok == 1 and d.loaded.sha256 != old_sha
        # The loop ticked on the running config during the whole load (10 ticks; allow slack for a
        # loaded CI machine), and no tick overran.
        assert d.ticks - ticks_at_load >= 5
        assert d.overruns_total == 0
    finally:
        d.request_stop("test over")
        await asyncio.wait_for(task, 10)
