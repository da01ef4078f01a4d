"""The closed loop on simulated time: a control step against the plant model.

Each tick: plant measurements -> snapshot (by role) -> `step` -> commands -> plant actuators ->
plant advances one tick. Time is simulated (no clock, no sleep), so a year runs in minutes and every
run gives the same result. KPIs come from the plant's own meters (the truth), not from the
controller's estimates (simulations.analysis.kpis).

The controller is heatctl's `Controller` by default; any object with the same
`initial_state(now)` / `step(state, snapshot, requests, now) -> StepResult` can be swapped in
(`controller="baseline"` is simulations.baselines.naive: the plant as sites run it today).

Snapshot-level faults, on top of the plant's own (simulations.plant.faults):
- comms loss (Scenario.comms_loss): every BMS reading (points served by a Modbus or OPC-UA driver)
  arrives LOST, and no BMS write reaches the plant, the heartbeat included, so the plant's
  heartbeat fallback takes over after its timeout; the BMCs (IPMI) still answer and take the cap.
- controller restart (Scenario.restarts): the controller's state is dropped; for the downtime
  nothing is written (the fallback covers the gap); then the state is rebuilt with initial_state()
  while the plant has kept running.

Heartbeat timeout and coarse ticks: a BMS's heartbeat timeout is set in ticks of its controller (the
reference: 10 s for a 1 s tick). At a year run's 60 s tick, 10 s would put the plant in fallback 50 s
of every 60; the runner therefore stretches the plant's timeout to 3 ticks when it is shorter than
2 ticks, and says so in the timeline.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from controller.site.models import SiteConfig
from controller.core.modes import Mode
from controller.core.readings import Reading, SampledReadings, Snapshot
from controller.site.roles import Role
from simulations.plant.loop import PlantLoop, config_for_tick, plant_config_of, true_soc
from simulations.analysis.kpis import ENERGY_KEYS, Kpis, SafeThrottling, Trace, demand_met_share, monthly
from simulations.scenarios.definitions import Scenario

__all__ = ["Kpis", "Trace", "run_scenario", "run_compare", "Comparison", "make_controller", "bms_points"]

KWH = 1 / 3.6e6
DEFAULT_TRACE_EVERY_S = 60.0
# Throttling in these is allowed (issue 11: interactive work is never throttled "except by a trip or
# safe_degrade"; a latched trip puts the controller in safe_degrade, and the start-up hold is
# safe_degrade too): counted apart from the rest (Kpis.throttled_safe_hours), with the climb back
# after one (simulations.analysis.kpis.SafeThrottling).
_SAFE_STATES = frozenset({Mode.SAFE_DEGRADE.value, "controller_down"})
# Actuators whose travel is counted as wear (Actuators field names).
TRAVEL_FIELDS = ("p1_pct", "p2_pct", "p3_pct", "v1_pct", "d1_pct")


def make_controller(site: SiteConfig, controller: Any = "heatctl") -> Any:
    """'heatctl' -> controller.core.step.Controller; a baseline's name (simulations.baselines.registry) ->
    that baseline; any other object is used as given."""
    if controller == "heatctl":
        from controller.core.step import Controller
        return Controller(site)
    from simulations.baselines.registry import BASELINES, is_baseline, make_baseline
    if isinstance(controller, str) and is_baseline(controller):
        return make_baseline(controller, site)
    if isinstance(controller, str):
        raise ValueError(f"unknown controller {controller!r}; expected 'heatctl' or one of {', '.join(BASELINES)}")
    return controller


def bms_points(site: SiteConfig) -> frozenset[str]:
    """Points served by the BMS (Modbus or OPC-UA drivers, or no driver): what a comms loss takes."""
    out = set()
    for name, p in site.points.items():
        drv = (p.source or {}).get("driver")
        kind = getattr(site.drivers.get(drv), "kind", None) if drv else None
        if kind != "ipmi":
            out.add(name)
    return frozenset(out)


def _in_windows(t: float, windows: tuple[tuple[float, float], ...]) -> bool:
    for a, b in windows:
        if a <= t < b:
            return True
    return False


def run_scenario(site: SiteConfig, scenario: Scenario, hours: float | None = None,
                 tick_s: float | None = None, trace_every_s: float | None = None,
                 progress: Callable[[float], None] | None = None,
                 controller: Any = "heatctl", measure_from_s: float | None = None) -> tuple[Kpis, Trace]:
    """Run `scenario` for `hours` (default: the scenario's own) and return its KPIs and a trace.

    `measure_from_s`: the ticks before it are a warm-up (the plant, the tank and the controller
    run, nothing is counted): the KPIs, trace and timeline cover [measure_from_s, end) only, as one
    chunk of a year split across processes (`run_chunks`). None: everything is counted."""
    hours = scenario.hours if hours is None else hours
    dt = tick_s or scenario.tick_s or site.tick_period_s
    every = trace_every_s or scenario.trace_every_s or DEFAULT_TRACE_EVERY_S
    t0 = scenario.start_s
    if dt != site.tick_period_s and 0.1 <= dt <= 60.0:
        # The controller runs at the scenario's tick: let it know (metering gaps, dwell in ticks).
        site = site.model_copy(update={"tick_period_s": dt})
    ctrl = make_controller(site, controller)
    ctrl_name = controller if isinstance(controller, str) else type(controller).__name__
    timeline: list[tuple[float, str, str, dict]] = []
    cfg, note = config_for_tick(plant_config_of(site), dt)
    if note:
        timeline.append((t0, "note", note, {}))
    loop = PlantLoop(site, cfg, t0)
    plant, binding = loop.plant, loop.binding
    state = ctrl.initial_state(t0)
    units = {n: p.unit for n, p in site.points.items()}
    high_trips = {name: (t.point, t.alarm, t.limit) for name, t in site.trips.items() if t.kind == "high"}
    sp = site.loops.consumer_supply.setpoint
    cap_point = binding.act["power_cap_w"]
    bms = bms_points(site)
    non_bms_act = {p for p in binding.act.values() if p not in bms}
    it_supply_point = site.point_for(Role.IT_SUPPLY_TEMP)

    mode_s: dict[str, float] = {m.value: 0.0 for m in Mode}
    above_alarm = {name: 0.0 for name in high_trips}
    above_limit = {name: 0.0 for name in high_trips}
    trips: dict[str, int] = {}
    travel = {f: 0.0 for f in TRAVEL_FIELDS}
    travel["boiler_switches"] = 0.0
    mode_changes = 0
    iae = deficit = above = throttled_s = lost_j = demand_j = 0.0
    safe_throttled = SafeThrottling(site.loops.power_cap.rate_up_per_s, site.power.max_w,
                                    safe_at_start=True)  # the controller starts in its start-up hold
    overshoot = 0.0
    max_it_supply = -math.inf
    trace = Trace()
    next_trace = t0
    # Cumulative energies (J) at the last trace sample, to turn meters into per-interval energies.
    last_cum = [0.0] * len(ENERGY_KEYS)
    faults = sorted(scenario.faults, key=lambda f: f.at_s)
    requests = sorted(scenario.requests, key=lambda r: r[0])
    comms = tuple(scenario.comms_loss)
    restarts = sorted(scenario.restarts)
    fi = ri = rsi = 0
    down_until = -math.inf
    in_comms_loss = False
    steps = int(round(hours * 3600.0 / dt))
    prev_act = None
    m = plant.meters

    def cumulative() -> list[float]:
        return [m.it_j, m.captured_j, m.delivered_j - m.returned_j, m.to_tank_j, m.from_tank_j, m.dumped_j,
                m.boiler_j, m.pumps_j + m.fans_j, demand_j, lost_j, m.useful_load_j]

    base = None  # the plant's meters at measure_from_s (the warm-up's energies, not counted)
    measuring = measure_from_s is None
    rs0 = 0
    for k in range(steps):
        t = t0 + k * dt
        if not measuring and t >= measure_from_s:  # type: ignore[operator]
            measuring = True
            base = dataclasses.replace(m)
            mode_s = {md.value: 0.0 for md in Mode}
            above_alarm = {name: 0.0 for name in high_trips}
            above_limit = {name: 0.0 for name in high_trips}
            trips, timeline = {}, []
            travel = {f: 0.0 for f in travel}
            mode_changes = 0
            iae = deficit = above = throttled_s = lost_j = demand_j = 0.0
            safe_throttled.restart_count()
            overshoot = 0.0
            max_it_supply = -math.inf
            trace = Trace()
            next_trace = t
            rs0 = rsi
        while fi < len(faults) and faults[fi].at_s <= t:
            f = faults[fi]
            if f.action == "inject":
                plant.inject(f.fault)
            else:
                plant.clear(f.fault.kind, f.fault.target)
            timeline.append((t, f"fault_{f.action}", f"{f.action} {f.fault.kind} {'' if f.fault.target is None else f.fault.target}".rstrip(),
                             {"fault": f.fault.kind, "target": f.fault.target}))
            fi += 1
        while rsi < len(restarts) and restarts[rsi][0] <= t:
            at, down = restarts[rsi]
            down_until = at + down
            state = None  # rebuilt from initial_state() once the downtime is over
            timeline.append((t, "controller_stopped", f"controller stopped (state lost), down for {down:g} s",
                             {"down_s": down}))
            rsi += 1
        reqs = []
        while ri < len(requests) and requests[ri][0] <= t:
            reqs.append(requests[ri][1])
            ri += 1
        loads = scenario.loads(t)
        down = t < down_until
        if down:
            mode_name = "controller_down"
            cmd_values = None
        else:
            if state is None:
                state = ctrl.initial_state(t)
                timeline.append((t, "controller_started", "controller restarted from its initial state", {}))
            values = loop.point_values()
            lost = _in_windows(t, comms) if comms else False
            if lost != in_comms_loss:
                in_comms_loss = lost
                timeline.append((t, "comms_lost" if lost else "comms_restored",
                                 "BMS comms lost: every BMS reading LOST" if lost else "BMS comms restored", {}))
            if lost:
                readings = {n: (Reading.lost(units[n], t, "comms lost (simulated)") if n in bms
                                else Reading(v, units[n], t)) for n, v in values.items()}
            else:
                readings = SampledReadings(values, units, t)
            res = ctrl.step(state, Snapshot(t, readings), reqs, t)
            state = res.state
            mode_name = state.mode.value
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
            cmd_values = {p: o.value for p, o in res.commands.items()}
            if lost:
                cmd_values = {p: v for p, v in cmd_values.items() if p in non_bms_act}
            loop.command(cmd_values, t)
        # KPIs on true values (before the plant moves on): the plant loop's books of this tick.
        books = loop.books(loads)
        true = books.true
        mode_s[mode_name] = mode_s.get(mode_name, 0.0) + dt
        it_sup = true.it_supply_c
        for name, (point, alarm, limit) in high_trips.items():
            if point == it_supply_point:
                v = it_sup
            else:
                v = values.get(point) if not down else None
            if v is not None:
                if alarm is not None and v >= alarm:
                    above_alarm[name] += dt
                if limit is not None and v >= limit:
                    above_limit[name] += dt
        if it_sup > max_it_supply:
            max_it_supply = it_sup
        if books.demanding:
            err = books.supply_error_k
            iae += abs(err) * dt
            if err < 0:
                deficit -= err * dt
            else:
                above += err * dt
                if err > overshoot:
                    overshoot = err
            demand_j += loads.consumer_demand_w * dt
        eff = books.effective
        if prev_act is not None:
            for f in TRAVEL_FIELDS:
                travel[f] += abs(getattr(eff, f) - getattr(prev_act, f))
            if eff.boiler_enable != prev_act.boiler_enable:
                travel["boiler_switches"] += 1
        prev_act = eff
        wanted = books.wanted_it_w
        cap = eff.power_cap_w
        it_now = books.it_w
        # Compute lost while throttled (simulations.plant.loop: the cap, or the servers' own protection).
        if books.throttled:
            throttled_s += dt
            if it_now < wanted:
                lost_j += (wanted - it_now) * dt
        safe_throttled.add(t, dt, mode_name in _SAFE_STATES, books.throttled, cap, wanted)
        if t >= next_trace:
            _flush(trace, cumulative(), last_cum)
            trace.t_s.append(t)
            trace.mode.append(mode_name)
            trace.consumer_supply_c.append(true.consumer_supply_c)
            trace.it_supply_c.append(it_sup)
            trace.it_power_w.append(it_now)
            trace.power_cap_w.append(cap)
            soc_true = true_soc(site, true.tank_layers_c)
            st_soc = getattr(state, "tank_soc", None) if state is not None else None
            trace.tank_soc.append(st_soc if st_soc is not None else soc_true)
            trace.true_soc.append(soc_true)
            trace.setpoint_c.append(sp)
            trace.b_supply_c.append(true.b_supply_c)
            trace.b_return_c.append(true.b_return_c)
            trace.tank_top_c.append(true.tank_top_c)
            trace.ambient_c.append(loads.ambient_c)
            trace.demand_w.append(loads.consumer_demand_w if true.consumer_available else 0.0)
            next_trace += every
        if progress is not None and k % 3600 == 0:
            progress(k / max(steps, 1))
        loop.advance(dt, loads)

    # The last interval's energies (the one that started at the last sample).
    _flush(trace, cumulative(), last_cum)
    if base is not None:  # a chunk: its own energies, without the warm-up's
        m = type(m)(**{f.name: getattr(m, f.name) - getattr(base, f.name) for f in dataclasses.fields(m)})
        hours -= (measure_from_s - t0) / 3600.0  # type: ignore[operator]
        t0 = measure_from_s  # type: ignore[assignment]
    total = m.it_j + m.pumps_j + m.fans_j
    delivered_kwh = (m.delivered_j - m.returned_j) * KWH
    boiler_kwh = m.boiler_j * KWH
    days = hours / 24.0
    kpis = Kpis(
        hours=hours,
        it_kwh=m.it_j * KWH, captured_kwh=m.captured_j * KWH,
        delivered_kwh=delivered_kwh,
        to_tank_kwh=m.to_tank_j * KWH, from_tank_kwh=m.from_tank_j * KWH,
        dumped_kwh=m.dumped_j * KWH, boiler_kwh=boiler_kwh,
        pumps_fans_kwh=(m.pumps_j + m.fans_j) * KWH,
        demand_kwh=demand_j * KWH,
        erf=(m.delivered_j - m.returned_j) / total if total > 0 else 0.0,
        mode_hours={k: v / 3600 for k, v in mode_s.items()},
        mode_changes=mode_changes,
        trips=trips,
        hours_above_limit={k: v / 3600 for k, v in above_limit.items()},
        supply_iae_kh=iae / 3600, comfort_deficit_kh=deficit / 3600,
        throttled_hours=throttled_s / 3600, it_lost_kwh=lost_j * KWH,
        throttled_safe_hours=safe_throttled.seconds / 3600,
        energy_balance_error=plant.energy_balance_error(),
        max_it_supply_c=max_it_supply,
        timeline=timeline,
        controller=ctrl_name, start_s=t0, tick_s=dt,
        demand_met_share=demand_met_share(delivered_kwh, boiler_kwh),
        max_overshoot_k=overshoot,
        hours_above_alarm={k: v / 3600 for k, v in above_alarm.items()},
        mode_changes_per_day=mode_changes / days if days > 0 else 0.0,
        actuator_travel=travel,
        fallback_hours=m.fallback_s / 3600,
        restarts=rsi - rs0,
        monthly=monthly(trace),
        useful_kwh=m.useful_load_j * KWH,
        reused_kwh=(m.useful_load_j - m.boiler_j) * KWH,
        iae_below_kh=deficit / 3600, iae_above_kh=above / 3600,
    )
    return kpis, trace


def _flush(trace: Trace, cum: list[float], last: list[float]) -> None:
    """Close the trace interval that is open (if any) with the energies since its start."""
    if trace.t_s:
        for i, key in enumerate(ENERGY_KEYS):
            trace.energy_kwh[key].append((cum[i] - last[i]) * KWH)
    last[:] = cum


# --------------------------------------------------------------------------- comparison runs


@dataclass
class Comparison:
    """heatctl, the baseline and the physical bound on the same plant and profiles."""

    scenario: Scenario
    runs: dict[str, tuple[Kpis, Trace]]
    bound: Any  # simulations.analysis.lp_bound.LpBound: the bound no controller can beat
    wall_s: float = 0.0

    @property
    def lp_bound(self) -> Any:
        return self.bound


# Work handed to forked workers: set before the pool starts, inherited by fork (scenarios hold
# lambdas and closures, which do not pickle).
_JOBS: dict[str, tuple] = {}


def _run_job(name: str) -> tuple[Kpis, Trace]:
    site, scenario, hours, tick_s, every, progress = _JOBS[name]
    return run_scenario(site, scenario, hours=hours, tick_s=tick_s, trace_every_s=every,
                        progress=progress, controller=name)


def run_compare(site: SiteConfig, scenario: Scenario, hours: float | None = None, tick_s: float | None = None,
                trace_every_s: float | None = None, progress: Callable[[float], None] | None = None,
                controllers: tuple[str, ...] = ("heatctl", "baseline", "good-practice", "g36"),
                jobs: int = 2, chunks: int = 1, warmup_h: float = 48.0) -> Comparison:
    """Run each controller on the same plant and profiles (in parallel processes when jobs > 1),
    then compute the bound from the workload's requested power and the consumer's demand (an LP:
    simulations.analysis.lp_bound), never from a controller's run. `chunks` > 1 (with jobs > 1):
    each run in warmed-up chunks (run_chunks; not bit-identical to an unbroken run), which keeps
    both processes busy to the end instead of leaving one to finish heatctl's longer run alone."""
    import time

    started = time.perf_counter()
    runs: dict[str, tuple[Kpis, Trace]] = {}
    use_pool = jobs > 1 and len(controllers) > 1 and "fork" in multiprocessing.get_all_start_methods()
    if use_pool and chunks > 1:
        _JOBS.clear()
        keys = _chunk_jobs(site, scenario, chunks, warmup_h, hours, tick_s, controllers)
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {key: pool.submit(_run_chunk, key) for key in keys}
            bound = _bound(site, scenario, hours, tick_s, trace_every_s)
            parts: dict[str, list[tuple[Kpis, Trace]]] = {name: [] for name in controllers}
            for i, (key, fut) in enumerate(futures.items()):
                parts[key.split("#")[0]].append(fut.result())
                if progress is not None:
                    progress((i + 1) / len(keys))
        _JOBS.clear()
        runs = {name: merge_chunks(p) for name, p in parts.items()}
    elif use_pool:
        _JOBS.clear()
        for i, name in enumerate(controllers):
            # Only the first (the slowest, heatctl) reports progress: one bar on the terminal.
            _JOBS[name] = (site, scenario, hours, tick_s, trace_every_s, progress if i == 0 else None)
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(jobs, len(controllers)), mp_context=ctx) as pool:
            futures = {name: pool.submit(_run_job, name) for name in controllers}
            # The bound needs no run (profiles only): computed here while the workers run, instead
            # of after them (~5 CPU-s, 10-20 s wall for a year, which was added to the wall time).
            bound = _bound(site, scenario, hours, tick_s, trace_every_s)
            for name, fut in futures.items():
                runs[name] = fut.result()
        _JOBS.clear()
    else:
        for i, name in enumerate(controllers):
            runs[name] = run_scenario(site, scenario, hours=hours, tick_s=tick_s, trace_every_s=trace_every_s,
                                      progress=progress if i == 0 else None, controller=name)
        bound = _bound(site, scenario, hours, tick_s, trace_every_s)
    return Comparison(scenario, runs, bound, time.perf_counter() - started)


