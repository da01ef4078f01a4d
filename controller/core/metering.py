"""Heat metering: heat flows from flow x c_p(T) x dT, and energies integrated tick by tick.

Where a site has a heat meter for a flow (consumer, dump, boiler) or a submeter for pumps and fans,
its reading is used; otherwise the flow is estimated from loop temperatures and actuator positions
and marked as an estimate. A flow whose inputs are bad is not guessed: that interval is counted as
unmetered time. ERF (ISO/IEC 30134-6) = reused energy / total energy drawn by the data centre (IT
plus pumps and fans).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

from controller.site.models import SiteConfig
from controller.site.roles import Role
from controller.core.validation import Checked
from controller.core.water import cp_j_per_kg_k, density_kg_m3, heat_flow_w


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


def _tank_range(site: SiteConfig) -> tuple[float, float]:
    """The tank's mean temperature when empty and when full (degC), as the state of charge uses them."""
    m = site.modes
    return m.tank_empty_temp_c, m.tank_full_temp_c + site.policy_settings.tank_full_offset_k


def _soc(top_c: float, bottom_c: float, empty: float, span: float) -> float:
    soc = (0.5 * (top_c + bottom_c) - empty) / span
    return min(max(soc, 0.0), 1.0)


def tank_soc(site: SiteConfig, top_c: float | None, bottom_c: float | None) -> float | None:
    """State of charge 0..1 from the mean of the tank's top and bottom temperatures."""
    if top_c is None or bottom_c is None:
        return None
    empty, full = _tank_range(site)
    return _soc(top_c, bottom_c, empty, full - empty)


class FlowPlan:
    """The heat flows of one site: point names by role and the tank's constants, resolved once.

    The step builds one per config and calls `flows` each tick (looking roles up, Enum keys, and
    water properties up every tick showed in its profile).
    """

    def __init__(self, site: SiteConfig, idx: RoleIndex):
        def one(role: Role) -> str | None:
            names = idx[role]
            return names[0] if len(names) == 1 else None

        self.servers = tuple(idx[Role.SERVER_POWER])
        self.f1, self.t_its, self.t_itr = one(Role.IT_FLOW), one(Role.IT_SUPPLY_TEMP), one(Role.IT_RETURN_TEMP)
        self.f2, self.t_bs, self.t_br = one(Role.B_FLOW), one(Role.B_SUPPLY_TEMP), one(Role.B_RETURN_TEMP)
        self.top, self.bottom = one(Role.TANK_TOP_TEMP), one(Role.TANK_BOTTOM_TEMP)
        self.consumer_heat = one(Role.CONSUMER_HEAT)
        self.has_consumer_meter = bool(idx[Role.CONSUMER_HEAT])
        self.dump, self.boiler, self.aux = one(Role.DUMP_HEAT), one(Role.BOILER_HEAT), one(Role.AUX_POWER)
        self.empty, full = _tank_range(site)
        self.span = full - self.empty
        # Water properties at the middle of the tank's range (kept as separate factors: the energy
        # is soc x mass x cp x span, in that order, for the same rounding every tick).
        t_mid = 0.5 * (self.empty + full)
        self.mass = site.metering.tank_volume_m3 * density_kg_m3(t_mid)
        self.cp = cp_j_per_kg_k(t_mid)

    def flows(self, checked: Mapping[str, Checked], v1_pct: float | None, prev_soc: float | None,
              dt: float) -> HeatFlows:
        """This tick's flows from the validated readings; `v1_pct` is the valve position applied
        over the interval, `prev_soc` the last known state of charge, `dt` the interval (s)."""
        get = checked.get

        def v(name: str | None) -> float | None:
            if name is None:
                return None
            c = get(name)
            return c.value if c is not None and c.good else None

        servers = [get(n) for n in self.servers]
        it_w = sum(c.value for c in servers) if servers and all(c is not None and c.good for c in servers) else None  # type: ignore[misc]
        f1, t_its, t_itr = v(self.f1), v(self.t_its), v(self.t_itr)
        captured = heat_flow_w(f1, t_itr, t_its) if None not in (f1, t_its, t_itr) else None
        f2, t_bs, t_br = v(self.f2), v(self.t_bs), v(self.t_br)
        transferred = heat_flow_w(f2, t_bs, t_br) if None not in (f2, t_bs, t_br) else None
        top, bottom = v(self.top), v(self.bottom)
        soc = None if top is None or bottom is None else _soc(top, bottom, self.empty, self.span)
        to_tank = None
        if soc is not None and prev_soc is not None and dt > 0:
            to_tank = (soc * self.mass * self.cp * self.span - prev_soc * self.mass * self.cp * self.span) / dt
        delivered = v(self.consumer_heat)
        estimated = False
        if delivered is None and not self.has_consumer_meter \
                and transferred is not None and v1_pct is not None:
            # No heat meter at the consumer: the share of the building flow V1 leaves to it.
            delivered = max(transferred * (1.0 - v1_pct / 100.0), 0.0)
            estimated = True
        f = _new(HeatFlows)
        _F_IT(f, it_w)
        _F_CAPTURED(f, captured)
        _F_TRANSFERRED(f, transferred)
        _F_DELIVERED(f, delivered)
        _F_TO_TANK(f, to_tank)
        _F_DUMPED(f, v(self.dump))
        _F_BOILER(f, v(self.boiler))
        _F_AUX(f, v(self.aux))
        _F_SOC(f, soc)
        _F_EST(f, estimated)
        return f


