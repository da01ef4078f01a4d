"""The fleet year: the sites' closed loops run in lock step on one batch workload.

Each site is its own closed loop (simulations.runners.closed_loop.run_scenario: its plant model, its
heatctl step, its KPIs from the plant's meters) in a thread of its own. A site's IT load comes from
the fleet's workload (simulations.fleet.workload); the threads meet at a barrier at the start of
every tick, where the workload places and advances the batch jobs for that tick once for the whole
fleet. The node weights it places by come from each site's heatctl step of the tick before, by the
daemon's own rule from the present state (controller.planning.value.from_state: boiler firing 1,
demand beyond the recovered heat 0.75, tank charging 0.25, dumping 0; as
controller.daemon.workload.situation_from without a plan; drivers.slurm.decide.node_weight); a site
whose consumer is offline with a full tank is drained (drivers.slurm.decide.sink_full, the daemon's
rule). The sites run without the 24-hour plan: the value of heat is the present state's.

The threads only take turns (the GIL): lock step costs a barrier per tick, no parallelism; run the
two policies in two processes for that (simulations.fleet.results does).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from drivers.slurm.decide import Situation, Thresholds, node_weight, sink_full
from controller.site.roles import Role
from controller.planning.value import from_state
from simulations.fleet.workload import FleetSite, FleetWorkload
from simulations.plant.loop import plant_config_of
from simulations.runners.closed_loop import make_controller, run_scenario
from simulations.scenarios.definitions import SCENARIOS
from simulations.scenarios.year import site_for
from simulations.workload.profiles import MIXES

# The fleet: one site per shipped consumer template (year scenarios of simulations.scenarios.year).
FLEET_SCENARIOS = ("pool-year", "dhw-year", "space-heating-year", "district-year")
SITE_NAMES = {"pool-year": "pool", "dhw-year": "dhw", "space-heating-year": "space", "district-year": "district"}
# A barrier that waits this long means a site's thread died without aborting it (a bug): fail loudly.
BARRIER_TIMEOUT_S = 600.0


def mix_of(config: str | None):
    """The site template's workload mix; templates without one of their own (space heating,
    district) run the reference plant's GPU/CPU mix (an assumption: their compute is not described)."""
    return MIXES.get(config, MIXES[None])


@dataclass
class SiteRun:
    name: str
    scenario: str
    kpis: Any = None
    weights_seen: dict[int, float] = field(default_factory=dict)   # weight -> hours


class _Reporting:
    """heatctl's step, reporting the site's heat value (and sink state) to the fleet after each step."""

    def __init__(self, inner, fleet: "_Fleet", i: int, site):
        self.inner, self.fleet, self.i = inner, fleet, i
        self.tank_full_soc = site.modes.tank_full_soc
        self.available = tuple(site.points_with_role(Role.CONSUMER_AVAILABLE))
        self.shed = False

    def initial_state(self, now, *a, **kw):
        return self.inner.initial_state(now, *a, **kw)

    def step(self, state, snapshot, requests, now, **kw):
        res = self.inner.step(state, snapshot, requests, now, **kw)
        st = res.state
        online = any((c := res.checked.get(n)) is not None and c.good and c.value is not None and c.value >= 0.5
                     for n in self.available)
        self.shed = sink_full(Situation(now_s=now, consumer_online=online, tank_soc=st.tank_soc), Thresholds(),
                              self.shed)
        v = from_state(st.mode.value, st.boiler_on, online, st.tank_soc, self.tank_full_soc)
        # Before the plant is known (None) the weights stay as they were.
        if v is not None:
            self.fleet.report(self.i, v, self.shed)
        else:
            self.fleet.report(self.i, self.fleet.values[self.i], self.shed)
        return res


class _Fleet:
    def __init__(self, workload: FleetWorkload, n: int, tick_s: float):
        self.workload = workload
        self.values = [0.5] * n
        self.shed = [False] * n
        self.loads = [0.0] * n
        self.t = 0.0
        self.tick_s = tick_s
        self.weight_s: list[dict[int, float]] = [dict() for _ in range(n)]
        self.barrier = threading.Barrier(n, action=self._tick)

    def report(self, i: int, value: float, shed: bool) -> None:
        self.values[i], self.shed[i] = value, shed

    def _tick(self) -> None:
        w = self.workload
        w.weights = [node_weight(v) for v in self.values]
        w.drained = list(self.shed) if w.policy == "weight" else [False] * len(self.shed)
        for i, wt in enumerate(w.weights):
            self.weight_s[i][wt] = self.weight_s[i].get(wt, 0.0) + self.tick_s
        self.loads = w.tick(self.t)

    def load_fn(self, i: int):
        last: list[Any] = [None, 0.0]

        def load(t: float) -> float:
            if last[0] == t:
                return last[1]
            self.t = t
            self.barrier.wait(BARRIER_TIMEOUT_S)
            last[0], last[1] = t, self.loads[i]
            return last[1]
        return load


def run_fleet(policy: str, hours: float | None = None, start_s: float | None = None, tick_s: float = 60.0,
              scenarios: Sequence[str] = FLEET_SCENARIOS) -> tuple[list[SiteRun], FleetWorkload]:
    """One fleet run under `policy` ("home": independent sites; "weight": heat-aware placement)."""
    base = [SCENARIOS[n] for n in scenarios]
    start = base[0].start_s if start_s is None else start_s
    hours = base[0].hours if hours is None else hours
    sites_cfg = []
    for sc in base:
        site = site_for(sc)
        if site.tick_period_s != tick_s and 0.1 <= tick_s <= 60.0:
            site = site.model_copy(update={"tick_period_s": tick_s})
        sites_cfg.append(site)
    specs = [FleetSite(SITE_NAMES.get(sc.name, sc.name), plant_config_of(site).servers, mix_of(sc.config))
             for sc, site in zip(base, sites_cfg)]
    workload = FleetWorkload(specs, policy, start, tick_s)
    fleet = _Fleet(workload, len(base), tick_s)
    runs = [SiteRun(spec.name, sc.name) for spec, sc in zip(specs, base)]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        sc = dataclasses.replace(base[i], start_s=start, it_load=fleet.load_fn(i))
        ctrl = _Reporting(make_controller(sites_cfg[i], "heatctl"), fleet, i, sites_cfg[i])
        try:
            runs[i].kpis, _trace = run_scenario(sites_cfg[i], sc, hours=hours, tick_s=tick_s, controller=ctrl)
        except threading.BrokenBarrierError as e:
            errors.append(e)
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the other threads stop
            errors.append(e)
            fleet.barrier.abort()

    threads = [threading.Thread(target=one, args=(i,), name=f"site-{specs[i].name}") for i in range(len(base))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
    for i, r in enumerate(runs):
        r.weights_seen = {w: s / 3600.0 for w, s in sorted(fleet.weight_s[i].items())}
    return runs, workload
