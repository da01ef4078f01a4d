"""A daemon in process with the control API on a real unix socket, and the CLI run against it, for
the tests of the API and of the verbs that use it (fake drivers; a fake clock that the loop advances
one period per tick while sleeping a little real time). Test files take the `sockdir` fixture by
importing it: `from tests.api_harness import sockdir  # noqa: F401 - a fixture`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from controller import cli
from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from tests.runtime_fakes import FakeClock, FakeDrivers, load, write_config


@pytest.fixture
def sockdir():
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="hc-api-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


async def start_daemon(tmp_path, sockdir, authorizer=None):
    clock = FakeClock()
    drivers = FakeDrivers()
    config = write_config(tmp_path, 1.0)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"),
                             socket_path=str(sockdir / "heatctl.sock"), authorizer=authorizer,
                             socket_group=None)

    async def sleep(dt):
        clock.t += max(dt, 0.0)
        await asyncio.sleep(0.005)  # a fake second per 5 ms of real time

    d = Daemon(options, load(config), clock=clock, wall=clock.wall, sleep=sleep, driver_factory=drivers,
               notifier=SystemdNotifier(env={}), metrics=None)
    await d.start()
    task = asyncio.ensure_future(d.run())
    while d.ticks < 1:
        await asyncio.sleep(0.005)
    return d, task, drivers


async def heatctl(*argv, capsys=None):
    """Run the CLI in a thread (it blocks on the socket; the daemon runs in this loop)."""
    def main():
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return exc.code
    return await asyncio.to_thread(main)
