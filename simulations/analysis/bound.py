"""The physical bound: the most heat that could have been reused, given what was captured, what the
consumer wanted at each moment and the buffer tank's capacity. Computed, not simulated.

Inputs are a run's own series (heatctl's trace: captured heat and the consumer's demand per trace
interval, kWh). The tank is ideal: no losses, no rate limits, capacity
    E_max = V rho c_p (T_full - T_empty)
from the plant's tank volume and the site's `modes.tank_empty_temp_c` / `tank_full_temp_c` (the span
that counts as useful), starting at the charge the plant's tank starts with. Per interval:
    direct    = min(captured, demand)
    charge    = min(captured - direct, E_max - E)          (surplus into the tank)
    discharge = min(demand - direct, E)                    (deficit out of it)
    reused   += direct + discharge
Greedy is optimal for a lossless store without rate limits (using stored heat at the first deficit
never costs a later one anything), so this is the bound for that tank. Within a trace interval
(an hour for year runs) mismatches are taken as matched, which only loosens the bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.site.models import SiteConfig
from simulations.analysis.kpis import Trace
from simulations.plant.model import CP_J_PER_KG_K, RHO_KG_M3
from simulations.scenarios.profiles import MONTH_NAMES, month_of


@dataclass
class Bound:
    reused_kwh: float
    captured_kwh: float
    demand_kwh: float
    direct_kwh: float
    from_tank_kwh: float
    unusable_kwh: float  # captured heat with neither demand nor tank room: no controller could reuse it
    tank_capacity_kwh: float
    monthly: list[dict] = field(default_factory=list)  # {"month", "reused"}
    series_kwh: list[float] = field(default_factory=list)  # reused per trace interval

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "series_kwh"}


def tank_capacity_kwh(site: SiteConfig) -> float:
    m = site.modes
    return site.simulation.tank_volume_m3 * RHO_KG_M3 * CP_J_PER_KG_K * (m.tank_full_temp_c - m.tank_empty_temp_c) / 3.6e6


def physical_bound(site: SiteConfig, trace: Trace) -> Bound:
    """The bound on reused heat for the captured-heat and demand series of `trace`."""
    cap_kwh = tank_capacity_kwh(site)
    m = site.modes
    soc0 = (site.simulation.initial_temp_c - m.tank_empty_temp_c) / (m.tank_full_temp_c - m.tank_empty_temp_c)
    stored = min(max(soc0, 0.0), 1.0) * cap_kwh
    captured = trace.energy_kwh["captured"]
    demand = trace.energy_kwh["demand"]
    reused = direct_sum = out_sum = unusable = 0.0
    series: list[float] = []
    by_month: dict[int, float] = {}
    for t, c, d in zip(trace.t_s, captured, demand):
        direct = min(c, d)
        surplus, deficit = c - direct, d - direct
        charge = min(surplus, cap_kwh - stored)
        unusable += surplus - charge
        discharge = min(deficit, stored)
        stored += charge - discharge
        r = direct + discharge
        reused += r
        direct_sum += direct
        out_sum += discharge
        series.append(r)
        mo = month_of(t)
        by_month[mo] = by_month.get(mo, 0.0) + r
    return Bound(
        reused_kwh=reused, captured_kwh=sum(captured), demand_kwh=sum(demand), direct_kwh=direct_sum,
        from_tank_kwh=out_sum, unusable_kwh=unusable, tank_capacity_kwh=cap_kwh,
        monthly=[{"month": MONTH_NAMES[mo], "reused": v} for mo, v in sorted(by_month.items())],
        series_kwh=series,
    )
