"""The plan as a linear program, solved by HiGHS (`highspy`) in a time box.

Per 15-minute slot t (powers in kW, energies in kWh, h = slot length in hours):

  capture (F_t + B_t) = U_t + C_t + Q_t + O_t      captured heat goes to the consumer, the tank, the
                                                   dry cooler, or (O, heavily penalised) nowhere:
                                                   the power cap would have to bind
  U_t + X_t + G_t     = D_t                        demand met directly, from the tank, or by the boiler
  E_t = E_{t-1} + h (C_t - X_t),  0 <= E_t <= E_max    the tank (state of charge = E / E_max)
  B_t = sum_j b_jt,  0 <= b_jt <= width_j            the batch power is its jobs' power, each job at
                                                       most at its width (nodes x power above idle)
  h sum_t b_jt <= W_j                                  never more than job j still needs
  h sum_{t <= k_j} b_jt + short_j >= due_j             what is due by job j's own deadline (less the
                                                       guard: the last slot k_j that ends before it)
                                                       is run; short_j, at a cost above any heat,
                                                       keeps a queue that cannot make it plannable

with F the IT power that always runs (idle and interactive: never held), B the batch power
(<= the free nodes' power; a running job that cannot be preempted keeps its width until done),
S_t = S_{t-1} + h B_t the batch work done (for the reasons), Q <= the dry
cooler's capacity at the forecast ambient, C and X <= the tank's charge rate. The limits are the
capacity envelope's (controller.core.envelope.limits_from_site).

Objective: least boiler energy (the same as the most recovered heat used, since demand is given),
then a little less dumping, a tie-break toward running work early, and a value on heat left in the
tank at the horizon's end (the next plan will spend it). Per job rather than one pool of work: a pool
let the plan budget more batch power in a slot than the queued jobs could run (two one-node jobs
cannot fill five free nodes), and let one job's work stand in for another's deadline.

`solve(inputs, time_limit_s)` returns a SolveResult: a Plan, or no plan and the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from controller.core.plan import COMPUTE_FIRST, HEAT_FIRST, Plan, PlanSlot
from controller.planning import highs_lp
from controller.planning.inputs import PlanInputs

NV = 9
B, U, C, X, G, Q, O, E, S = range(NV)
OVERFLOW_COST = 100.0
DUMP_COST = 0.01
EARLY_TIE_BREAK = 1e-4
# Against pointless tank cycling (discharge now, recharge later) among equal plans.
CYCLE_COST = 1e-3
# Per kWh of batch work left undone at its (guarded) deadline: above any heat; soft, so that a
# queue the free nodes cannot clear in time still gets a plan (the scheduler runs late work first).
MISSED_COST = 1000.0
# A slot counts as short of heat (boiler planned) or dumping above this (kW): display and policy.
SIGNIFICANT_KW = 0.05


@dataclass(frozen=True)
class SolveResult:
    plan: Plan | None
    reason: str           # "optimal", or why there is no plan
    solve_s: float
    made_for_s: float     # the inputs' time: a result that arrives much later is late


def _job_terms(inp: PlanInputs) -> list[tuple[float, float, int, float, int]]:
    """Per queued job: (work kWh, width kW or 0 when unknown, the last slot that counts toward its
    deadline, the work due by the end of that slot, kWh, and how many whole slots it must run from
    now: a running job that cannot be preempted keeps running at its width until it is done)."""
    n, h = inp.slots, inp.slot_s / 3600.0
    t0 = inp.first_slot_s
    out = []
    for j in inp.queue:
        w = max(j.remaining_wh, 0.0) / 1000.0
        width = max(j.max_w, 0.0) / 1000.0
        dg = j.deadline_s - inp.deadline_guard_s          # planned deadline (s)
        k = int(min(max((dg - t0) // inp.slot_s - 1, 0), n - 1))
        end_k = t0 + (k + 1) * inp.slot_s
        # By the end of slot k it must have done all but what its width can still do before dg.
        due = w if width <= 0 else max(w - width * max(dg - end_k, 0.0) / 3600.0, 0.0)
        run = min(int(w / (width * h)), n) if (j.running and not j.preemptible and width > 0) else 0
        out.append((w, width, k, due, run))
    return out


def build(inp: PlanInputs):
    """The LP (highspy.HighsLp) and the per-slot arrays it was built from."""
    import highspy

    L = inp.limits
    n, h = inp.slots, inp.slot_s / 3600.0
    k = L.capture
    dem = np.maximum(np.array(inp.demand_w), 0.0) / 1000.0
    fixed = np.maximum(np.array(inp.fixed_it_w), 0.0) / 1000.0
    bmax = np.maximum(np.array(inp.batch_max_w), 0.0) / 1000.0
    dump_max = L.dump_g_w_per_k * np.maximum(L.cap_target_c - np.array(inp.ambient_c), 0.0) / 1000.0
    e_max = L.tank_capacity_j / 3.6e6
    rate = L.tank_charge_max_w / 1000.0
    soc0 = 0.5 if inp.tank_soc is None or not np.isfinite(inp.tank_soc) else min(max(inp.tank_soc, 0.0), 1.0)
    jobs = _job_terms(inp)
    total = sum(w for w, *_ in jobs)
    # Running jobs that cannot be preempted keep their nodes whatever the budget: the free nodes
    # can never hold less than they take (else the plan would be infeasible, not the plant).
    floor = np.zeros(n)
    for _w, width, _k, _d, run in jobs:
        floor[:run] += width
    bmax = np.maximum(bmax, floor)

    inf = highspy.kHighsInf
    idx = lambda t, v: t * NV + v  # noqa: E731
    nj = len(jobs)
    jb = lambda i, t: n * NV + i * n + t  # noqa: E731   job i's power in slot t (kW)
    short = lambda i: n * NV + nj * n + i  # noqa: E731  job i's work left undone at its deadline
    ncol = n * NV + nj * n + nj
    cost = np.zeros(ncol)
    lo = np.zeros(ncol)
    hi = np.full(ncol, inf)
    for t in range(n):
        cost[idx(t, G)] = h
        cost[idx(t, Q)] = DUMP_COST * h
        cost[idx(t, X)] = CYCLE_COST * h
        cost[idx(t, O)] = OVERFLOW_COST * h
        cost[idx(t, B)] = EARLY_TIE_BREAK * h * t / n
        hi[idx(t, B)] = bmax[t]
        hi[idx(t, C)] = hi[idx(t, X)] = rate
        hi[idx(t, Q)] = dump_max[t]
        hi[idx(t, E)] = e_max
        hi[idx(t, S)] = total
    cost[idx(n - 1, E)] = -inp.terminal_tank_value
    for i, (w, width, _k, _d, run) in enumerate(jobs):
        for t in range(n):
            hi[jb(i, t)] = width if width > 0 else bmax[t]
            if t < run:
                lo[jb(i, t)] = width
        cost[short(i)] = MISSED_COST

    rows = highs_lp.Rows()
    for t in range(n):
        rows.add([(idx(t, B), k), (idx(t, U), -1.0), (idx(t, C), -1.0), (idx(t, Q), -1.0), (idx(t, O), -1.0)],
                 -k * fixed[t], -k * fixed[t])
        rows.add([(idx(t, U), 1.0), (idx(t, X), 1.0), (idx(t, G), 1.0)], dem[t], dem[t])
        prev_e = [(idx(t - 1, E), -1.0)] if t else []
        e0 = 0.0 if t else soc0 * e_max
        rows.add([(idx(t, E), 1.0), (idx(t, C), -h), (idx(t, X), h)] + prev_e, e0, e0)
        prev_s = [(idx(t - 1, S), -1.0)] if t else []
        rows.add([(idx(t, S), 1.0), (idx(t, B), -h)] + prev_s, 0.0, 0.0)
        # The batch power is the jobs' power: each job runs at most at its width.
        rows.add([(idx(t, B), 1.0)] + [(jb(i, t), -1.0) for i in range(nj)], 0.0, 0.0)
    for i, (w, _width, kd, due, _run) in enumerate(jobs):
        rows.add([(jb(i, t), h) for t in range(n)], 0.0, w)                 # never more than is queued
        if due > 0:
            # What is due by its deadline is run, or counted short at a cost above any heat.
            rows.add([(jb(i, t), h) for t in range(kd + 1)] + [(short(i), 1.0)], due, inf)
    lp = highs_lp.from_triplets(cost, lo, hi, rows)
    runnable = np.array([sum(hi[jb(i, t)] for i in range(nj)) for t in range(n)]) if nj else np.zeros(n)
    return lp, dict(dem=dem, fixed=fixed, e_max=e_max, capture=k, total=total, runnable=runnable)


def _reason(d: float, heat: float, b: float, bmax: float, g: float, q: float, x: float, c: float,
            policy: str, queue_left: bool, runnable: float | None = None) -> str:
    """The slot's decisions in one line; `bmax`: the free nodes' batch power, `runnable`: what the
    queued jobs can run in the slot at their widths (at most bmax; None: bmax)."""
    runnable = bmax if runnable is None else min(runnable, bmax)
    parts = [f"demand {d:.1f} kW, heat {heat:.1f} kW"]
    if bmax > SIGNIFICANT_KW:
        if b >= runnable - SIGNIFICANT_KW and b > SIGNIFICANT_KW:
            parts.append("release all batch (heat wanted or work due)")
        elif b <= SIGNIFICANT_KW:
            parts.append("hold batch (heat would be dumped; deadlines allow)" if queue_left else "no batch queued")
        else:
            parts.append(f"release {b:.1f} of {bmax:.1f} kW batch")
    if x > SIGNIFICANT_KW:
        parts.append(f"tank gives {x:.1f} kW")
    if c > SIGNIFICANT_KW:
        parts.append(f"tank takes {c:.1f} kW")
    if g > SIGNIFICANT_KW:
        parts.append(f"boiler {g:.1f} kW")
    if q > SIGNIFICANT_KW:
        parts.append(f"dump {q:.1f} kW")
    parts.append(policy if policy == COMPUTE_FIRST or g > SIGNIFICANT_KW else f"{policy} (keep heat for a shortfall ahead)")
    return "; ".join(parts)


def solve(inputs: PlanInputs, time_limit_s: float) -> SolveResult:
    """Plan the next slots (module docstring), within `time_limit_s` of solver time."""
    started = time.perf_counter()
    t_for = inputs.now_s
    if inputs.slots == 0:
        return SolveResult(None, "no forecast slots", 0.0, t_for)
    lens = {len(inputs.demand_w), len(inputs.ambient_c), len(inputs.fixed_it_w), len(inputs.batch_max_w)}
    if len(lens) != 1:
        return SolveResult(None, f"forecast series of unequal length {sorted(lens)}", 0.0, t_for)
    lp, arr = build(inputs)
    hs, optimal = highs_lp.run(lp, max(time_limit_s, 1e-3))
    elapsed = time.perf_counter() - started
    if not optimal:
        return SolveResult(None, f"solver: {hs.modelStatusToString(hs.getModelStatus())}", elapsed, t_for)
    x = np.array(hs.getSolution().col_value)[:inputs.slots * NV].reshape(inputs.slots, NV)
    slots = []
    k, e_max = arr["capture"], arr["e_max"]
    short = x[:, G] > SIGNIFICANT_KW
    short_from = np.flip(np.logical_or.accumulate(np.flip(short)))
    for t in range(inputs.slots):
        b, g, q, xo, ci = x[t, B], x[t, G], x[t, Q], x[t, X], x[t, C]
        d = arr["dem"][t]
        heat = k * (arr["fixed"][t] + b)
        # A shortfall now or later in the horizon: heat_first keeps heat (a warmer loop, the dump
        # later, the tank hotter) for it. None ahead: compute_first keeps the IT loop's margin.
        policy = HEAT_FIRST if short_from[t] else COMPUTE_FIRST
        soc = x[t, E] / e_max if e_max > 0 else 0.0
        slots.append(PlanSlot(
            start_s=inputs.slot_start(t), tank_target_soc=float(min(max(soc, 0.0), 1.0)) + 0.0,
            batch_budget_w=float(max(b, 0.0) * 1000.0) + 0.0, policy=policy,
            reason=_reason(d, heat, b, inputs.batch_max_w[t] / 1000.0, g, q, xo, ci, policy,
                           x[t, S] < arr["total"] - 1e-6, runnable=arr["runnable"][t]),
            demand_w=float(d * 1000.0), it_w=float((arr["fixed"][t] + b) * 1000.0),
            boiler_w=float(g * 1000.0), dump_w=float(q * 1000.0)))
    plan = Plan(made_at_s=t_for, slots=tuple(slots), solve_s=elapsed, status="optimal", slot_s=inputs.slot_s)
    return SolveResult(plan, "optimal", elapsed, t_for)
