"""Heat metering: heat flows from flow x c_p(T) x dT, and energies integrated tick by tick.

Where a site has a heat meter for a flow (consumer, dump, boiler) or a submeter for pumps and fans,
its reading is used; otherwise the flow is estimated from loop temperatures and actuator positions
and marked as an estimate. A flow whose inputs are bad is not guessed: that interval is counted as
unmetered time. ERF (ISO/IEC 30134-6) = reused energy / total energy drawn by the data centre (IT
plus pumps and fans).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from controller.config import SiteConfig
from controller.roles import Role
from controller.validation import Checked
from controller.water import cp_j_per_kg_k, density_kg_m3, heat_flow_w


@dataclass(frozen=True, slots=True)
class HeatFlows:
    """Instantaneous flows (W); None where the inputs are bad."""

    it_w: float | None
    captured_w: float | None      # IT loop: F1 x c_p x (return - supply)
    transferred_w: float | None   # building loop: F2 x c_p x (supply - return), through the HX
    delivered_w: float | None     # recovered heat into the consumer
    to_tank_w: float | None       # net heat into the buffer tank (negative: discharging)
    dumped_w: float | None
    boiler_w: float | None
    aux_w: float | None           # pumps and fans, electrical
    tank_soc: float | None
    delivered_estimated: bool = False


@dataclass(frozen=True, slots=True)
class EnergyCounters:
    """Energies since commissioning (J). Persisted by the daemon so that restarts never lose them."""

    it_j: float = 0.0
    captured_j: float = 0.0
    transferred_j: float = 0.0
    delivered_j: float = 0.0
    stored_in_j: float = 0.0
    stored_out_j: float = 0.0
    dumped_j: float = 0.0
    boiler_j: float = 0.0
    aux_j: float = 0.0
    metered_s: float = 0.0
    unmetered_s: float = 0.0

    @property
    def erf(self) -> float | None:
        total = self.it_j + self.aux_j
        return self.delivered_j / total if total > 0 else None


RoleIndex = Mapping[Role, tuple[str, ...]]


def _value(checked: Mapping[str, Checked], idx: RoleIndex, role: Role) -> float | None:
    names = idx[role]
    if len(names) != 1:
        return None
    c = checked.get(names[0])
    return c.value if c is not None and c.good else None


def tank_soc(site: SiteConfig, top_c: float | None, bottom_c: float | None) -> float | None:
    """State of charge 0..1 from the mean of the tank's top and bottom temperatures."""
    if top_c is None or bottom_c is None:
        return None
    m = site.modes
    full = m.tank_full_temp_c + site.policy_settings.tank_full_offset_k
    soc = (0.5 * (top_c + bottom_c) - m.tank_empty_temp_c) / (full - m.tank_empty_temp_c)
    return min(max(soc, 0.0), 1.0)


def tank_energy_j(site: SiteConfig, soc: float) -> float:
    m = site.modes
    full = m.tank_full_temp_c + site.policy_settings.tank_full_offset_k
    t_mid = 0.5 * (m.tank_empty_temp_c + full)
    mass = site.metering.tank_volume_m3 * density_kg_m3(t_mid)
    return soc * mass * cp_j_per_kg_k(t_mid) * (full - m.tank_empty_temp_c)


def heat_flows(site: SiteConfig, idx: RoleIndex, checked: Mapping[str, Checked], v1_pct: float | None,
               prev_soc: float | None, dt: float) -> HeatFlows:
    servers = [checked.get(n) for n in idx[Role.SERVER_POWER]]
    it_w = sum(c.value for c in servers) if servers and all(c is not None and c.good for c in servers) else None  # type: ignore[misc]
    v = lambda role: _value(checked, idx, role)  # noqa: E731
    f1, t_its, t_itr = v(Role.IT_FLOW), v(Role.IT_SUPPLY_TEMP), v(Role.IT_RETURN_TEMP)
    captured = heat_flow_w(f1, t_itr, t_its) if None not in (f1, t_its, t_itr) else None
    f2, t_bs, t_br = v(Role.B_FLOW), v(Role.B_SUPPLY_TEMP), v(Role.B_RETURN_TEMP)
    transferred = heat_flow_w(f2, t_bs, t_br) if None not in (f2, t_bs, t_br) else None
    soc = tank_soc(site, v(Role.TANK_TOP_TEMP), v(Role.TANK_BOTTOM_TEMP))
    to_tank = None
    if soc is not None and prev_soc is not None and dt > 0:
        to_tank = (tank_energy_j(site, soc) - tank_energy_j(site, prev_soc)) / dt
    delivered = v(Role.CONSUMER_HEAT)
    estimated = False
    if delivered is None and not idx[Role.CONSUMER_HEAT] \
            and transferred is not None and v1_pct is not None:
        # No heat meter at the consumer: the share of the building flow V1 leaves to it.
        delivered = max(transferred * (1.0 - v1_pct / 100.0), 0.0)
        estimated = True
    return HeatFlows(
        it_w=it_w, captured_w=captured, transferred_w=transferred, delivered_w=delivered,
        to_tank_w=to_tank, dumped_w=v(Role.DUMP_HEAT), boiler_w=v(Role.BOILER_HEAT),
        aux_w=v(Role.AUX_POWER), tank_soc=soc, delivered_estimated=estimated,
    )


def integrate(e: EnergyCounters, f: HeatFlows, dt: float, max_gap_s: float) -> EnergyCounters:
    """Add one interval's energy. A gap longer than `max_gap_s` is unmetered, not extrapolated."""
    if dt <= 0:
        return e
    if dt > max_gap_s or f.it_w is None or f.delivered_w is None:
        return replace(e, unmetered_s=e.unmetered_s + dt)

    def add(total: float, w: float | None) -> float:
        return total + max(w, 0.0) * dt if w is not None else total

    return EnergyCounters(
        it_j=add(e.it_j, f.it_w),
        captured_j=add(e.captured_j, f.captured_w),
        transferred_j=add(e.transferred_j, f.transferred_w),
        delivered_j=add(e.delivered_j, f.delivered_w),
        stored_in_j=add(e.stored_in_j, f.to_tank_w),
        stored_out_j=add(e.stored_out_j, -f.to_tank_w if f.to_tank_w is not None else None),
        dumped_j=add(e.dumped_j, f.dumped_w),
        boiler_j=add(e.boiler_j, f.boiler_w),
        aux_j=add(e.aux_j, f.aux_w),
        metered_s=e.metered_s + dt,
        unmetered_s=e.unmetered_s,
    )
