"""Named closed-loop scenarios: a period, load and demand profiles, faults and operator actions.

The day scenarios of the controller core: a steady winter day, a summer day with little demand, the
consumer going offline mid-day, a pump failure, a sensor fault, a leak, and a 50 % IT load step.
Times are simulated seconds from the start of the run (00:00).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from controller.core.requests import AckTripRequest, Request
from simulations.plant.faults import Fault
from simulations.plant.model import Loads

H = 3600.0


@dataclass(frozen=True)
class FaultEvent:
    at_s: float
    action: str  # "inject" or "clear"
    fault: Fault


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    hours: float
    it_load: Callable[[float], float]
    demand_w: Callable[[float], float]
    available: Callable[[float], bool] = lambda t: True
    ambient_c: Callable[[float], float] = lambda t: 5.0
    faults: tuple[FaultEvent, ...] = ()
    requests: tuple[tuple[float, Request], ...] = ()
    tick_s: float | None = None
    # What the run must show, checked by tests and printed by `heatctl simulate`.
    expect: dict = field(default_factory=dict)
    # --- year and fault-week scenarios (simulations/scenarios/year.py); defaults keep day ones as they were
    # Simulated time of the first tick (s from 1 January 00:00): profiles are functions of the
    # time of year, so a window of a year scenario starts where it is in the year.
    start_s: float = 0.0
    # The site config to run on, relative to the repository (None: --config or the reference plant).
    config: str | None = None
    # Trace sample period (s); None: the runner's default (60 s).
    trace_every_s: float | None = None
    # Snapshot-level faults: (start_s, end_s) windows in which every BMS reading (Modbus, OPC-UA) is
    # LOST and no BMS write arrives (the heartbeat with them); the BMCs (IPMI) still answer.
    comms_loss: tuple[tuple[float, float], ...] = ()
    # Controller restarts: (at_s, down_s): the controller's state is lost at at_s, nothing is
    # written for down_s (the plant's heartbeat fallback takes over), then a new controller state
    # is built with initial_state() while the plant has kept running.
    restarts: tuple[tuple[float, float], ...] = ()
    # Run the baseline controller and the physical bound beside heatctl (`heatctl simulate`).
    compare: bool = False
    # A short window of a year scenario that holds its interesting season: (start_s, hours), for tests.
    window: tuple[float, float] | None = None

    def loads(self, t: float) -> Loads:
        return Loads(self.it_load(t), self.demand_w(t), self.available(t), self.ambient_c(t))


def winter_ambient(t: float) -> float:
    """A winter day: 2 degC mean, 4 K daily swing peaking at 15:00."""
    return 2.0 + 4.0 * math.cos(2 * math.pi * (t / H - 15.0) / 24.0)


def summer_ambient(t: float) -> float:
    return 20.0 + 6.0 * math.cos(2 * math.pi * (t / H - 15.0) / 24.0)


def pool_winter_demand(t: float) -> float:
    """A public pool in winter: about 36 kW while open (06-22 h), 28 kW closed (covers on)."""
    hour = (t / H) % 24
    return 36000.0 if 6 <= hour < 22 else 28000.0


def ack(at_h: float, trip: str, why: str) -> tuple[float, Request]:
    return (at_h * H, AckTripRequest(reason=why, user="sim-operator", trip=trip))


SCENARIOS: dict[str, Scenario] = {}


def _add(s: Scenario) -> None:
    SCENARIOS[s.name] = s


_add(Scenario(
    name="winter-day",
    description="steady winter day: 85 % IT load, the pool takes more than the servers give",
    hours=24, it_load=lambda t: 0.85, demand_w=pool_winter_demand, ambient_c=winter_ambient,
    expect={"modes": ["normal"], "trips": []},
))
_add(Scenario(
    name="summer-day",
    description="summer day with little demand: the tank charges, then heat goes to the dump",
    hours=24, it_load=lambda t: 0.85, demand_w=lambda t: 6000.0, ambient_c=summer_ambient,
    expect={"modes": ["normal", "buffer_charging", "bypass"], "trips": []},
))
def pool_day_night_demand(t: float) -> float:
    """A pool in spring: 40 kW while open (08-20 h), 6 kW at night under covers."""
    hour = (t / H) % 24
    return 40000.0 if 8 <= hour < 20 else 6000.0


_add(Scenario(
    name="day-night",
    description="spring pool: the tank stores the night's surplus for the day's deficit",
    hours=48, it_load=lambda t: 0.85, demand_w=pool_day_night_demand, ambient_c=lambda t: 10.0,
    expect={"modes": ["normal", "buffer_charging", "bypass"], "trips": []},
))
_add(Scenario(
    name="consumer-offline",
    description="the pool's heat exchanger is isolated from 10:00 to 16:00",
    hours=24, it_load=lambda t: 0.85, demand_w=pool_winter_demand, ambient_c=winter_ambient,
    faults=(FaultEvent(10 * H, "inject", Fault("consumer_offline")),
            FaultEvent(16 * H, "clear", Fault("consumer_offline"))),
    expect={"modes": ["normal", "buffer_charging"], "trips": []},
))
_add(Scenario(
    name="pump-failure",
    description="IT loop pump P1 fails at 02:00 (low_flow trip), repaired at 03:00, acknowledged 03:10",
    hours=5, it_load=lambda t: 0.85, demand_w=pool_winter_demand, ambient_c=winter_ambient,
    faults=(FaultEvent(2 * H, "inject", Fault("pump_failure", "p1")),
            FaultEvent(3 * H, "clear", Fault("pump_failure", "p1"))),
    requests=(ack(3 + 10 / 60, "low_flow", "P1 replaced"),),
    expect={"modes": ["normal", "safe_degrade"], "trips": ["low_flow"]},
))
_add(Scenario(
    name="sensor-fault",
    description="the IT supply temperature sensor reads NaN from 02:00 to 02:30, acknowledged 02:40",
    hours=4, it_load=lambda t: 0.85, demand_w=pool_winter_demand, ambient_c=winter_ambient,
    faults=(FaultEvent(2 * H, "inject", Fault("sensor_nan", "it_supply_c")),
            FaultEvent(2.5 * H, "clear", Fault("sensor_nan", "it_supply_c"))),
    requests=(ack(2 + 40 / 60, "sensor_lost", "sensor rewired"),),
    expect={"modes": ["normal", "safe_degrade"], "trips": ["sensor_lost"]},
))
_add(Scenario(
    name="leak",
    description="the rack leak detector goes wet at 02:00; dried and acknowledged at 02:30",
    hours=4, it_load=lambda t: 0.85, demand_w=pool_winter_demand, ambient_c=winter_ambient,
    faults=(FaultEvent(2 * H, "inject", Fault("leak", 1)),
            FaultEvent(2.5 * H, "clear", Fault("leak", 1))),
    # Stopping the pumps (the leak's isolation) also trips low_flow: both need acknowledging.
    requests=(ack(2.5 + 1 / 60, "leak", "drip tray dried, fitting tightened"),
              ack(2.5 + 1 / 60, "low_flow", "pumps stopped by the leak trip; restarting")),
    expect={"modes": ["normal", "safe_degrade"], "trips": ["leak", "low_flow"]},
))
_add(Scenario(
    name="load-step",
    description="IT load steps from 40 % to 90 % at 02:00 with the pool taking 20 kW",
    hours=5, it_load=lambda t: 0.4 if t < 2 * H else 0.9, demand_w=lambda t: 20000.0,
    ambient_c=lambda t: 5.0,
    expect={"settle_within_k": 1.0, "settle_after_h": 2.5},
))


# Year scenarios and fault weeks (they import this module's Scenario and SCENARIOS).
from simulations.scenarios import year as _year_scenarios  # noqa: E402,F401
