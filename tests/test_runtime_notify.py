"""systemd Type=notify without systemd: a harness binds a datagram socket, sets NOTIFY_SOCKET and
WATCHDOG_USEC, and checks READY=1 (after the first completed tick), WATCHDOG=1 (only after completed
ticks, at the expected rate, none while the loop hangs) and STOPPING=1."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
import structlog

from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from tests.runtime_fakes import FakeClock, FakeDrivers, load, write_config

@pytest.fixture(autouse=True)
def _default_structlog():
    # Another verb's in-process test may leave structlog bound to a closed capture stream.
    structlog.reset_defaults()
    yield



class NotifyHarness:
    """The receiving end of sd_notify: a bound AF_UNIX datagram socket; messages with arrival time."""

    def __init__(self, abstract: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix="hc-notify-", dir="/tmp"))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"heatctl-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = str(self.dir / "notify")
            self.sock.bind(path)
            self.address = path
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def drain(self, clock=time.monotonic) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            for line in data.decode().split("\n"):
                self.messages.append((clock(), line))
        return [m for _, m in self.messages]

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.address}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            env["WATCHDOG_PID"] = str(os.getpid())
        return env

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def harness():
    h = NotifyHarness()
    yield h
    h.close()


def test_notifier_sends_nothing_without_notify_socket():
    n = SystemdNotifier(env={})
    assert not n.enabled
    n.ready("x")
    n.watchdog()  # no error, no socket


def test_watchdog_only_when_enabled_for_this_pid(harness):
    n = SystemdNotifier(env={**harness.env(2_000_000), "WATCHDOG_PID": "1"})
    assert n.watchdog_s is None  # meant for another process
    n = SystemdNotifier(env=harness.env(2_000_000))
    assert n.watchdog_s == 2.0


def test_abstract_socket_address():
    h = NotifyHarness(abstract=True)
    try:
        SystemdNotifier(env=h.env()).ready("mode normal")
        assert h.drain() == ["READY=1", "STATUS=mode normal"]
    finally:
        h.close()


async def test_ready_after_first_completed_tick_and_watchdog_per_completed_tick(tmp_path, harness):
    clock = FakeClock()
    drivers = FakeDrivers()
    config = write_config(tmp_path, 1.0)
    # WATCHDOG_USEC 4 s: at most one ping per second, i.e. one per completed 1 s tick.
    notifier = SystemdNotifier(env=harness.env(4_000_000), clock=clock)
    d = Daemon(RuntimeOptions(str(config), str(tmp_path / "state")), load(config), clock=clock,
               wall=clock.wall, sleep=clock.sleep, driver_factory=drivers, notifier=notifier, metrics=None)
    await d.start()
    assert harness.drain(clock) == []  # nothing before a tick completed
    # Tick 4 fails (a bug in the step): no WATCHDOG=1 for it.
    orig_step = d.ctrl.step

    def step(*a, **k):
        if d.tick_failures_total == 0 and d.ticks == 3:
            raise RuntimeError("bug")
        return orig_step(*a, **k)

    d.ctrl.step = step
    orig_tick = d.tick

    async def tick():
        harness.drain(clock)  # stamps what arrived since the last tick with the fake time
        return await orig_tick()

    d.tick = tick
    await d.run(max_ticks=6)
    msgs = harness.drain(clock)
    assert msgs[0] == "READY=1" and msgs[1].startswith("STATUS=mode normal")
    pings = [t for t, m in harness.messages if m == "WATCHDOG=1"]
    assert len(pings) == 6  # 7 ticks ran, 6 completed
    assert d.tick_failures_total == 1
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert sorted(gaps)[-1] == pytest.approx(2.0)  # the failed tick left a 2 s gap
    assert all(g >= 1.0 - 1e-9 for g in gaps[:-1])  # the last one is stamped after run() returned
    assert msgs[-2:] == ["STOPPING=1", msgs[-1]] and msgs[-1].startswith("STATUS=stopping")


async def test_watchdog_real_time_and_a_hung_loop_stops_pinging(tmp_path, harness):
    """Real clock, 0.1 s tick, WATCHDOG_USEC 1 s: pings rate-limited to one per 0.25 s, well inside
    the watchdog period while ticking; none while the loop hangs in a tick for 2 s."""
    config = write_config(tmp_path, 0.1)
    drivers = FakeDrivers()
    notifier = SystemdNotifier(env=harness.env(1_000_000))
    d = Daemon(RuntimeOptions(str(config), str(tmp_path / "state")), load(config),
               driver_factory=drivers, notifier=notifier, metrics=None)
    await d.start()
    orig = d.tick

    async def tick():
        if d.ticks == 10:
            await asyncio.sleep(2.0)  # the loop is stuck for 2 s
        return await orig()

    d.tick = tick
    task = asyncio.ensure_future(d.run(max_ticks=30))
    deadline = time.monotonic() + 10
    while not task.done() and time.monotonic() < deadline:
        harness.drain()
        await asyncio.sleep(0.01)
    await task
    harness.drain()
    msgs = [m for _, m in harness.messages]
    assert msgs[0] == "READY=1"
    pings = [t for t, m in harness.messages if m == "WATCHDOG=1"]
    gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
    assert len(pings) >= 6
    assert gaps[-1] >= 1.9          # nothing while the loop hung
    assert gaps[-2] < 0.9           # otherwise inside WATCHDOG_USEC (1 s), with room for a loaded CI
    assert all(g >= 0.24 for g in gaps)  # rate-limited to a quarter of the watchdog period
    assert d.overruns_total >= 1
