"""Control sequences: one small unit per job, each pure and tested on its own per-tick table.

A loop's sequence decides what its PID works on this tick (`LoopCall`: measurement, setpoint,
output limits, or a forced output) and what its output means for the actuators; the PID itself
runs in loops.py, the same for every loop. `Controller.step` composes them:

    it_delta_t      P1 holds the IT loop's dT
    consumer_tank   V1 / P3 split range on the consumer supply temperature, tank charge/discharge
    dump            D1 keeps the building return low enough
    power_cap       the servers' power limit below the over-temperature trip
    boiler          the boiler thermostat, with hysteresis and a minimum time between switches
    arbitration     trip > safe_degrade > operator override > automatic, per actuator
"""

from __future__ import annotations

from typing import NamedTuple


class LoopCall(NamedTuple):
    """What one loop's PID works on this tick. `forced`: the output is set, the PID holds."""

    measurement: float | None
    setpoint: float
    lo: float
    hi: float
    forced: float | None = None
