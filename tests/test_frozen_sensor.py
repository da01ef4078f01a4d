"""frozen_after_s end to end (issue 13: "a stuck IT supply sensor goes unseen"): the simulated IT supply
transmitter sticks at its current, plausible value under full load; with frozen_after_s set, the
controller sees it as frozen, goes to safe_degrade and trips sensor_lost; without, nothing notices.

The reference config waives frozen detection on its IT supply (its simulated sensors have no noise,
see the config's comment); here it is set as a real site sets it (the templates' value), shortened
to 10 minutes to keep the run short.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from controller.site.loader import parse_config_text
from simulations.plant.faults import Fault
from simulations.runners.closed_loop import run_scenario
from simulations.scenarios.definitions import SCENARIOS, FaultEvent

REFERENCE = Path(__file__).resolve().parents[1] / "config" / "reference-plant.yaml"
H = 3600.0
FROZEN_S = 600.0
TICK_S = 5.0


def site(frozen_after_s: float | None):
    data = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    if frozen_after_s is not None:
        data["points"]["it_supply_temp"]["frozen_after_s"] = frozen_after_s
        data["waive"] = [w for w in data["waive"] if w["key"] != "points.it_supply_temp.frozen_after_s"]
    return parse_config_text(yaml.safe_dump(data, sort_keys=False), "site.yaml").site


# The sensor-fault scenario's day, but the transmitter sticks (holds its true value of the moment)
# at 1 h instead of reading NaN, and nobody acknowledges within the 1.5 h run.
STUCK = dataclasses.replace(
    SCENARIOS["sensor-fault"], name="sensor-frozen", hours=1.5, requests=(), expect={},
    faults=(FaultEvent(1 * H, "inject", Fault("sensor_stuck", "it_supply_c")),))


def sensor_lost_trips(k):
    return [(t, msg) for t, kind, msg, f in k.timeline if kind == "trip" and f["trip"] == "sensor_lost"]


def test_a_stuck_it_supply_transmitter_trips_sensor_lost_once_frozen_after_s_has_passed():
    k, _ = run_scenario(site(FROZEN_S), STUCK, tick_s=TICK_S)
    [(t, msg)] = sensor_lost_trips(k)
    grace = site(FROZEN_S).trips["sensor_lost"].grace_s
    assert 1 * H + FROZEN_S <= t <= 1 * H + FROZEN_S + grace + 3 * TICK_S, t
    assert "it_supply_temp" in msg and "frozen" in msg
    assert k.mode_hours["safe_degrade"] > 0


def test_without_frozen_after_s_the_stuck_transmitter_goes_unseen():
    # The yardstick can lose: the same run without frozen detection trips nothing.
    k, _ = run_scenario(site(None), STUCK, tick_s=TICK_S)
    assert sensor_lost_trips(k) == [] and not k.trips
