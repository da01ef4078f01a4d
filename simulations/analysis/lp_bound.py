"""The bound no controller can beat: the most recovered heat that was wanted, as a linear program.

Built from the WORKLOAD's requested IT power and the consumer's demand (the scenario's profiles,
sampled at the control tick), never from a controller's run, and solved with HiGHS (`highspy`).
What it bounds is `Kpis.reused_kwh`: the heat the consumer took up to its demand at each moment,
minus what its boiler supplied (simulations.plant.model, `meters.useful_load_j`).

Assumptions, each chosen so that anything the plant can do is feasible in the LP (so the LP's
optimum is an upper bound), per aggregation step of `step_s` (1 h by default):

- captured heat <= the IT power the workload asks for (no cap) x the most captured heat per wanted
  watt at any coolant temperature up to `server_throttle_c` (running warm draws more power; an
  air-to-water coil captures less: simulations.plant.warm), or the servers' idle power up to
  `server_shutdown_c` (they throttle to idle between the two), whichever is more; it goes to the
  consumer directly, into the tank, into the other water masses, or is lost;
- heat reaching the consumer usefully <= its demand at setpoint (sum over the step), whatever
  the supply temperature: heat above demand is not counted (the plant's meter does the same);
- the tank holds its usable energy sum_k M_k c_p (T_k - T_lo)+ with T_lo = consumer setpoint +
  P3_MARGIN_K (P3 returns consumer-circuit water to the tank bottom and stops below the consumer
  supply + 2 K, so water below that never reaches the consumer through P3) and T_hi =
  `server_throttle_c` (the stated maximum water temperature: the servers throttle above it, so no
  water in the plant gets hotter without losing its own heat source);
- tank charge per step <= C_building_max (T_hi - T_lo) dt; discharge <= (C_P3_max + C_building_max)
  (T_hi - T_lo) dt (P3, and the reverse flow through V1 when the tank is hotter than the building
  supply);
- tank losses: the real loss is UA_tank (T_k - T_room) summed over layers, >= k E with
  k = UA_tank / (M_tank c_p), because T_lo >= T_room; the LP loses only k E, discharged energy
  decays at the whole step's rate and charged energy not at all (both generous);
- the other water masses (IT loop, building loop, consumer circuit) form a lossless store with no
  rate limit between T_ref (the consumer's zero-load temperature) and T_hi; it and the tank start
  with what the plant's initial temperature puts in them;
- energy constraints hold only at step boundaries (within a step every mismatch is taken as
  matched): a relaxation of any finer schedule.

The bound per month is a separate LP over that month that starts with both stores full, so it
bounds any controller's month whatever it carried in. The total is the LP over the whole window
from the plant's initial state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from controller.planning import highs_lp
from simulations.plant.loop import plant_config_of
from simulations.plant.model import CP_J_PER_KG_K, RHO_KG_M3, W_PER_K_PER_M3H
from simulations.plant.warm import max_captured_per_wanted_w
from simulations.scenarios.profiles import MONTH_NAMES, month_of

# P3 stops below the consumer supply + this (K): the tank's usable floor above the consumer setpoint.
P3_MARGIN_K = 2.0
KWH = 1 / 3.6e6
DEFAULT_STEP_S = 3600.0


@dataclass
class LpBound:
    reused_kwh: float  # the bound on Kpis.reused_kwh over the whole window
    captured_max_kwh: float  # capture_fraction x requested IT energy
    demand_kwh: float
    tank_capacity_kwh: float  # usable span T_lo..T_hi
    other_capacity_kwh: float  # loops and consumer circuit, T_ref..T_hi
    t_lo_c: float
    t_hi_c: float
    step_s: float
    solve_s: float
    monthly: list[dict] = field(default_factory=list)  # {"month", "reused"}: each month's own bound
    series_kwh: list[float] = field(default_factory=list)  # the optimum's heat reused per step
    from_tank_kwh: float = 0.0  # the optimum's tank discharge
    unusable_kwh: float = 0.0  # captured heat (at most) that the optimum could not use

    @property
    def captured_kwh(self) -> float:
        """The most heat the servers could have put into the water (the comparison table's column)."""
        return self.captured_max_kwh

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "series_kwh"}