def _bound(site: SiteConfig, scenario: Scenario, hours: float | None, tick_s: float | None,
           trace_every_s: float | None) -> Any:
    from simulations.analysis.lp_bound import lp_bound

    return lp_bound(site, scenario, hours=hours, tick_s=tick_s,
                    step_s=trace_every_s or scenario.trace_every_s or 3600.0)


# --------------------------------------------------------------------------- a run split in chunks

def _run_chunk(key: str) -> tuple[Kpis, Trace]:
    site, scenario, start_s, warm_h, chunk_h, tick_s, controller = _JOBS[key]
    import dataclasses as dc
    warm_s = min(warm_h * 3600.0, start_s - scenario.start_s)
    shifted = dc.replace(scenario, start_s=start_s - warm_s)
    return run_scenario(site, shifted, hours=chunk_h + warm_s / 3600.0, tick_s=tick_s, controller=controller,
                        measure_from_s=start_s if warm_s > 0 else None)


def _chunk_jobs(site: SiteConfig, scenario: Scenario, chunks: int, warmup_h: float, hours: float | None,
                tick_s: float | None, controllers: tuple[str, ...]) -> list[str]:
    """Put one job per controller and chunk into _JOBS; their keys ("name#i"), in order."""
    hours = scenario.hours if hours is None else hours
    dt = tick_s or scenario.tick_s or site.tick_period_s
    # Chunk edges on the trace's grid (hourly for a year), so that every chunk samples where an
    # unbroken run does; the last edge is the run's end.
    grid = max(dt, scenario.trace_every_s or DEFAULT_TRACE_EVERY_S)
    grid = dt * max(1, int(round(grid / dt)))
    end = scenario.start_s + int(round(hours * 3600.0 / dt)) * dt
    bounds = [scenario.start_s + int(round(i * (end - scenario.start_s) / chunks / grid)) * grid
              for i in range(chunks)] + [end]
    keys = []
    for name in controllers:
        for i in range(chunks):
            key = f"{name}#{i}"
            _JOBS[key] = (site, scenario, bounds[i], warmup_h, (bounds[i + 1] - bounds[i]) / 3600.0, dt, name)
            keys.append(key)
    return keys


