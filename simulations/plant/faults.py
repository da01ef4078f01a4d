"""Faults that can be injected into the simulated plant.

A fault is a value: its kind, what it hits (`target`) and an optional magnitude (`value`). The plant
(`simulations.plant.model.Plant.inject`) validates it and applies it from the next `advance()` (physical
faults) or the next `measurements()` (sensor faults). Physical faults change the physics; sensor
faults change only what is measured, never the physics.

| kind             | target                                  | value                            |
| ---------------- | --------------------------------------- | -------------------------------- |
| pump_failure     | "p1" / "p2" / "p3"                      | -                                |
| low_flow         | - (the IT loop strainer)                | flow as a fraction of commanded  |
|                  |                                         | (default 0.1)                    |
| leak             | 0 (cdu) / 1 (rack) detector             | -                                |
| consumer_offline | -                                       | -                                |
| sensor_stuck     | measurement field, e.g. "it_supply_c",  | value to hold (default: the true |
|                  | or one element: "tank_layers_c[2]"      | value at injection)              |
| sensor_nan       | a float measurement field or element    | -                                |
| bms_fallback     | -                                       | -                                |

bms_fallback: the BMS runs on its fallback whatever the heartbeat does (a BMS operator's hand
switch, a BMS that lost its own link to the controller's register): the plant's own word on
fallback (Measurements.fallback_active) says so, as a real BMS's status point would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PUMP_FAILURE = "pump_failure"
LOW_FLOW = "low_flow"
LEAK = "leak"
CONSUMER_OFFLINE = "consumer_offline"
SENSOR_STUCK = "sensor_stuck"
SENSOR_NAN = "sensor_nan"
BMS_FALLBACK = "bms_fallback"

FAULT_KINDS = frozenset({PUMP_FAILURE, LOW_FLOW, LEAK, CONSUMER_OFFLINE, SENSOR_STUCK, SENSOR_NAN,
                         BMS_FALLBACK})
PUMPS = ("p1", "p2", "p3")
# Leak detectors, in the order of Measurements.leak.
LEAK_DETECTORS = ("cdu", "rack")
# A clogged strainer: 10 % of the commanded flow gets through unless the fault says otherwise.
DEFAULT_LOW_FLOW_FRACTION = 0.1

_ELEMENT = re.compile(r"^([a-z_0-9]+)\[(\d+)\]$")


@dataclass(frozen=True)
class Fault:
    """One fault: `kind` (see FAULT_KINDS), what it hits, and an optional magnitude."""

    kind: str
    target: str | int | None = None
    value: float | None = None


def parse_sensor_target(target: object) -> tuple[str, int | None]:
    """Split a sensor target into (field name, element index or None): "leak[1]" -> ("leak", 1)."""
    if not isinstance(target, str) or not target:
        raise ValueError(f"a sensor fault needs a measurement field name as target, got {target!r}")
    m = _ELEMENT.match(target)
    if m:
        return m.group(1), int(m.group(2))
    return target, None


def validate(fault: Fault) -> Fault:
    """Check a fault's kind, target and value; return it with a normalised target.

    Sensor targets are checked against the measurement fields by the plant, which knows them.
    """
    kind = fault.kind
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
    if kind == PUMP_FAILURE:
        if fault.target not in PUMPS:
            raise ValueError(f"pump_failure target must be one of {PUMPS}, got {fault.target!r}")
    elif kind == LEAK:
        target = fault.target
        if isinstance(target, str) and target in LEAK_DETECTORS:
            target = LEAK_DETECTORS.index(target)
        if target not in (0, 1) or isinstance(target, bool):
            raise ValueError(f"leak target must be detector 0 (cdu) or 1 (rack), got {fault.target!r}")
        return Fault(kind, target, fault.value)
    elif kind == LOW_FLOW:
        if fault.value is not None and not 0.0 <= fault.value <= 1.0:
            raise ValueError(f"low_flow value is a fraction of commanded flow in 0..1, got {fault.value!r}")
    elif kind in (CONSUMER_OFFLINE, BMS_FALLBACK):
        pass
    else:  # sensor faults
        parse_sensor_target(fault.target)
    return fault
