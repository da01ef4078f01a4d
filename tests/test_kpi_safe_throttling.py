"""Kpis.throttled_safe_hours (simulations.analysis.kpis.SafeThrottling): throttled time in a safe
state counts whole; a throttled stretch that goes on after it counts as the safe state's only while
a cap climbing at the cap loop's slew rate from where the safe state left it could not yet be back,
the rest as control's. Both sides, tick by tick on made-up ticks, and the closed loop's wiring (the
site's own slew rate and maximum)."""

from __future__ import annotations

import pytest

from simulations.analysis.kpis import SafeThrottling

RATE = 50.0  # W/s: the reference plant's power_cap rate_up_per_s
MAX = 40_000.0
DT = 60.0  # the year scenarios' tick
WANTED = 32_000.0


def feed(acc: SafeThrottling, ticks: list[tuple[bool, float]], wanted: float = WANTED,
         t0: float = 0.0) -> tuple[float, float]:
    """Ticks of (safe, cap): throttled when the cap is below what is wanted (as the plant loop, 1 W
    dead band). Returns (throttled s, safe throttled s) over these ticks."""
    throttled = 0.0
    before = acc.seconds
    for k, (safe, cap) in enumerate(ticks):
        th = cap < wanted - 1.0
        throttled += DT if th else 0.0
        acc.add(t0 + k * DT, DT, safe, th, cap, wanted)
    return throttled, acc.seconds - before


def trip_then(after: list[float]) -> list[tuple[bool, float]]:
    """Ten ticks in safe_degrade at the trip's 5 kW, then normal ticks with the caps `after`."""
    return [(True, 5000.0)] * 10 + [(False, c) for c in after]


def climb(from_w: float, to_w: float, rate: float = RATE) -> list[float]:
    """The cap climbing at `rate` one tick at a time from `from_w` until it reaches `to_w`."""
    caps, c = [], from_w
    while c < to_w:
        c = min(c + rate * DT, to_w)
        caps.append(c)
    return caps


def test_a_climb_at_the_slew_rate_is_the_safe_states_to_its_end():
    acc = SafeThrottling(RATE, MAX, safe_at_start=False)
    throttled, safe = feed(acc, trip_then(climb(5000.0, MAX)))
    # 10 safe ticks, then 8 climbing ticks below 32 kW (8, 11, ..., 29 kW at 3 kW a tick)
    assert throttled == (10 + 8) * DT
    assert safe == throttled


def test_a_cap_held_down_after_the_safe_state_counts_as_safe_only_for_the_climb():
    acc = SafeThrottling(RATE, MAX, safe_at_start=False)
    held = [20_000.0] * 30  # the cap loop keeps 20 kW for 30 minutes after the trip: control's
    throttled, safe = feed(acc, trip_then(held + climb(20_000.0, MAX)))
    assert throttled == (10 + 30 + 3) * DT  # 3: the final climb's 23, 26 and 29 kW
    # The climb from 5 kW at 3 kW a tick, starting at the end of the last safe tick, is below
    # 32 kW for 9 ticks (5, 8, ..., 29 kW): those count as the safe state's, the other 25 do not.
    assert safe == (10 + 9) * DT
    # The lenient rule this replaced counted all of it as the safe state's.
    assert safe < throttled


def test_once_the_climb_would_be_back_the_stretch_stays_controls():
    acc = SafeThrottling(RATE, MAX, safe_at_start=False)
    feed(acc, trip_then([20_000.0] * 12))  # past the 9 ticks' climb: carrying ends
    # The workload then asks for more than the climb line reached: still control's.
    throttled, safe = feed(acc, [(False, 20_000.0)] * 5, wanted=39_000.0, t0=22 * DT)
    assert throttled == 5 * DT and safe == 0.0


def test_a_tick_not_throttled_ends_the_carry_and_a_throttle_outside_a_safe_state_is_controls():
    acc = SafeThrottling(RATE, MAX, safe_at_start=False)
    feed(acc, trip_then([31_000.0, WANTED]))  # climbing, then back
    before = acc.seconds
    throttled, safe = feed(acc, [(False, 10_000.0)] * 3, t0=12 * DT)  # later, at 10 kW: control's
    assert throttled == 3 * DT and safe == 0.0 and acc.seconds == before


def test_a_run_starts_in_the_start_up_hold():
    # A run whose first ticks are not in a safe state (a baseline) climbs from its first tick's cap.
    acc = SafeThrottling(RATE, MAX)
    throttled, safe = feed(acc, [(False, c) for c in [5000.0] + climb(5000.0, MAX)])
    assert safe == throttled == 9 * DT  # 5, 8, ..., 29 kW
    acc = SafeThrottling(RATE, MAX)
    throttled, safe = feed(acc, [(False, 5000.0)] * 12)
    assert throttled == 12 * DT and safe == 9 * DT  # the climb from 5 kW would be back after 9 ticks


def test_the_climb_target_is_at_most_the_caps_maximum():
    acc = SafeThrottling(RATE, 20_000.0, safe_at_start=False)
    # Wanted above what the cap may ever give: the climb is back at the maximum (20 kW, 5 ticks).
    throttled, safe = feed(acc, trip_then([20_000.0] * 8), wanted=WANTED)
    assert throttled == 18 * DT and safe == (10 + 5) * DT


def test_restart_count_keeps_what_is_carried():
    acc = SafeThrottling(RATE, MAX, safe_at_start=False)
    feed(acc, trip_then([8_000.0]))  # in the climb at the end of a warm-up
    acc.restart_count()
    assert acc.seconds == 0.0
    _, safe = feed(acc, [(False, 11_000.0)], t0=11 * DT)
    assert safe == DT


def test_the_climb_rate_must_be_positive():
    with pytest.raises(ValueError, match="climb_w_per_s"):
        SafeThrottling(0.0, MAX)


def test_the_closed_loop_counts_with_the_sites_cap_slew_rate_and_maximum(monkeypatch):
    from simulations.runners import closed_loop
    from simulations.scenarios.definitions import SCENARIOS
    from tests.step_helpers import make_controller

    made = []

    class Recording(SafeThrottling):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

    monkeypatch.setattr(closed_loop, "SafeThrottling", Recording)
    site = make_controller().site
    k, _ = closed_loop.run_scenario(site, SCENARIOS["leak"], hours=0.05)
    (acc,) = made
    assert acc.climb_w_per_s == site.loops.power_cap.rate_up_per_s == 50.0
    assert acc.cap_max_w == site.power.max_w
    assert k.throttled_safe_hours == acc.seconds / 3600