def requested_series(scenario, cfg, start_s: float, hours: float, tick_s: float, step_s: float):
    """Per step of step_s: (start times, max captured heat J, consumer demand J) from the profiles.

    Sampled at the control tick, as the runner samples them; a consumer_offline fault or an
    unavailable consumer takes no heat.
    """
    n_ticks = int(round(hours * 3600.0 / tick_s))
    per_step = max(1, int(round(step_s / tick_s)))
    offline = _offline_windows(scenario)
    span = cfg.server_max_w - cfg.server_idle_w
    # Captured W per wanted W at the most favourable coolant temperature the servers work on
    # (simulations.plant.warm: warmer water costs power, and on an air-to-water coil, capture): up to
    # server_throttle_c at the wanted power; above it they throttle to idle, up to server_shutdown_c.
    per_w = max_captured_per_wanted_w(cfg, cfg.server_throttle_c)
    idle_w = cfg.servers * cfg.server_idle_w * max_captured_per_wanted_w(cfg, cfg.server_shutdown_c)
    times, cap, dem = [], [], []
    c_sum = d_sum = 0.0
    for k in range(n_ticks):
        t = start_s + k * tick_s
        loads = scenario.loads(t)
        load = loads.it_load_fraction
        load = 0.0 if not load > 0.0 else 1.0 if load > 1.0 else load
        c_w = per_w * cfg.servers * (cfg.server_idle_w + load * span)
        c_sum += (c_w if c_w > idle_w else idle_w) * tick_s
        if loads.consumer_available and loads.consumer_demand_w > 0.0 and not _in(t, offline):
            d_sum += loads.consumer_demand_w * tick_s
        if (k + 1) % per_step == 0 or k == n_ticks - 1:
            times.append(start_s + (k + 1 - ((k % per_step) + 1)) * tick_s)
            cap.append(c_sum)
            dem.append(d_sum)
            c_sum = d_sum = 0.0
    return np.array(times), np.array(cap), np.array(dem)


def _offline_windows(scenario) -> list[tuple[float, float]]:
    out, start = [], None
    for f in sorted(scenario.faults, key=lambda f: f.at_s):
        if f.fault.kind != "consumer_offline":
            continue
        if f.action == "inject" and start is None:
            start = f.at_s
        elif f.action == "clear" and start is not None:
            out.append((start, f.at_s))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return out


def _in(t: float, windows) -> bool:
    return any(a <= t < b for a, b in windows)


@dataclass(frozen=True)
class Stores:
    tank_max_j: float
    other_max_j: float
    tank0_j: float
    other0_j: float
    decay_per_step: float  # e^(-k dt)
    charge_max_j: float  # per step
    discharge_max_j: float  # per step
    t_lo_c: float
    t_hi_c: float


def stores_of(cfg, step_s: float) -> Stores:
    """The two stores of the LP from the plant's parameters (see the module docstring)."""
    rc = RHO_KG_M3 * CP_J_PER_KG_K  # J/(m3 K)
    t_lo = cfg.consumer_setpoint_c + P3_MARGIN_K
    t_hi = cfg.server_throttle_c
    t_ref = cfg.consumer_reference_temp_c
    span = max(t_hi - t_lo, 0.0)
    v_other = cfg.it_loop_volume_m3 + cfg.building_loop_volume_m3 + cfg.consumer_volume_m3
    k = cfg.tank_loss_w_per_k / (cfg.tank_volume_m3 * rc)  # 1/s
    return Stores(
        tank_max_j=cfg.tank_volume_m3 * rc * span,
        other_max_j=v_other * rc * max(t_hi - t_ref, 0.0),
        tank0_j=cfg.tank_volume_m3 * rc * min(max(cfg.initial_temp_c - t_lo, 0.0), span),
        other0_j=v_other * rc * min(max(cfg.initial_temp_c - t_ref, 0.0), t_hi - t_ref),
        decay_per_step=math.exp(-k * step_s),
        charge_max_j=cfg.building_flow_max_m3h * W_PER_K_PER_M3H * span * step_s,
        discharge_max_j=(cfg.tank_discharge_flow_max_m3h + cfg.building_flow_max_m3h) * W_PER_K_PER_M3H
        * span * step_s,
        t_lo_c=t_lo, t_hi_c=t_hi,
    )


