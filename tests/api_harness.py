"""A daemon in process with the control API on a real unix socket, and the CLI run against it, for
the tests of the API and of the verbs that use it (fake drivers; a fake clock that the loop advances
one period per tick while sleeping a little real time). Its socket goes in conftest's `sockdir`.
"""

from __future__ import annotations

import asyncio

from controller import cli
from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from tests.runtime_fakes import FakeClock, FakeDrivers, load, write_config


async def start_daemon(tmp_path, sockdir, authorizer=None):
    """A daemon on the reference config with its API socket in `sockdir`, running and past its first
    tick: (daemon, its run() task, its FakeDrivers). Stop it with request_stop and await the task."""
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