def run_chunks(site: SiteConfig, scenario: Scenario, chunks: int, warmup_h: float = 48.0,
               hours: float | None = None, tick_s: float | None = None,
               controllers: tuple[str, ...] = ("heatctl",), jobs: int = 2) -> dict[str, list[tuple[Kpis, Trace]]]:
    """Each controller's run split into `chunks` consecutive pieces run in parallel processes; each
    piece but the first starts `warmup_h` earlier and counts nothing in that warm-up (the plant's
    and the tank's temperatures and the controller's state are then close to where an unbroken run
    has them). NOT identical to one unbroken run: bench/bench_year.py prints the difference, and
    tests/test_year_chunks.py shows a 12 h warm-up is too short. `merge_chunks` joins the pieces."""
    _JOBS.clear()
    keys = _chunk_jobs(site, scenario, chunks, warmup_h, hours, tick_s, controllers)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {key: pool.submit(_run_chunk, key) for key in keys}
        out: dict[str, list[tuple[Kpis, Trace]]] = {name: [] for name in controllers}
        for key, fut in futures.items():
            out[key.split("#")[0]].append(fut.result())
    _JOBS.clear()
    return out


_SUMMED = ("hours", "it_kwh", "captured_kwh", "delivered_kwh", "to_tank_kwh", "from_tank_kwh", "dumped_kwh",
           "boiler_kwh", "pumps_fans_kwh", "demand_kwh", "supply_iae_kh", "comfort_deficit_kh", "throttled_hours",
           "throttled_safe_hours", "it_lost_kwh", "fallback_hours", "useful_kwh", "reused_kwh", "iae_below_kh", "iae_above_kh",
           "mode_changes", "restarts")
