"""The real daemon on simulated time: `controller.daemon.runtime.Daemon` against the plant model, in process.

A month of the daemon cannot be run in real time, so this harness runs the real Daemon class (its
tick loop, step, audit store, per-minute history, energy counters) with:

- a fake clock (`SimClock`): monotonic time is simulated seconds; the daemon's `sleep` advances
  it, and advancing it advances the plant model by the same time with the scenario's loads;
- `SimulatedPlantDriver`, a fake driver (named as one: it speaks no protocol) per configured
  driver that reads its points straight from the plant model's measurements (through
  simulations.plant.binding, as `heatctl sim-plant` serves them) and writes commands straight into the
  plant's actuators.

What it proves: what the daemon persists (SQLite history and events) is enough to compute the SLA
report, compared with the plant's own meters (`PlantTruth`). What it does not prove: the drivers and
the wire (tests/test_e2e_daemon.py does that in real time).

Heartbeat: at a coarse tick (60 s) the plant's 10 s heartbeat timeout would put it in fallback
between ticks; as simulations.runners.closed_loop does, the timeout is stretched to 3 ticks.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from controller.site.loader import LoadedConfig
from controller.core.readings import Reading
from drivers.base import Driver, DriverPoint, WriteResult
from simulations.plant.loop import PlantLoop, config_for_tick, plant_config_of
from simulations.plant.model import Actuators
from simulations.scenarios.definitions import Scenario


@dataclass
class PlantTruth:
    """What the plant's meters say, with the same definitions as simulations.runners.closed_loop's KPIs."""

    throttled_s: float = 0.0
    deficit_ks: float = 0.0
    below_s: float = 0.0
    min_supply_c: float = math.inf
    seconds: float = 0.0
    # name -> the cumulative figures at that moment (see SimulatedPlant.mark)
    marks: dict[str, dict[str, float]] = field(default_factory=dict)


class SimulatedPlant:
    """The plant model, its loads and its meters, moved by `advance` (called from the clock)."""

    def __init__(self, loaded: LoadedConfig, scenario: Scenario, t0_s: float, tick_s: float):
        site = loaded.site
        cfg, _ = config_for_tick(plant_config_of(site), tick_s)
        self.cfg = cfg
        self.site = site
        self.scenario = scenario
        # The one plant loop (simulations.plant.loop): the same books as the closed loop's KPIs.
        self.loop = PlantLoop(site, cfg, t0_s)
        self.plant = self.loop.plant
        self.binding = self.loop.binding
        self.t = t0_s
        self.truth = PlantTruth()
        self.values: dict[str, float] = self.loop.point_values()

    @property
    def actuators(self) -> Actuators:
        """What was last commanded (the defaults before the first write)."""
        return self.loop.actuators or Actuators()

    def write(self, commands: Mapping[str, float]) -> None:
        self.loop.command(commands, self.t)

    def advance(self, dt: float) -> None:
        """Move the plant by dt (s), with the plant loop's books of the tick added to the truth."""
        if dt <= 0:
            return
        loads = self.scenario.loads(self.t)
        b = self.loop.books(loads)
        tr = self.truth
        if b.demanding and b.supply_error_k < 0:
            tr.deficit_ks -= b.supply_error_k * dt
            tr.below_s += dt
        tr.min_supply_c = min(tr.min_supply_c, b.true.consumer_supply_c)
        if b.throttled:
            tr.throttled_s += dt
        tr.seconds += dt
        self.loop.advance(dt, loads)
        self.t += dt
        self.values = self.loop.point_values()

    def mark(self, name: str) -> None:
        """Remember the cumulative meters and KPI sums now, to compare periods (e.g. without a gap)."""
        m, tr = self.plant.meters, self.truth
        self.truth.marks[name] = {
            "t_s": self.t, "delivered_j": m.delivered_j - m.returned_j, "it_j": m.it_j,
            "aux_j": m.pumps_j + m.fans_j, "boiler_j": m.boiler_j, "dumped_j": m.dumped_j,
            "throttled_s": tr.throttled_s, "deficit_ks": tr.deficit_ks, "below_s": tr.below_s}


