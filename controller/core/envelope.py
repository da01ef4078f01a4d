"""The 24-hour capacity envelope: how much IT power the site can carry each hour without throttling.

Pure: no clock, no I/O. In: the site's thermal limits (`limits_from_site`), the tank's state of
charge now, and a forecast per hour of the next 24 (consumer demand, ambient temperature). Out: the
carryable IT power per hour (W), and which limit binds.

The model, hour by hour, in steady state (the plant's time constants are minutes; an hour is long):

- IT power P puts capture * P into the IT loop (the rest warms the room air);
- the IT loop holds its supply at or below the cap loop's target T_cap (it_overtemp limit minus the
  policy's cap margin): that is what "without throttling" means, since above it the cap loop
  lowers the servers' power limit;
- heat leaves the building loop three ways: the consumer takes its demand D; the buffer tank takes
  what is left while it has room (the energy to full, spread over the hour, at most its charge
  rate); the dump cooler takes G_d * (T_w - T_amb), where T_w is the warmest the building water may
  run, T_cap minus the heat exchanger's approach (Q / G_hx), and G_d the dry cooler's conductance
  at full fan against the building flow (coil effectiveness);
- so capture * P = D + Q_tank + G_d * (T_cap - capture * P / G_hx - T_amb), solved for P and clipped
  to [power floor, site max]. The tank's energy carries from hour to hour: a surplus hour fills it,
  a short hour (demand above what the IT side gives at full power) lets the consumer draw it down.

The limits come from the site config: power.max_w, the trips and policy (T_cap), modes (tank
temperatures) and the site's own plant description (`plant:`: dump UA, HX UA, flows, capture
fraction, servers; the tank volume from `metering:`). A site without `plant:` has no envelope: the
estimate is never made from the simulated reference plant's defaults.
How good the estimate is, is measured against the plant model with a step to full load
(tests/test_envelope.py; README "Capacity envelope").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from controller.site.models import SiteConfig
from controller.core.water import cp_j_per_kg_k, density_kg_m3

HOURS = 24
HOUR_S = 3600.0
_W_PER_K_PER_M3H = density_kg_m3(40.0) * cp_j_per_kg_k(40.0) / 3600.0
# Forecast from history: at least this many minutes of the same hour over the last 7 days, else
# the fallback (the current readings).
MIN_HISTORY_MINUTES = 30


@dataclass(frozen=True)
class EnvelopeLimits:
    it_max_w: float
    it_floor_w: float
    capture: float
    cap_target_c: float
    dump_g_w_per_k: float      # dry cooler at full fan against the building flow (W/K)
    hx_g_w_per_k: float        # plate HX conductance at full flows (W/K): approach = Q / G
    tank_capacity_j: float     # from empty to full (state of charge 0 -> 1)
    tank_charge_max_w: float   # the most the tank takes while charging


@dataclass(frozen=True)
class HourForecast:
    demand_w: float
    ambient_c: float


@dataclass(frozen=True)
class Envelope:
    carryable_w: tuple[float, ...]
    binding: tuple[str, ...]   # per hour: "site_max" or "thermal"
    soc_start: float
    basis: str

    def as_dict(self) -> dict[str, Any]:
        return {"carryable_w": list(self.carryable_w), "binding": list(self.binding),
                "soc_start": self.soc_start, "basis": self.basis}


def _counterflow_g(c_a: float, c_b: float, ua: float) -> float:
    """epsilon * C_min of a counterflow exchanger (W/K)."""
    c_min, c_max = min(c_a, c_b), max(c_a, c_b)
    if c_min <= 0:
        return 0.0
    ntu, cr = ua / c_min, c_min / c_max
    if abs(1 - cr) < 1e-9:
        eps = ntu / (1 + ntu)
    else:
        e = math.exp(-ntu * (1 - cr))
        eps = (1 - e) / (1 - cr * e)
    return eps * c_min


def limits_from_site(site: SiteConfig) -> EnvelopeLimits | None:
    """The thermal limits of a site, from its own plant description (`plant:`, and the metered tank
    volume); None when the site has no plant description: the envelope is then off, never guessed."""
    plant = site.plant
    if plant is None:
        return None
    over = next((t for t in site.trips.values() if t.kind == "high" and t.limit is not None
                 and site.points.get(t.point or "") is not None
                 and site.points[t.point].role == "it_supply_temp"), None)
    limit_c = over.limit if over is not None else 60.0
    cap_target = limit_c - site.policy_settings.cap_margin_k
    c_it = plant.it_flow_max_m3h * _W_PER_K_PER_M3H
    c_b = plant.building_flow_max_m3h * _W_PER_K_PER_M3H
    g_d = c_b * (1 - math.exp(-plant.dump_ua_w_per_k / c_b))
    m = site.modes
    full_c = m.tank_full_temp_c + site.policy_settings.tank_full_offset_k
    tank_j = site.metering.tank_volume_m3 * density_kg_m3(40.0) * cp_j_per_kg_k(40.0) * (full_c - m.tank_empty_temp_c)
    return EnvelopeLimits(
        it_max_w=min(site.power.max_w, plant.servers * plant.server_max_w),
        it_floor_w=site.power.floor_w, capture=plant.capture_fraction, cap_target_c=cap_target,
        dump_g_w_per_k=g_d, hx_g_w_per_k=_counterflow_g(c_it, c_b, plant.hx_ua_w_per_k),
        tank_capacity_j=max(tank_j, 0.0),
        # charging: the building flow from the HX outlet (near T_w) down to the tank's empty temperature
        tank_charge_max_w=c_b * max(cap_target - m.tank_empty_temp_c, 0.0),
    )


def estimate(limits: EnvelopeLimits, soc: float | None, forecast: Sequence[HourForecast],
             basis: str = "") -> Envelope:
    """Carryable IT power for each forecast hour (module docstring)."""
    L = limits
    soc0 = 0.5 if soc is None or not math.isfinite(soc) else min(max(soc, 0.0), 1.0)
    room_j = (1.0 - soc0) * L.tank_capacity_j
    out, why = [], []
    for h in forecast:
        demand = max(h.demand_w, 0.0)
        tank_w = min(room_j / HOUR_S, L.tank_charge_max_w)
        # capture P (1 + G_d / G_hx) = D + Q_tank + G_d (T_cap - T_amb)
        dump_head = L.dump_g_w_per_k * max(L.cap_target_c - h.ambient_c, 0.0)
        k = L.capture * (1.0 + (L.dump_g_w_per_k / L.hx_g_w_per_k if L.hx_g_w_per_k > 0 else 0.0))
        p = (demand + tank_w + dump_head) / k if k > 0 else L.it_max_w
        binding = "thermal"
        if p >= L.it_max_w:
            p, binding = L.it_max_w, "site_max"
        p = max(p, L.it_floor_w)
        # The tank's energy for the next hour: at the carried power, what neither the consumer nor
        # the dump takes goes in (dump runs only when the tank cannot take it); a short hour draws it.
        captured = L.capture * p
        to_tank = min(max(captured - demand, 0.0), tank_w) if captured > demand else captured - demand
        room_j = min(max(room_j - to_tank * HOUR_S, 0.0), L.tank_capacity_j)
        out.append(p)
        why.append(binding)
    return Envelope(tuple(out), tuple(why), soc0, basis)


def forecast_from_history(hourly: Mapping[int, tuple[float | None, float | None, int]], start_hour_utc: int,
                          current_demand_w: float | None, current_ambient_c: float | None,
                          hours: int = HOURS) -> tuple[list[HourForecast], str]:
    """The next `hours` hours' forecast from hour-of-day means of the last 7 days of history
    (`hourly`: UTC hour -> (mean demand W, mean ambient degC, minutes)); an hour with too little
    history takes the current readings. Returns (forecast, basis)."""
    out, from_hist = [], 0
    for i in range(hours):
        hod = (start_hour_utc + i) % 24
        d, a, n = hourly.get(hod, (None, None, 0))
        if n >= MIN_HISTORY_MINUTES and d is not None:
            from_hist += 1
            out.append(HourForecast(d, a if a is not None else (current_ambient_c or 10.0)))
        else:
            out.append(HourForecast(current_demand_w or 0.0, current_ambient_c if current_ambient_c is not None else 10.0))
    if from_hist == hours:
        basis = "history: the same hour of the last 7 days"
    elif from_hist == 0:
        basis = "current readings (no history of the last 7 days)"
    else:
        basis = f"history for {from_hist} of {hours} hours, current readings for the rest"
    return out, basis


def forecast_from_profile(demand_w, ambient_c, t_s: float, hours: int = HOURS,
                          days: Iterable[int] = range(1, 8)) -> list[HourForecast]:
    """The forecast a week of history would give, from profile functions of time (simulations):
    each hour's demand and ambient averaged over the same hour of the previous 7 days."""
    days = list(days)
    out = []
    for i in range(hours):
        ts = [t_s + i * HOUR_S + k * 600.0 - d * 86400.0 for d in days for k in range(6)]
        out.append(HourForecast(sum(demand_w(t) for t in ts) / len(ts), sum(ambient_c(t) for t in ts) / len(ts)))
    return out
