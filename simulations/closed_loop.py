"""The closed loop on simulated time: the real control step against the plant model.

Each tick: plant measurements -> snapshot (by role) -> `Controller.step` -> commands -> plant
actuators -> plant advances one tick. Time is simulated (no clock, no sleep), so a day runs in
seconds and every run gives the same result. KPIs come from the plant's own meters (the truth), not
from the controller's estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from controller.config import SiteConfig
from controller.modes import Mode
from controller.readings import Reading, Snapshot
from controller.roles import Role
from controller.step import Controller
from simulations.binding import MeterRates, PlantBinding
from simulations.plant import Loads, Plant
from simulations.scenarios import Scenario


@dataclass
class Kpis:
    hours: float
    it_kwh: float
    captured_kwh: float
    delivered_kwh: float
    to_tank_kwh: float
    from_tank_kwh: float
    dumped_kwh: float
    boiler_kwh: float
    pumps_fans_kwh: float
    demand_kwh: float
    erf: float
    mode_hours: dict[str, float]
    mode_changes: int
    trips: dict[str, int]
    hours_above_limit: dict[str, float]
    supply_iae_kh: float
    comfort_deficit_kh: float
    throttled_hours: float
    it_lost_kwh: float
    energy_balance_error: float
    max_it_supply_c: float
    # (simulated seconds, kind, message, fields): faults, mode changes, trips, refusals.
    timeline: list[tuple[float, str, str, dict]] = field(default_factory=list)

    @property
    def events(self) -> list[str]:
        return [f"{t / 3600:.2f} h: {msg}" for t, _, msg, _ in self.timeline]

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        d["events"] = self.events
        return d


@dataclass
class Trace:
    """Samples every `every_s` for plots and tests (simulated seconds since start)."""

    t_s: list[float] = field(default_factory=list)
    mode: list[str] = field(default_factory=list)
    consumer_supply_c: list[float] = field(default_factory=list)
    it_supply_c: list[float] = field(default_factory=list)
    it_power_w: list[float] = field(default_factory=list)
    power_cap_w: list[float] = field(default_factory=list)
    tank_soc: list[float] = field(default_factory=list)


def run_scenario(site: SiteConfig, scenario: Scenario, hours: float | None = None,
                 tick_s: float | None = None, trace_every_s: float = 60.0,
                 progress: Callable[[float], None] | None = None) -> tuple[Kpis, Trace]:
    """Run `scenario` for `hours` (default: the scenario's own) and return its KPIs and a trace."""
    hours = scenario.hours if hours is None else hours
    dt = tick_s or scenario.tick_s or site.tick_period_s
    ctrl = Controller(site)
    binding = PlantBinding(site)
    plant = Plant(site.simulation, 0.0)
    rates = MeterRates()
    state = ctrl.initial_state(0.0)
    units = {n: p.unit for n, p in site.points.items()}
    limit_points = {name: (t.point, t.limit) for name, t in site.trips.items() if t.kind == "high"}
    sp = site.loops.consumer_supply.setpoint
    cap_point = ctrl.role[Role.POWER_CAP]

    mode_s = {m.value: 0.0 for m in Mode}
    above_s = {name: 0.0 for name in limit_points}
    trips: dict[str, int] = {}
    timeline: list[tuple[float, str, str, dict]] = []
    mode_changes = 0
    iae = deficit = throttled_s = lost_j = demand_j = 0.0
    max_it_supply = -math.inf
    trace = Trace()
    next_trace = 0.0
    faults = sorted(scenario.faults, key=lambda f: f.at_s)
    requests = sorted(scenario.requests, key=lambda r: r[0])
    fi = ri = 0
    steps = int(round(hours * 3600.0 / dt))
    actuators = None
    for k in range(steps):
        t = k * dt
        while fi < len(faults) and faults[fi].at_s <= t:
            f = faults[fi]
            if f.action == "inject":
                plant.inject(f.fault)
            else:
                plant.clear(f.fault.kind, f.fault.target)
            timeline.append((t, f"fault_{f.action}", f"{f.action} {f.fault.kind} {'' if f.fault.target is None else f.fault.target}".rstrip(),
                             {"fault": f.fault.kind, "target": f.fault.target}))
            fi += 1
        reqs = []
        while ri < len(requests) and requests[ri][0] <= t:
            reqs.append(requests[ri][1])
            ri += 1
        loads = scenario.loads(t)
        meas = plant.measurements()
        rates.update(plant.meters, dt)
        values = binding.point_values(meas, rates)
        snapshot = Snapshot(t, {n: Reading(v, units[n], t) for n, v in values.items()})
        res = ctrl.step(state, snapshot, reqs, t)
        state = res.state
        for e in res.events:
            if e.kind in ("mode_changed", "trip", "trip_reset", "request_refused", "trip_acked"):
                fields = dict(e.fields)
                if e.kind == "trip":
                    # What was commanded in the very tick the trip fired (tests check the actions).
                    fields["commands"] = {p: (o.value, o.source.value) for p, o in res.commands.items()}
                timeline.append((t, e.kind, e.message, fields))
            if e.kind == "mode_changed":
                mode_changes += 1
            if e.kind == "trip":
                trips[e.fields["trip"]] = trips.get(e.fields["trip"], 0) + 1
        actuators = binding.actuators({p: o.value for p, o in res.commands.items()}, actuators)
        plant.set_actuators(actuators, t)

        # KPIs on true values (before the plant moves on).
        true = plant.true_measurements()
        mode_s[state.mode.value] += dt
        for name, (point, limit) in limit_points.items():
            v = values.get(point) if point not in ("it_supply_temp",) else true.it_supply_c
            if v is not None and limit is not None and v >= limit:
                above_s[name] += dt
        max_it_supply = max(max_it_supply, true.it_supply_c)
        if loads.consumer_available and loads.consumer_demand_w > 0:
            err = true.consumer_supply_c - sp
            iae += abs(err) * dt
            if err < 0:
                deficit += -err * dt
            demand_j += loads.consumer_demand_w * dt
        cfg = site.simulation
        wanted = cfg.servers * (cfg.server_idle_w + loads.it_load_fraction * (cfg.server_max_w - cfg.server_idle_w))
        cap = res.commands[cap_point].value
        if cap < wanted - 1.0:
            throttled_s += dt
            lost_j += (wanted - sum(true.server_power_w)) * dt if sum(true.server_power_w) < wanted else 0.0
        if t >= next_trace:
            trace.t_s.append(t)
            trace.mode.append(state.mode.value)
            trace.consumer_supply_c.append(true.consumer_supply_c)
            trace.it_supply_c.append(true.it_supply_c)
            trace.it_power_w.append(sum(true.server_power_w))
            trace.power_cap_w.append(cap)
            trace.tank_soc.append(state.tank_soc if state.tank_soc is not None else math.nan)
            next_trace += trace_every_s
        if progress is not None and k % 3600 == 0:
            progress(t / (hours * 3600.0))
        plant.advance(dt, loads)

    m = plant.meters
    kwh = 1 / 3.6e6
    total = m.it_j + m.pumps_j + m.fans_j
    kpis = Kpis(
        hours=hours,
        it_kwh=m.it_j * kwh, captured_kwh=m.captured_j * kwh,
        delivered_kwh=(m.delivered_j - m.returned_j) * kwh,
        to_tank_kwh=m.to_tank_j * kwh, from_tank_kwh=m.from_tank_j * kwh,
        dumped_kwh=m.dumped_j * kwh, boiler_kwh=m.boiler_j * kwh,
        pumps_fans_kwh=(m.pumps_j + m.fans_j) * kwh,
        demand_kwh=demand_j * kwh,
        erf=(m.delivered_j - m.returned_j) / total if total > 0 else 0.0,
        mode_hours={k: v / 3600 for k, v in mode_s.items()},
        mode_changes=mode_changes,
        trips=trips,
        hours_above_limit={k: v / 3600 for k, v in above_s.items()},
        supply_iae_kh=iae / 3600, comfort_deficit_kh=deficit / 3600,
        throttled_hours=throttled_s / 3600, it_lost_kwh=lost_j * kwh,
        energy_balance_error=plant.energy_balance_error(),
        max_it_supply_c=max_it_supply,
        timeline=timeline,
    )
    return kpis, trace
