"""Fakes for the daemon's unit tests: a fake clock, and an in-process FakeDriver over a FakePlant.

They do what only a fake does cheaply: scripted readings, a slow read that costs fake time, a read
that raises (a driver bug), a read that never returns, a device that goes silent.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Mapping

from controller.daemon.api_server import Caller
from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from controller.site.loader import LoadedConfig, load_config
from controller.core.readings import Quality, Reading
from drivers.base import Driver, DriverPoint, WriteResult
from tests.step_helpers import GOOD, REFERENCE

METERS = dict(consumer_heat=28000.0, dump_heat=0.0, boiler_heat=0.0, aux_power=1500.0)
WALL_EPOCH = 1_780_000_000.0  # fake wall clock = this + fake monotonic time


class FakeClock:
    """Monotonic fake time; `sleep` advances it (and yields once to the event loop)."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt

    def wall(self) -> float:
        return WALL_EPOCH + self.t

    async def sleep(self, dt: float) -> None:
        self.t += max(dt, 0.0)
        await asyncio.sleep(0)


class FakePlant:
    """Point values shared by the fake drivers; what was written, in order."""

    def __init__(self, values: Mapping[str, float] | None = None):
        # The heat meters too: the step meters delivered heat from them where a site has them.
        self.values: dict[str, float] = dict({**GOOD, **METERS} if values is None else values)
        self.writes: list[dict[str, float]] = []
        self.clamp: dict[str, float] = {}
        self.actuators: dict[str, float] = {}


class FakeDriver(Driver):
    """A driver with scripted behaviour. `delay_s` advances the fake clock inside read (a slow read);
    `crash` makes reads raise; `hang` makes reads never return; `silent` gives LOST readings."""

    kind = "fake"

    def __init__(self, name: str, config, points: Mapping[str, DriverPoint], clock, plant: FakePlant):
        super().__init__(name, config, points, clock)
        self.plant = plant
        self.delay_s = 0.0
        self.crash: int = 0          # raise on the next `crash` reads
        self.hang = False
        self.silent = False
        self.starts = 0
        self.closes = 0
        self.reads = 0
        self._health.connected = True

    async def start(self) -> None:
        self.starts += 1

    async def close(self) -> None:
        self.closes += 1

    async def read(self) -> dict[str, Reading]:
        self.reads += 1
        if self.crash:
            self.crash -= 1
            raise RuntimeError("fake driver bug")
        if self.hang:
            await asyncio.Event().wait()
        if self.delay_s:
            self.clock.advance(self.delay_s)  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        if self.silent:
            return self.lost_all("timeout (fake silent device)")
        now = self.clock()
        out = {}
        for n, p in self.points.items():
            v = self.plant.values.get(n, self.plant.actuators.get(n))
            out[n] = (Reading(float(v), p.config.unit, now, Quality.GOOD) if v is not None
                      else Reading.lost(p.config.unit, now, "no value in the fake plant"))
        return out

    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        self.plant.writes.append(dict(commands))
        # An actuator that clamps (plant.clamp: point -> highest value it takes) reads back less.
        applied = {p: min(v, self.plant.clamp.get(p, v)) for p, v in commands.items()}
        self.plant.actuators.update(applied)
        return [WriteResult(p, v, ok=not self.silent, readback=applied[p]) for p, v in commands.items()]


class FakeDrivers:
    """A driver factory for Daemon(driver_factory=...): one FakeDriver per configured driver."""

    def __init__(self, plant: FakePlant | None = None):
        self.plant = plant or FakePlant()
        self.built: list[dict[str, FakeDriver]] = []

    def __call__(self, loaded: LoadedConfig, clock) -> dict[str, FakeDriver]:
        drivers = {}
        for name, cfg in loaded.site.drivers.items():
            points = {p: DriverPoint(p, loaded.site.points[p], s) for p, s in loaded.sources.items()
                      if getattr(s, "driver", None) == name}
            drivers[name] = FakeDriver(name, cfg, points, clock, self.plant)
        self.built.append(drivers)
        return drivers

    @property
    def current(self) -> dict[str, FakeDriver]:
        return self.built[-1]


def write_config(tmp: Path, tick: float = 1.0, name: str = "site.yaml",
                 replace: Mapping[str, str] | None = None) -> Path:
    """The reference config with another tick period (and any text replacements), in `tmp`."""
    text = REFERENCE.read_text()
    text = text.replace("tick_period_s: 1.0", f"tick_period_s: {tick}")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / name
    path.write_text(text)
    return path


def load(path: Path) -> LoadedConfig:
    return load_config(path)


def flushed(daemon):
    """The daemon's audit store, once its database writer has written everything queued so far
    (writes leave the tick: controller/daemon/persistence.py)."""
    assert daemon.db is None or daemon.db.wait_idle(10), "database writer did not drain in 10 s"
    return daemon.audit


def make_daemon(tmp_path, tick=1.0, clock=None, drivers=None, config=None, **opts):
    """A Daemon on the reference config (written to tmp_path), a FakeClock and FakeDrivers, no API
    socket: (daemon, clock, drivers)."""
    clock = clock or FakeClock()
    drivers = drivers or FakeDrivers()
    config = config or write_config(tmp_path, tick)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"), socket_path=None, **opts)
    d = Daemon(options, load(config), clock=clock, wall=clock.wall, sleep=clock.sleep, driver_factory=drivers,
               notifier=SystemdNotifier(env={}), metrics=None)
    return d, clock, drivers


def api_caller() -> Caller:
    """This process as the API's caller (what the socket's peer credentials would say)."""
    return Caller(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
