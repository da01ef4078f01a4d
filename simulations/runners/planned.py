"""The closed loop with the workload model and, optionally, the 24-hour plan.

Wraps simulations.runners.closed_loop.run_scenario: the scenario's IT load becomes the workload
model's (simulations.workload: interactive services and batch jobs run by a scheduler), and the
controller is wrapped so that every 15 minutes a plan is solved (controller.planning) from the
forecasts the envelope makes and the batch queue, kept by a PlanKeeper, and applied: its batch budget
to the workload's scheduler (what Slurm would be told), its slot to the step as a setpoint-like
input (controller.core.plan.adjustments: its policy sets the loops).

Without the plan (`plan=False`) the same workload runs under today's rules: every batch job starts
as soon as nodes are free. Baselines run the same way (any controller name of closed_loop).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

from controller.core.envelope import forecast_from_profile
from controller.core.plan import HORIZON_SLOTS, SLOT_S, adjustments
from controller.planning.inputs import PlanInputs, QueuedJob, site_limits, slots_from_hours
from controller.planning.keeper import PlanKeeper
from controller.planning.solver import solve
from controller.site.models import SiteConfig
from simulations.plant.loop import plant_config_of
from simulations.runners.closed_loop import make_controller, run_scenario
from simulations.scenarios.definitions import Scenario
from simulations.scenarios.profiles import is_weekend
from simulations.workload.model import WorkloadSim
from simulations.workload.profiles import mix_for

DAY_S = 86400.0
# No time box in simulations. The site's limit (planning.solve_time_limit_s, 0.5 s) is wall-clock,
# and so is HiGHS's time_limit: on a loaded or stalled machine a solve overruns any box and the last
# plan is kept, so a run's results would depend on the machine. The previous round boxed solves at
# 30 s: 2 solves failed in each year, the two years ran side by side and each logged a longest solve
# of about 270 s (a stall of the machine: every other solve took under 0.6 s); the same code run
# again on a quiet machine failed none, longest 22 ms. Simulations measure what the plan does; the
# time box itself is tested (tests/test_plan.py), the solve's speed measured (bench/bench_plan.py),
# and every solve's status is counted (PlannedController.statuses).
SIM_TIME_LIMIT_S = math.inf
# History days per forecast: the last 5 of the same day type (weekday or weekend day) within 3 weeks.
SAME_TYPE_DAYS = 5
HISTORY_DAYS = 21


def same_day_type(t: float, n: int = SAME_TYPE_DAYS) -> tuple[int, ...]:
    """Days back (1..HISTORY_DAYS) of the last `n` days of t's day type: a weekend hour is forecast
    from past weekend days, a weekday hour from past weekdays (a site's load and hot-water draws
    follow the working week; the plain 7-day mean smears a weekend's peaks over every day)."""
    want = is_weekend(t)
    return tuple(d for d in range(1, HISTORY_DAYS + 1) if is_weekend(t - d * DAY_S) == want)[:n]


def workload_for(site: SiteConfig, scenario: Scenario, tick_s: float, start_s: float | None = None) -> WorkloadSim:
    cfg = plant_config_of(site)
    return WorkloadSim(mix_for(scenario.config), cfg.servers, scenario.start_s if start_s is None else start_s, tick_s)


def with_workload(scenario: Scenario, workload: WorkloadSim) -> Scenario:
    """The scenario with its IT load taken from the workload (advanced once per tick)."""
    return dataclasses.replace(scenario, it_load=workload.load)


class PlannedController:
    """heatctl's step with a plan every 15 minutes (module docstring); the same interface."""

    def __init__(self, site: SiteConfig, scenario: Scenario, workload: WorkloadSim,
                 time_limit_s: float | None = None, solver=solve):
        self.inner = make_controller(site, "heatctl")
        self.site, self.scenario, self.workload = site, scenario, workload
        self.limits = site_limits(site)
        cfg = plant_config_of(site)
        self.span_w = cfg.server_max_w - cfg.server_idle_w
        self.idle_w = cfg.servers * cfg.server_idle_w
        self.time_limit_s = time_limit_s if time_limit_s is not None else site.planning.solve_time_limit_s
        self.solver = solver
        self.keeper = PlanKeeper()
        self.next_plan_s = -float("inf")
        self.solve_s: list[float] = []
        # Every solve's status ("optimal", or why there is no plan), and the failed ones:
        # (simulated time, reason, solve time s).
        self.statuses: Counter[str] = Counter()
        self.failures: list[tuple[float, str, float]] = []
        self.events: list = []
        self._hour_cache: tuple[float, list] | None = None
        self._by_hour: dict[float, object] = {}
        self._inter_cache: dict[float, float] = {}

    def initial_state(self, now: float, *a, **kw):
        return self.inner.initial_state(now, *a, **kw)

    def _hourly(self, now: float):
        """The envelope's forecast (forecast_from_profile) for the 25 hours from this hour: each
        hour's value depends only on that hour, so each is computed once per run."""
        hour = (now // 3600.0) * 3600.0
        if self._hour_cache is None or self._hour_cache[0] != hour:
            sc = self.scenario
            out = []
            for i in range(25):
                h = hour + i * 3600.0
                if h not in self._by_hour:
                    self._by_hour[h] = forecast_from_profile(sc.demand_w, sc.ambient_c, h, hours=1,
                                                             days=same_day_type(h))[0]
                out.append(self._by_hour[h])
            self._by_hour = {h: v for h, v in self._by_hour.items() if h >= hour}
            self._hour_cache = (hour, out)
        return self._hour_cache[1]

    def _interactive(self, t: float) -> float:
        """Interactive nodes forecast for slot time t: the mean of the same time on the last days
        of its day type (same_day_type: it depends on the time of day and the day type only)."""
        key = (round(t % DAY_S, 3), is_weekend(t))
        v = self._inter_cache.get(key)
        if v is None:
            days = same_day_type(t)
            v = sum(self.workload.interactive_nodes(t - d * DAY_S) for d in days) / len(days)
            self._inter_cache[key] = v
        return v

    def inputs(self, now: float, soc: float | None) -> PlanInputs:
        first = (now // SLOT_S) * SLOT_S
        hourly = self._hourly(now)
        off = int((first - (now // 3600.0) * 3600.0) // SLOT_S)
        dem, amb = slots_from_hours(hourly, HORIZON_SLOTS + off)
        dem, amb = dem[off:], amb[off:]
        wl = self.workload
        fixed, bmax = [], []
        for i in range(HORIZON_SLOTS):
            t = first + i * SLOT_S
            # Interactive load forecast: the same slot of the last 7 days (as the envelope's history).
            inter = self._interactive(t)
            fixed.append(self.idle_w + inter * self.span_w)
            bmax.append(max(wl.servers - inter, 0.0) * self.span_w)
        queue = tuple(QueuedJob(j.job_id, j.remaining_node_h * self.span_w, j.deadline_s, j.width * self.span_w,
                                j.preemptible, j.started) for j in wl.queue)
        return PlanInputs(now, soc, dem, amb, tuple(fixed), tuple(bmax), queue, self.limits,
                          deadline_guard_s=self.site.planning.deadline_guard_s)

    def step(self, state, snapshot, requests, now: float):
        if now >= self.next_plan_s:
            result = self.solver(self.inputs(now, state.tank_soc), self.time_limit_s)
            self.solve_s.append(result.solve_s)
            self.statuses[result.reason] += 1
            if result.plan is None:
                self.failures.append((now, result.reason, result.solve_s))
            self.events.extend(self.keeper.offer(result, now))
            self.next_plan_s = (now // SLOT_S + 1) * SLOT_S
        plan, ev = self.keeper.current(now)
        self.events.extend(ev)
        adj = adjustments(plan, now)
        self.workload.budget_nodes = None if adj is None else adj.batch_budget_w / self.span_w
        return self.inner.step(state, snapshot, requests, now, plan=adj)


def run_with_workload(site: SiteConfig, scenario: Scenario, controller: str = "heatctl", plan: bool = False,
                      hours: float | None = None, tick_s: float | None = None,
                      start_s: float | None = None,
                      time_limit_s: float = SIM_TIME_LIMIT_S) -> tuple[Any, Any, WorkloadSim, Any]:
    """One run: (Kpis, Trace, the workload after the run, the PlannedController or None)."""
    dt = tick_s or scenario.tick_s or site.tick_period_s
    if start_s is not None:
        scenario = dataclasses.replace(scenario, start_s=start_s)
    if dt != site.tick_period_s and 0.1 <= dt <= 60.0:
        site = site.model_copy(update={"tick_period_s": dt})
    wl = workload_for(site, scenario, dt)
    sc = with_workload(scenario, wl)
    ctrl: Any = controller
    if plan:
        ctrl = PlannedController(site, sc, wl, time_limit_s=time_limit_s)
    kpis, trace = run_scenario(site, sc, hours=hours, tick_s=dt, controller=ctrl)
    return kpis, trace, wl, (ctrl if plan else None)
