"""The bound with the same freedom to move batch work as the plan has.

simulations.analysis.lp_bound bounds recovered heat for a fixed IT power series. With a workload
whose batch jobs may move within their deadlines, the bound must be given that freedom too, or the
plan could beat it. This is the same linear program (the same stores, rates, losses and
assumptions: see lp_bound's docstring), with the captured heat split in two per step:

- fixed: capture x (idle + interactive power) sampled at the control tick: never moved;
- batch: a variable B_t >= 0, at most capture x the power of the nodes interactive work leaves
  free, with the cumulative batch heat S_t = S_{t-1} + B_t between what is due by then (every job
  whose deadline falls in or before step t) and what has arrived by the end of step t.

Those two cumulative limits are weaker than any real schedule (a job may run before it arrives within
its arrival step, work has no width, deadlines are met anywhere in their step, work due after the
window need not run), so the optimum is still an upper bound on heat reused. Its boiler figure is
demand minus that bound: the least boiler a controller that meets the demand can burn.
"""

from __future__ import annotations

import time

import numpy as np

from controller.planning import highs_lp
from simulations.analysis.lp_bound import KWH, plant_config_of, stores_of
from simulations.scenarios.profiles import DAY
from simulations.workload.model import jobs_for_day
from simulations.workload.profiles import mix_for

NV = 9
D, C, X, A_IN, Y, E, A, B, S = range(NV)


def series(site, scenario, start_s: float, hours: float, tick_s: float, step_s: float):
    """Per step (J): fixed captured heat, batch headroom (captured), demand, due and arrived batch heat."""
    cfg = plant_config_of(site)
    mix = mix_for(scenario.config)
    span = cfg.server_max_w - cfg.server_idle_w
    n_ticks = int(round(hours * 3600.0 / tick_s))
    per = max(1, int(round(step_s / tick_s)))
    n = (n_ticks + per - 1) // per
    fixed, room, dem = np.zeros(n), np.zeros(n), np.zeros(n)
    from simulations.analysis.lp_bound import _in, _offline_windows
    offline = _offline_windows(scenario)
    for k in range(n_ticks):
        t = start_s + k * tick_s
        i = k // per
        inter = cfg.servers * min(max(mix.interactive(t), 0.0), 1.0)
        fixed[i] += cfg.capture_fraction * (cfg.servers * cfg.server_idle_w + inter * span) * tick_s
        room[i] += cfg.capture_fraction * max(cfg.servers - inter, 0.0) * span * tick_s
        if scenario.available(t) and not _in(t, offline):
            d = scenario.demand_w(t)
            if d > 0:
                dem[i] += d * tick_s
    end = start_s + n_ticks * tick_s
    due, arrived = np.zeros(n), np.zeros(n)
    for day in range(int(start_s // DAY), int(end // DAY) + 1):
        for j in jobs_for_day(mix, cfg.servers, day):
            if not start_s <= j.arrival_s < end:
                continue
            heat = cfg.capture_fraction * j.size_node_h * span * 3600.0
            arrived[int((j.arrival_s - start_s) // step_s):] += heat
            kd = int((j.deadline_s - start_s) // step_s)
            if kd < n:
                due[kd:] += heat
    return fixed, room, dem, due, arrived


def solve(fixed, room, dem, due, arrived, st, tank0, other0) -> tuple[float, np.ndarray]:
    import highspy

    n = len(fixed)
    inf = highspy.kHighsInf
    idx = lambda t, v: t * NV + v  # noqa: E731
    cost = np.zeros(n * NV)
    lo = np.zeros(n * NV)
    hi = np.full(n * NV, inf)
    for t in range(n):
        cost[idx(t, D)] = cost[idx(t, X)] = cost[idx(t, Y)] = -1.0
        hi[idx(t, C)] = st.charge_max_j
        hi[idx(t, X)] = st.discharge_max_j
        hi[idx(t, E)] = st.tank_max_j
        hi[idx(t, A)] = st.other_max_j
        hi[idx(t, B)] = room[t]
        lo[idx(t, S)] = min(due[t], arrived[t])
        hi[idx(t, S)] = arrived[t]
    r = st.decay_per_step
    rows = highs_lp.Rows()
    add = rows.add
    for t in range(n):
        add([(idx(t, D), 1.0), (idx(t, C), 1.0), (idx(t, A_IN), 1.0), (idx(t, B), -1.0)], -inf, float(fixed[t]))
        add([(idx(t, D), 1.0), (idx(t, X), 1.0), (idx(t, Y), 1.0)], -inf, float(dem[t]))
        e_prev = [] if t == 0 else [(idx(t - 1, E), -r)]
        add([(idx(t, E), 1.0), (idx(t, C), -1.0), (idx(t, X), r)] + e_prev, -inf, r * tank0 if t == 0 else 0.0)
        a_prev = [] if t == 0 else [(idx(t - 1, A), -1.0)]
        add([(idx(t, A), 1.0), (idx(t, A_IN), -1.0), (idx(t, Y), 1.0)] + a_prev, -inf, other0 if t == 0 else 0.0)
        s_prev = [] if t == 0 else [(idx(t - 1, S), -1.0)]
        add([(idx(t, S), 1.0), (idx(t, B), -1.0)] + s_prev, 0.0, 0.0)
    h, optimal = highs_lp.run(highs_lp.from_triplets(cost, lo, hi, rows))
    if not optimal:
        raise RuntimeError(f"workload bound LP not solved: {h.modelStatusToString(h.getModelStatus())}")
    x = np.array(h.getSolution().col_value).reshape(n, NV)
    per = x[:, D] + x[:, X] + x[:, Y]
    return float(per.sum()), per


def workload_bound(site, scenario, hours: float | None = None, start_s: float | None = None,
                   tick_s: float | None = None, step_s: float = 3600.0) -> dict:
    """The bound on heat reused with batch work free to move within its deadlines (module docstring)."""
    started = time.perf_counter()
    cfg = plant_config_of(site)
    hours = scenario.hours if hours is None else hours
    tick = tick_s or scenario.tick_s or site.tick_period_s
    start = scenario.start_s if start_s is None else start_s
    fixed, room, dem, due, arrived = series(site, scenario, start, hours, tick, step_s)
    st = stores_of(cfg, step_s)
    total, _ = solve(fixed, room, dem, due, arrived, st, st.tank0_j, st.other0_j)
    demand = float(dem.sum())
    return {"reused_kwh": total * KWH, "demand_kwh": demand * KWH, "boiler_kwh": (demand - total) * KWH,
            "batch_heat_kwh": float(arrived[-1]) * KWH if len(arrived) else 0.0, "step_s": step_s,
            "solve_s": time.perf_counter() - started}
