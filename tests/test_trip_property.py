"""Property: whenever a trip's condition holds, that tick's commands are the trip's safe commands.

Hypothesis drives random reading sequences (smooth, jumping, lost, NaN) and random operator
requests (overrides, mode requests, holds, acks, trip tests). The oracle below decides independently
of the step whether a trip condition holds, from the raw readings alone.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.commands import OutputSource
from controller.core.modes import Mode
from controller.core.readings import Quality, Reading, Snapshot
from controller.core.requests import (AckTripRequest, ClearOverrideRequest, HoldRequest, ModeRequest,
                                 OverrideRequest, ReleaseRequest, TripTestRequest)
from tests.step_helpers import GOOD, make_controller

CTRL = make_controller()
SITE = CTRL.site
ACTUATORS = [p for p in CTRL.actuators if p != "heartbeat"]
TRIPS = list(SITE.trips)

requests = st.one_of(
    st.builds(OverrideRequest, reason=st.just("prop"), point=st.sampled_from(ACTUATORS + ["heartbeat"]),
              value=st.floats(-10, 50000, allow_nan=False), duration_s=st.floats(-5, 100, allow_nan=False)),
    st.builds(ClearOverrideRequest, reason=st.just("prop"), point=st.sampled_from(ACTUATORS)),
    st.builds(ModeRequest, reason=st.just("prop"), mode=st.sampled_from(list(Mode))),
    st.builds(HoldRequest, reason=st.just("prop")),
    st.builds(ReleaseRequest, reason=st.just("prop")),
    st.builds(AckTripRequest, reason=st.just("prop"), trip=st.sampled_from(TRIPS)),
    st.builds(TripTestRequest, reason=st.just("prop"), trip=st.sampled_from(TRIPS)),
)

# Each tick: a change of IT supply temperature (smooth steps, or a jump), a fault on it, leak
# detectors, IT loop flow, per-server power and a few requests.
tick = st.fixed_dictionaries({
    "dtemp": st.one_of(st.floats(-2.0, 2.0), st.floats(-30.0, 30.0)),
    "temp_fault": st.sampled_from([None, None, None, None, "lost", "nan", "bad"]),
    "leak_cdu": st.sampled_from([0, 0, 0, 0, 0, 1]),
    "leak_fault": st.sampled_from([None, None, None, None, "lost"]),
    "it_flow": st.floats(0.0, 6.0),
    "power": st.floats(0.0, 5500.0),
    "requests": st.lists(requests, max_size=2),
})


def oracle(name: str, readings: dict[str, Reading], forced: set[str]) -> bool:
    """Does trip `name`'s condition hold on these raw readings? (Independent of the step.)"""
    if name in forced:
        return True

    def good(point: str) -> float | None:
        r = readings.get(point)
        cfg = SITE.points[point]
        if r is None or r.quality is not Quality.GOOD or r.value is None or not math.isfinite(r.value):
            return None
        return r.value if cfg.range[0] <= r.value <= cfg.range[1] else None

    trip = SITE.trips[name]
    if trip.kind == "leak":
        return any(good(p) == 1.0 for p in ("leak_cdu", "leak_rack"))
    if trip.kind == "low_flow":
        flow = good(trip.point)
        powers = [good(f"srv{i}_power") for i in range(1, 9)]
        return flow is not None and flow < trip.limit and sum(p for p in powers if p is not None) > trip.it_idle_w
    return False  # high trips are checked below with the step's own rate verdict, sensor_lost by time


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start_temp=st.floats(25.0, 62.0), ticks=st.lists(tick, min_size=1, max_size=12))
def test_trip_condition_means_trip_commands(start_temp, ticks):
    state = CTRL.initial_state(0.0)
    temp = start_temp
    for i, tk in enumerate(ticks):
        t = float(i)
        temp = min(max(temp + tk["dtemp"], 0.0), 90.0)
        readings = {n: Reading(float(v), SITE.points[n].unit, t) for n, v in GOOD.items()}
        readings["it_supply_temp"] = Reading(temp, "degC", t)
        readings["it_return_temp"] = Reading(temp + 8.0, "degC", t)
        readings["leak_cdu"] = Reading(float(tk["leak_cdu"]), "bool", t)
        readings["it_flow"] = Reading(tk["it_flow"], "m3/h", t)
        for s in range(1, 9):
            readings[f"srv{s}_power"] = Reading(tk["power"], "W", t)
        if tk["temp_fault"] == "lost":
            readings["it_supply_temp"] = Reading.lost("degC", t, "timeout")
        elif tk["temp_fault"] == "nan":
            readings["it_supply_temp"] = Reading(math.nan, "degC", t)
        elif tk["temp_fault"] == "bad":
            readings["it_supply_temp"] = Reading(temp, "degC", t, Quality.BAD, "status bad")
        if tk["leak_fault"] == "lost":
            readings["leak_rack"] = Reading.lost("bool", t, "timeout")
        forced = {r.trip for r in tk["requests"] if isinstance(r, TripTestRequest)}
        res = CTRL.step(state, Snapshot(t, readings), tk["requests"], t)
        state = res.state

        holding = {n for n in TRIPS if oracle(n, readings, forced)}
        # High trip: the reading the step accepted as good (rate check included) at/over the limit.
        ov = SITE.trips["it_overtemp"]
        c = res.checked["it_supply_temp"]
        if c.good and c.value >= ov.limit:
            holding.add("it_overtemp")
        for name in holding:
            assert state.trips[name].latched, f"tick {i}: {name} condition holds but not latched"
            for point, _ in SITE.trips[name].actions.items():
                cmd = res.commands[point]
                assert cmd.source is OutputSource.TRIP, f"tick {i}: {point} driven by {cmd.source} during {name}"
                # The first latched trip in config order that names this point decides its value.
                first = next(n for n in TRIPS if state.trips[n].latched and point in SITE.trips[n].actions)
                assert cmd.value == SITE.trips[first].actions[point]
        # And nothing else ever drives an actuator a latched trip names.
        for name in TRIPS:
            if state.trips[name].latched:
                for point in SITE.trips[name].actions:
                    assert res.commands[point].source is OutputSource.TRIP
