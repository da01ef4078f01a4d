"""The roles a point can play in the reference plant, each with the unit the controller expects.

The step finds its inputs and outputs by role, not by name, so that a site names its points the way
its BMS does (`TT-101`, `it_supply`) and the controller still knows which one is the IT supply
temperature. A role's unit is fixed: the config is rejected if a point claims a role in another unit,
rather than converted silently (STYLE.md habit 7).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PointKind(enum.Enum):
    READING = "reading"
    ACTUATOR = "actuator"


@dataclass(frozen=True)
class RoleSpec:
    kind: PointKind
    unit: str
    # Whether a site must have exactly one point with this role (False: zero or more allowed).
    required: bool
    # Whether several points may share this role (leak detectors, server power readings).
    many: bool = False
    description: str = ""


class Role(enum.Enum):
    # Readings
    SERVER_POWER = "server_power"
    IT_SUPPLY_TEMP = "it_supply_temp"
    IT_RETURN_TEMP = "it_return_temp"
    IT_FLOW = "it_flow"
    B_SUPPLY_TEMP = "b_supply_temp"
    B_RETURN_TEMP = "b_return_temp"
    B_FLOW = "b_flow"
    CONSUMER_SUPPLY_TEMP = "consumer_supply_temp"
    CONSUMER_DEMAND = "consumer_demand"
    CONSUMER_AVAILABLE = "consumer_available"
    TANK_TOP_TEMP = "tank_top_temp"
    TANK_BOTTOM_TEMP = "tank_bottom_temp"
    LEAK = "leak"
    AMBIENT_TEMP = "ambient_temp"
    LOOP_PRESSURE = "loop_pressure"
    # Optional heat meters and submeters; where a site has them, the energy counters use them.
    CONSUMER_HEAT = "consumer_heat"
    DUMP_HEAT = "dump_heat"
    BOILER_HEAT = "boiler_heat"
    AUX_POWER = "aux_power"
    # Optional: the BMS's own word that it runs on its fallback (it stopped seeing the heartbeat).
    BMS_FALLBACK_ACTIVE = "bms_fallback_active"
    # Actuators
    P1_SPEED = "p1_speed"
    P2_SPEED = "p2_speed"
    P3_SPEED = "p3_speed"
    V1_POSITION = "v1_position"
    D1_FAN = "d1_fan"
    BOILER_ENABLE = "boiler_enable"
    POWER_CAP = "power_cap"
    HEARTBEAT = "heartbeat"


R, A = PointKind.READING, PointKind.ACTUATOR

ROLE_SPECS: dict[Role, RoleSpec] = {
    Role.SERVER_POWER: RoleSpec(R, "W", True, many=True, description="one server's power (DCMI)"),
    Role.IT_SUPPLY_TEMP: RoleSpec(R, "degC", True, description="IT loop supply, to the servers"),
    Role.IT_RETURN_TEMP: RoleSpec(R, "degC", True, description="IT loop return, from the servers"),
    Role.IT_FLOW: RoleSpec(R, "m3/h", True, description="IT loop flow F1"),
    Role.B_SUPPLY_TEMP: RoleSpec(R, "degC", True, description="building loop supply, HX outlet"),
    Role.B_RETURN_TEMP: RoleSpec(R, "degC", True, description="building loop return, HX inlet"),
    Role.B_FLOW: RoleSpec(R, "m3/h", True, description="building loop flow F2"),
    Role.CONSUMER_SUPPLY_TEMP: RoleSpec(R, "degC", True, description="consumer supply temperature"),
    Role.CONSUMER_DEMAND: RoleSpec(R, "W", True, description="consumer heat demand from the BMS"),
    Role.CONSUMER_AVAILABLE: RoleSpec(R, "bool", True, description="consumer accepts heat"),
    Role.TANK_TOP_TEMP: RoleSpec(R, "degC", True, description="buffer tank top layer"),
    Role.TANK_BOTTOM_TEMP: RoleSpec(R, "degC", True, description="buffer tank bottom layer"),
    Role.LEAK: RoleSpec(R, "bool", True, many=True, description="leak detector, 1 = wet"),
    Role.AMBIENT_TEMP: RoleSpec(R, "degC", False, description="outdoor / plant room ambient"),
    Role.LOOP_PRESSURE: RoleSpec(R, "bar", False, description="IT loop pressure"),
    Role.CONSUMER_HEAT: RoleSpec(R, "W", False, description="heat meter: recovered heat to the consumer"),
    Role.DUMP_HEAT: RoleSpec(R, "W", False, description="heat meter: heat rejected by the dump cooler"),
    Role.BOILER_HEAT: RoleSpec(R, "W", False, description="heat meter: boiler output"),
    Role.AUX_POWER: RoleSpec(R, "W", False, description="submeter: pumps and fans electrical power"),
    Role.BMS_FALLBACK_ACTIVE: RoleSpec(R, "bool", False,
                                       description="the BMS runs on its own fallback, 1 = active"),
    Role.P1_SPEED: RoleSpec(A, "pct", True, description="IT loop pump P1 speed"),
    Role.P2_SPEED: RoleSpec(A, "pct", True, description="building loop pump P2 speed"),
    Role.P3_SPEED: RoleSpec(A, "pct", True, description="tank discharge pump P3 speed"),
    Role.V1_POSITION: RoleSpec(A, "pct", True, description="diverting valve V1, 0 consumer, 100 tank"),
    Role.D1_FAN: RoleSpec(A, "pct", True, description="dump cooler D1 fan"),
    Role.BOILER_ENABLE: RoleSpec(A, "bool", True, description="building boiler enable"),
    Role.POWER_CAP: RoleSpec(A, "W", True, description="site IT power cap, shared among servers"),
    Role.HEARTBEAT: RoleSpec(A, "count", True, description="controller heartbeat counter"),
}

# Units a point may declare at all. Anything else is a typo, and typos in units are rejected.
KNOWN_UNITS = frozenset({"degC", "K", "m3/h", "W", "kW", "pct", "bool", "bar", "count"})
