"""Arbitration per tick: for each actuator, trip > safe_degrade (or start-up hold) > operator
override > automatic; the heartbeat counts whatever else happens."""

from __future__ import annotations

import pytest

from controller.core.commands import OutputSource as S
from controller.core.sequences.arbitration import Arbitration
from controller.core.state import Override

ARB = Arbitration(("fan", "cap", "heartbeat"), {"fan": (0.0, 100.0), "cap": (0.0, 40000.0), "heartbeat": (0.0, 3.0)},
                  "heartbeat")
AUTO = {"fan": 150.0, "cap": 20000.0}
OV = {"fan": Override(30.0, 100.0, "inspection", "op", 0.0)}
TRIP = {"fan": (100.0, "it_overtemp")}
SAFE = {"fan": 80.0, "cap": 16000.0}

#  trips  safe  started  overrides  heartbeat -> fan (value, source, why), cap (value, source), heartbeat
ROWS = [
    ({}, None, True, {}, 0, (100.0, S.AUTO, "normal"), (20000.0, S.AUTO), 1.0),   # auto, clamped to range
    ({}, None, True, OV, 1, (30.0, S.OVERRIDE, "inspection"), (20000.0, S.AUTO), 2.0),
    ({}, SAFE, True, OV, 2, (80.0, S.SAFE_DEGRADE, "cause"), (16000.0, S.SAFE_DEGRADE), 3.0),
    ({}, SAFE, False, OV, 3, (80.0, S.STARTUP, "cause"), (16000.0, S.STARTUP), 0.0),  # heartbeat wraps
    (TRIP, SAFE, True, OV, 0, (100.0, S.TRIP, "it_overtemp"), (16000.0, S.SAFE_DEGRADE), 1.0),
]


@pytest.mark.parametrize("trips,safe,started,overrides,hb,fan,cap,heartbeat", ROWS)
def test_arbitration(trips, safe, started, overrides, hb, fan, cap, heartbeat):
    out = ARB(trip_out=trips, safe=safe, started=started, mode_cause="cause", overrides=overrides,
              auto=AUTO, mode_value="normal", heartbeat=hb)
    assert (out["fan"].value, out["fan"].source, out["fan"].why) == fan
    assert (out["cap"].value, out["cap"].source) == cap
    assert (out["heartbeat"].value, out["heartbeat"].source) == (heartbeat, S.AUTO)