class SimClock:
    """Simulated monotonic time; `sleep` moves it and the plant. `wall` maps it to epoch seconds.

    `at(t_s, fn)` schedules fn() (plant faults, operator requests) when simulated time reaches t_s."""

    def __init__(self, plant: SimulatedPlant, wall_epoch: float):
        self.plant = plant
        self.wall_epoch = wall_epoch  # epoch seconds at simulated t = 0
        self.actions: list[tuple[float, Any]] = []

    def at(self, t_s: float, fn: Any) -> None:
        self.actions.append((t_s, fn))
        self.actions.sort(key=lambda a: a[0])

    def _due(self) -> None:
        while self.actions and self.actions[0][0] <= self.plant.t:
            self.actions.pop(0)[1]()

    def __call__(self) -> float:
        return self.plant.t

    def wall(self) -> float:
        return self.wall_epoch + self.plant.t

    async def sleep(self, dt: float) -> None:
        self.plant.advance(max(dt, 0.0))
        self._due()
        await asyncio.sleep(0)

    def idle(self, seconds: float, step_s: float) -> None:
        """The daemon is down: the plant runs on (on its heartbeat fallback) with no controller."""
        end = self.plant.t + seconds
        while self.plant.t < end - 1e-9:
            self.plant.advance(min(step_s, end - self.plant.t))
            self._due()


class SimulatedPlantDriver(Driver):
    """A fake driver: reads its points from the plant model, writes into its actuators. No protocol."""

    kind = "simulated"

    def __init__(self, name: str, config: Any, points: Mapping[str, DriverPoint], clock: Any,
                 plant: SimulatedPlant):
        super().__init__(name, config, points, clock)
        self.plant = plant
        self._health.connected = True

    async def read(self) -> dict[str, Reading]:
        now = self.clock()
        vals = self.plant.values
        out: dict[str, Reading] = {}
        for n, p in self.points.items():
            v = vals.get(n)
            if v is None:  # an actuator: read back what was commanded
                v = self.plant.binding.actuator_values(self.plant.actuators).get(n)
            out[n] = Reading(float(v), p.config.unit, now) if v is not None else \
                Reading.lost(p.config.unit, now, "not in the plant model")
        return out

    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        self.plant.write(commands)
        return [WriteResult(p, v, ok=True, readback=v) for p, v in commands.items()]


def driver_factory(plant: SimulatedPlant):
    """A Daemon driver_factory: one SimulatedPlantDriver per configured driver, over `plant`."""

    def build(loaded: LoadedConfig, clock: Any) -> dict[str, Driver]:
        drivers: dict[str, Driver] = {}
        for name, cfg in loaded.site.drivers.items():
            points = {p: DriverPoint(p, loaded.site.points[p], s) for p, s in loaded.sources.items()
                      if getattr(s, "driver", None) == name}
            drivers[name] = SimulatedPlantDriver(name, cfg, points, clock, plant)
        return drivers

    return build


# Writer jobs queued before the simulated clock waits for the database writer to drain.
SIM_QUEUE_HIGH = 500


def make_daemon(loaded: LoadedConfig, state_dir: str, plant: SimulatedPlant, clock: SimClock) -> Any:
    """A Daemon (no socket, no metrics) on simulated time over `plant`."""
    from controller.daemon.runtime import Daemon, RuntimeOptions

    opts = RuntimeOptions(config_path=loaded.path, state_dir=state_dir, socket_path=None)
    d = None

    async def sleep(dt: float) -> None:
        # Simulated time runs thousands of ticks a second while the database writer thread works in
        # real time: let it catch up whenever its queue grows, as a real tick period would, so a
        # month on simulated time loses no row (a live daemon never waits for the writer).
        await clock.sleep(dt)
        if d is not None and d.db is not None and d.db.state().queued > SIM_QUEUE_HIGH:
            await asyncio.to_thread(d.db.wait_idle, 60.0)

    d = Daemon(opts, loaded, clock=clock, wall=clock.wall, sleep=sleep,
               driver_factory=driver_factory(plant), metrics=None)
    return d


def request(daemon: Any, req: Any, uid: int = 1000) -> None:
    """Feed an operator request into the daemon's next tick, as the control API does."""
    from controller.daemon.api_server import Caller

    asyncio.ensure_future(daemon.api_change(req, Caller(pid=0, uid=uid, gid=uid)))


async def run_daemon_for(loaded: LoadedConfig, state_dir: str, plant: SimulatedPlant, clock: SimClock,
                         seconds: float, daemon: Any = None) -> Any:
    """Start a Daemon on simulated time, run it `seconds`, shut it down; returns it."""
    d = daemon or make_daemon(loaded, state_dir, plant, clock)
    await d.start()
    ticks = int(round(seconds / d.period))
    await d.run(max_ticks=ticks)
    return d