_SUMMED_BY_KEY = ("mode_hours", "trips", "hours_above_limit", "hours_above_alarm", "actuator_travel")
_MAXED = ("energy_balance_error", "max_it_supply_c", "max_overshoot_k")


def merge_chunks(parts: list[tuple[Kpis, Trace]]) -> tuple[Kpis, Trace]:
    """One run's KPIs and trace from its consecutive chunks (run_chunks): totals and per-key totals
    add up, maxima are the largest, ratios are computed again from the totals, the trace and the
    timeline are joined in order."""
    kpis = [k for k, _ in parts]
    first = kpis[0]
    trace = Trace()
    for _, tr in parts:
        for f in dataclasses.fields(Trace):
            if f.name == "energy_kwh":
                for key, vals in tr.energy_kwh.items():
                    trace.energy_kwh[key].extend(vals)
            else:
                getattr(trace, f.name).extend(getattr(tr, f.name))
    merged: dict[str, Any] = {f: sum(getattr(k, f) for k in kpis) for f in _SUMMED}
    for f in _SUMMED_BY_KEY:
        d: dict = {}
        for k in kpis:
            for key, v in getattr(k, f).items():
                d[key] = d.get(key, 0) + v
        merged[f] = d
    for f in _MAXED:
        merged[f] = max(getattr(k, f) for k in kpis)
    total = merged["it_kwh"] + merged["pumps_fans_kwh"]
    days = merged["hours"] / 24.0
    merged.update(
        erf=merged["delivered_kwh"] / total if total > 0 else 0.0,
        demand_met_share=demand_met_share(merged["delivered_kwh"], merged["boiler_kwh"]),
        mode_changes_per_day=merged["mode_changes"] / days if days > 0 else 0.0,
        timeline=[e for k in kpis for e in k.timeline], controller=first.controller, start_s=first.start_s,
        tick_s=first.tick_s, monthly=monthly(trace))
    return Kpis(**merged), trace
