"""Binds the plant model to a site config's points: measurements -> point values, commands -> actuators.

Used by the closed-loop runner (in process) and by the simulated plant on the wire (which serves the
same point values over Modbus, OPC-UA and IPMI). Points are found by role, so any site config whose
points carry the reference roles can drive the model.
"""

from __future__ import annotations

from typing import Mapping

from controller.site.models import SiteConfig
from controller.site.roles import Role
from simulations.plant.model import Actuators, Measurements, Meters

# Role -> Measurements field, for roles with one point.
SCALAR_FIELDS: dict[Role, str] = {
    Role.IT_SUPPLY_TEMP: "it_supply_c",
    Role.IT_RETURN_TEMP: "it_return_c",
    Role.IT_FLOW: "it_flow_m3h",
    Role.B_SUPPLY_TEMP: "b_supply_c",
    Role.B_RETURN_TEMP: "b_return_c",
    Role.B_FLOW: "b_flow_m3h",
    Role.CONSUMER_SUPPLY_TEMP: "consumer_supply_c",
    Role.CONSUMER_DEMAND: "consumer_demand_w",
    Role.CONSUMER_AVAILABLE: "consumer_available",
    Role.TANK_TOP_TEMP: "tank_top_c",
    Role.TANK_BOTTOM_TEMP: "tank_bottom_c",
    Role.AMBIENT_TEMP: "ambient_c",
    Role.LOOP_PRESSURE: "loop_pressure_bar",
    # The BMS's own word: 1.0 while it runs on its fallback (the model's truth, never faked).
    Role.BMS_FALLBACK_ACTIVE: "fallback_active",
}


class MeterRates:
    """Heat meters as a site has them: average power over the last interval, from energy registers."""

    # The order of `values` (and of the registers in update()).
    ROLES = (Role.CONSUMER_HEAT, Role.DUMP_HEAT, Role.BOILER_HEAT, Role.AUX_POWER)

    def __init__(self) -> None:
        self._prev: tuple[float, float, float, float] | None = None
        # The rates in ROLES order (W). A tuple, not a dict keyed by Role, on the hot path: Enum
        # hashing is Python code in 3.11 and showed in the closed loop's profile.
        self.values: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def rates(self) -> dict[Role, float]:
        """Role -> average power over the last interval (W)."""
        return dict(zip(self.ROLES, self.values))

    def update(self, m: Meters, dt: float) -> None:
        now = (m.delivered_j - m.returned_j, m.dumped_j, m.boiler_j, m.pumps_j + m.fans_j)
        prev = self._prev
        if prev is not None and dt > 0:
            self.values = (max((now[0] - prev[0]) / dt, 0.0), max((now[1] - prev[1]) / dt, 0.0),
                           max((now[2] - prev[2]) / dt, 0.0), max((now[3] - prev[3]) / dt, 0.0))
        self._prev = now


class PlantBinding:
    def __init__(self, site: SiteConfig):
        self.site = site
        idx = site.role_index()
        self.scalar = [(idx[r][0], f) for r, f in SCALAR_FIELDS.items() if idx[r]]
        self.servers = idx[Role.SERVER_POWER]
        self.leaks = idx[Role.LEAK]
        self.meters = [(idx[r][0], r) for r in (Role.CONSUMER_HEAT, Role.DUMP_HEAT, Role.BOILER_HEAT, Role.AUX_POWER)
                       if idx[r]]
        # The same, as (point, index into MeterRates.values).
        self._meter_slots = [(point, MeterRates.ROLES.index(r)) for point, r in self.meters]
        one = {r: names[0] for r, names in idx.items() if len(names) == 1}
        self.act = {
            "p1_pct": one[Role.P1_SPEED], "p2_pct": one[Role.P2_SPEED], "p3_pct": one[Role.P3_SPEED],
            "v1_pct": one[Role.V1_POSITION], "d1_pct": one[Role.D1_FAN],
            "boiler_enable": one[Role.BOILER_ENABLE], "power_cap_w": one[Role.POWER_CAP],
            "heartbeat": one[Role.HEARTBEAT],
        }

    def point_values(self, meas: Measurements, rates: MeterRates | None = None) -> dict[str, float]:
        """Every bound reading point's value (bools as 1.0 / 0.0), NaN where a sensor reads NaN."""
        out: dict[str, float] = {}
        for point, field in self.scalar:
            out[point] = float(getattr(meas, field))
        for i, point in enumerate(self.servers):
            out[point] = float(meas.server_power_w[i]) if i < len(meas.server_power_w) else 0.0
        for i, point in enumerate(self.leaks):
            out[point] = 1.0 if i < len(meas.leak) and meas.leak[i] else 0.0
        if rates is not None:
            values = rates.values
            for point, i in self._meter_slots:
                out[point] = values[i]
        return out

    def actuators(self, values: Mapping[str, float], prev: Actuators | None = None) -> Actuators:
        """Actuator point values -> the plant's Actuators (missing points keep their previous value)."""
        base = prev or Actuators()
        kw = {}
        for field, point in self.act.items():
            if point in values:
                v = values[point]
                kw[field] = bool(v >= 0.5) if field == "boiler_enable" else (int(v) if field == "heartbeat" else float(v))
            else:
                kw[field] = getattr(base, field)
        return Actuators(**kw)

    def actuator_values(self, a: Actuators) -> dict[str, float]:
        """The plant's current actuators as point values (for read-back over the wire)."""
        return {point: float(getattr(a, field)) for field, point in self.act.items()}