def solve(cap_j, dem_j, st: Stores, tank0_j: float, other0_j: float,
          details: dict | None = None) -> tuple[float, np.ndarray]:
    """Max sum(direct + tank out + other out) subject to the stores' dynamics. Returns (J, per step J);
    `details`, if given, gets the optimum's tank discharge and unused capture (J).

    Per step t, 7 variables: d (direct), c (tank in), x (tank out), a (other in), y (other out),
    E (tank at the end of t), A (other store at the end of t).
      d + c + a <= cap_t;   d + x + y <= dem_t
      E_t - r E_{t-1} - c + r x <= 0   (E_{-1} = tank0; r = decay per step)
      A_t - A_{t-1} - a + y <= 0       (A_{-1} = other0)
    """
    import highspy

    n = len(cap_j)
    if n == 0:
        return 0.0, np.zeros(0)
    nv = 7
    D, C, X, A_IN, Y, E, A = range(nv)
    idx = lambda t, v: t * nv + v  # noqa: E731
    inf = highspy.kHighsInf
    col_cost = np.zeros(n * nv)
    lower = np.zeros(n * nv)
    upper = np.full(n * nv, inf)
    for t in range(n):
        col_cost[idx(t, D)] = col_cost[idx(t, X)] = col_cost[idx(t, Y)] = -1.0  # HiGHS minimises
        upper[idx(t, C)] = st.charge_max_j
        upper[idx(t, X)] = st.discharge_max_j
        upper[idx(t, E)] = st.tank_max_j
        upper[idx(t, A)] = st.other_max_j
    r = st.decay_per_step
    rows = highs_lp.Rows()
    add = rows.add
    for t in range(n):
        add([(idx(t, D), 1.0), (idx(t, C), 1.0), (idx(t, A_IN), 1.0)], -inf, float(cap_j[t]))
        add([(idx(t, D), 1.0), (idx(t, X), 1.0), (idx(t, Y), 1.0)], -inf, float(dem_j[t]))
        e_prev = [] if t == 0 else [(idx(t - 1, E), -r)]
        add([(idx(t, E), 1.0), (idx(t, C), -1.0), (idx(t, X), r)] + e_prev, -inf, r * tank0_j if t == 0 else 0.0)
        a_prev = [] if t == 0 else [(idx(t - 1, A), -1.0)]
        add([(idx(t, A), 1.0), (idx(t, A_IN), -1.0), (idx(t, Y), 1.0)] + a_prev, -inf,
            other0_j if t == 0 else 0.0)

    h, optimal = highs_lp.run(highs_lp.from_triplets(col_cost, lower, upper, rows))
    if not optimal:
        raise RuntimeError(f"bound LP not solved: {h.modelStatusToString(h.getModelStatus())}")
    x = np.array(h.getSolution().col_value).reshape(n, nv)
    per_step = x[:, D] + x[:, X] + x[:, Y]
    if details is not None:
        details["from_tank_j"] = float(x[:, X].sum())
        details["unused_j"] = float(np.maximum(np.asarray(cap_j) - x[:, D] - x[:, C] - x[:, A_IN], 0.0).sum())
    return float(per_step.sum()), per_step


def lp_bound(site, scenario, hours: float | None = None, tick_s: float | None = None,
             step_s: float = DEFAULT_STEP_S, start_s: float | None = None) -> LpBound:
    """The bound on recovered heat that was wanted for `scenario` on `site`'s plant (module docstring)."""
    import time

    started = time.perf_counter()
    cfg = plant_config_of(site)
    hours = scenario.hours if hours is None else hours
    tick = tick_s or scenario.tick_s or site.tick_period_s
    start = scenario.start_s if start_s is None else start_s
    step = max(step_s, tick)
    times, cap, dem = requested_series(scenario, cfg, start, hours, tick, step)
    st = stores_of(cfg, step)
    details: dict = {}
    total, series = solve(cap, dem, st, st.tank0_j, st.other0_j, details)
    months: dict[int, list[int]] = {}
    for i, t in enumerate(times):
        months.setdefault(month_of(t), []).append(i)
    monthly = []
    for mo, ii in sorted(months.items()):
        m_total, _ = solve(cap[ii], dem[ii], st, st.tank_max_j, st.other_max_j)
        monthly.append({"month": MONTH_NAMES[mo], "reused": m_total * KWH})
    return LpBound(
        reused_kwh=total * KWH, captured_max_kwh=float(cap.sum()) * KWH, demand_kwh=float(dem.sum()) * KWH,
        tank_capacity_kwh=st.tank_max_j * KWH, other_capacity_kwh=st.other_max_j * KWH,
        t_lo_c=st.t_lo_c, t_hi_c=st.t_hi_c, step_s=step, solve_s=time.perf_counter() - started,
        monthly=monthly, series_kwh=list(series * KWH),
        from_tank_kwh=details["from_tank_j"] * KWH, unusable_kwh=details["unused_j"] * KWH,
    )
