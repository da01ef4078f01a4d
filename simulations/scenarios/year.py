"""Year scenarios (one per consumer and per site template) and fault weeks, registered in SCENARIOS.

Profiles are simulations.scenarios.profiles' functions of the time of year; the site is the reference plant
(config/reference-plant.yaml) or a template under config/templates/ (Scenario.config), so the
controller's config stays about the plant and the choice of profiles lives here.

Control tick of year runs: YEAR_TICK_S = 60 s. A year at 1 s is 31.5 M steps; at 60 s it is 525,600.
The loops stay stable at 60 s: the plant's fastest node (the IT loop, ~45 s at full flow) is
integrated in substeps by the plant itself, the controllers' gains are per second of dt, and the
day scenarios give the same energies at 5, 30 and 60 s within 0.5 % (README, "A year, proven").
Fault weeks run at FAULT_TICK_S = 30 s so trips and recoveries are seen within half a minute.

Each year scenario has a `window`: a few days in its interesting season, for the tests.
"""

from __future__ import annotations

from simulations.plant.faults import Fault
from simulations.scenarios.profiles import (DAY, TEMPERATE, BurstyLoad, DhwDemand, DiurnalLoad, DistrictDemand, H,
                                  PoolDemand, SpaceHeatingDemand, SteadyLoad, YEAR_S, day_start_s)
from simulations.scenarios.definitions import SCENARIOS, FaultEvent, Scenario, ack

YEAR_TICK_S = 60.0
FAULT_TICK_S = 30.0
YEAR_H = YEAR_S / H
HOURLY = 3600.0

REFERENCE_POOL = PoolDemand(open_kw=30.0, closed_kw=12.0)


def _year(name: str, description: str, config: str | None, it_load, demand, window: tuple[float, float]) -> Scenario:
    return Scenario(
        name=name, description=description, hours=YEAR_H, it_load=it_load, demand_w=demand,
        ambient_c=TEMPERATE, tick_s=YEAR_TICK_S, config=config, trace_every_s=HOURLY, compare=True,
        window=window, expect={"trips": []},
    )


YEAR_SCENARIOS = [
    _year("pool-year", "reference plant (40 kW, 85 % batch load) heating a public pool for a year",
          None, SteadyLoad(0.85), REFERENCE_POOL, (day_start_s(4, 12), 96.0)),
    _year("dhw-year", "single-rack CPU cluster (20 kW) preheating domestic hot water for a year",
          "config/templates/cpu-rack-dhw.yaml", SteadyLoad(0.8), DhwDemand(peak_kw=40.0, base_kw=4.0),
          (day_start_s(1, 20), 72.0)),
    _year("space-heating-year", "immersion-cooled nodes (48 kW, capture 0.95) heating a building for a year",
          "config/templates/immersion-space-heating.yaml", SteadyLoad(0.85), SpaceHeatingDemand(design_kw=55.0),
          (day_start_s(10, 10), 96.0)),
    _year("district-year", "containerised module (200 kW) on a low-temperature district loop for a year",
          "config/templates/container-district.yaml", SteadyLoad(0.9), DistrictDemand(base_kw=120.0, per_k_kw=12.0),
          (day_start_s(5, 5), 72.0)),
    _year("gpu-pod-year", "GPU inference pod (80 kW, bursty jobs) heating a large pool for a year",
          "config/templates/gpu-pod-pool.yaml", BurstyLoad(), PoolDemand(open_kw=60.0, closed_kw=24.0),
          (day_start_s(3, 3), 72.0)),
    _year("retrofit-year", "hybrid air-to-water retrofit (capture 0.5, low grade) on underfloor heating for a year",
          "config/templates/hybrid-retrofit.yaml", DiurnalLoad(), SpaceHeatingDemand(design_kw=30.0),
          (day_start_s(3, 20), 96.0)),
]

# --- fault weeks: the reference plant and pool in mid-January ------------------------------------
WEEK0 = day_start_s(1, 15)  # a Monday
D2 = WEEK0 + 1 * DAY  # the fault day


def _week(name: str, description: str, expect: dict, window: tuple[float, float] | None = (D2, 24.0),
          **kw) -> Scenario:
    # Test window: the fault day (or the whole week when the fault lasts a day).
    return Scenario(name=name, description=description, hours=7 * 24.0, it_load=SteadyLoad(0.85),
                    demand_w=REFERENCE_POOL, ambient_c=TEMPERATE, tick_s=FAULT_TICK_S, start_s=WEEK0,
                    trace_every_s=600.0, expect=expect, window=window, **kw)