# Frozen, slotted dataclasses built through their slot descriptors: the same objects, without one
# object.__setattr__ per field (which showed in the step's profile).
_new = object.__new__
(_F_IT, _F_CAPTURED, _F_TRANSFERRED, _F_DELIVERED, _F_TO_TANK, _F_DUMPED, _F_BOILER, _F_AUX, _F_SOC,
 _F_EST) = (getattr(HeatFlows, n).__set__ for n in (
    "it_w", "captured_w", "transferred_w", "delivered_w", "to_tank_w", "dumped_w", "boiler_w", "aux_w",
    "tank_soc", "delivered_estimated"))
_ENERGY_FIELDS = ("it_j", "captured_j", "transferred_j", "delivered_j", "stored_in_j", "stored_out_j",
                  "dumped_j", "boiler_j", "aux_j", "metered_s", "unmetered_s")
_E_SET = tuple(getattr(EnergyCounters, n).__set__ for n in _ENERGY_FIELDS)
# A field added to either class must be added above too (else it would be left unset).
assert tuple(f.name for f in fields(EnergyCounters)) == _ENERGY_FIELDS
assert len(fields(HeatFlows)) == 10


def integrate(e: EnergyCounters, f: HeatFlows, dt: float, max_gap_s: float) -> EnergyCounters:
    """Add one interval's energy. A gap longer than `max_gap_s` is unmetered, not extrapolated."""
    if dt <= 0:
        return e
    if dt > max_gap_s or f.it_w is None or f.delivered_w is None:
        # replace(e, unmetered_s=e.unmetered_s + dt), without replace's per-call field walk.
        out = _new(EnergyCounters)
        for setter, name in zip(_E_SET, _ENERGY_FIELDS):
            setter(out, getattr(e, name))
        _E_SET[-1](out, e.unmetered_s + dt)
        return out

    def add(total: float, w: float | None) -> float:
        return total + max(w, 0.0) * dt if w is not None else total

    values = (
        add(e.it_j, f.it_w),
        add(e.captured_j, f.captured_w),
        add(e.transferred_j, f.transferred_w),
        add(e.delivered_j, f.delivered_w),
        add(e.stored_in_j, f.to_tank_w),
        add(e.stored_out_j, -f.to_tank_w if f.to_tank_w is not None else None),
        add(e.dumped_j, f.dumped_w),
        add(e.boiler_j, f.boiler_w),
        add(e.aux_j, f.aux_w),
        e.metered_s + dt,
        e.unmetered_s,
    )
    out = _new(EnergyCounters)  # EnergyCounters(*values), without its frozen __init__'s cost
    for setter, value in zip(_E_SET, values):
        setter(out, value)
    return out