FAULT_WEEKS = [
    _week("week-pump-failure", "a January week; IT loop pump P1 fails on day 2 at 10:00, replaced at 14:00, "
          "acknowledged 14:15",
          {"trips": ["low_flow"], "safe_degrade_h": (4.0, 4.6)},
          faults=(FaultEvent(D2 + 10 * H, "inject", Fault("pump_failure", "p1")),
                  FaultEvent(D2 + 14 * H, "clear", Fault("pump_failure", "p1"))),
          requests=(ack((D2 + 14.25 * H) / H, "low_flow", "P1 replaced"),)),
    _week("week-consumer-offline-day", "a January week; the pool's heat exchanger is isolated for all of day 3",
          {"trips": [], "safe_degrade_h": (0.0, 0.2), "modes": ["buffer_charging", "bypass"]},
          faults=(FaultEvent(D2 + DAY, "inject", Fault("consumer_offline")),
                  FaultEvent(D2 + 2 * DAY, "clear", Fault("consumer_offline"))),
          window=(D2 + DAY - 2 * H, 30.0)),
    _week("week-sensor-stuck", "a January week; the IT supply transmitter sticks at full scale (an open RTD "
          "reads over range) on day 2 10:00-12:00, acknowledged 12:10",
          {"trips": ["sensor_lost"], "safe_degrade_h": (2.0, 2.6)},
          faults=(FaultEvent(D2 + 10 * H, "inject", Fault("sensor_stuck", "it_supply_c", 120.0)),
                  FaultEvent(D2 + 12 * H, "clear", Fault("sensor_stuck", "it_supply_c"))),
          requests=(ack((D2 + (12 + 10 / 60) * H) / H, "sensor_lost", "transmitter replaced"),)),
    _week("week-leak", "a January week; the rack leak detector goes wet on day 2 at 10:00, dried by 10:30",
          # Only leak: the trip drops the cap to the floor, below low_flow's idle threshold, within
          # one 30 s tick (at a 1 s tick the day scenario `leak` also sees low_flow first).
          {"trips": ["leak"], "safe_degrade_h": (0.5, 1.0)},
          faults=(FaultEvent(D2 + 10 * H, "inject", Fault("leak", 1)),
                  FaultEvent(D2 + 10.5 * H, "clear", Fault("leak", 1))),
          requests=(ack((D2 + 10.5 * H + 60) / H, "leak", "drip tray dried, fitting tightened"),)),
    _week("week-bms-comms-loss", "a January week; every BMS reading is LOST for an hour on day 2 (10:00-11:00), "
          "the trip acknowledged at 11:10",
          {"trips": ["sensor_lost"], "safe_degrade_h": (1.0, 1.6), "fallback_h": (0.8, 1.0)},
          comms_loss=((D2 + 10 * H, D2 + 11 * H),),
          requests=(ack((D2 + 11 * H + 600) / H, "sensor_lost", "BMS link restored"),)),
    _week("week-controller-restart", "a January week; the controller dies on day 2 at 10:00 and restarts 5 "
          "minutes later with its state lost; the plant's heartbeat fallback covers the gap",
          {"trips": [], "safe_degrade_h": (0.0, 0.2), "fallback_h": (0.02, 0.1)},
          restarts=((D2 + 10 * H, 300.0),)),
]

for _s in YEAR_SCENARIOS + FAULT_WEEKS:
    SCENARIOS[_s.name] = _s


def window_of(s: Scenario) -> Scenario:
    """The scenario cut to its test window (start and hours), faults and requests kept."""
    import dataclasses
    if s.window is None:
        return s
    start, hours = s.window
    return dataclasses.replace(s, start_s=start, hours=hours)


def site_for(s: Scenario, default: str | None = None):
    """The site config a scenario runs on: its own `config` (relative to the repository), else
    `default`, else the reference plant."""
    from pathlib import Path

    from controller.site.loader import load_config
    from controller.site.paths import REPO_ROOT as root, default_config_path

    path = root / s.config if s.config else Path(default or default_config_path())
    return load_config(path).site
