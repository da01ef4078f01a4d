"""The day scenarios, closed loop on simulated time: each mode entered and left for the right cause,
trips in the tick of their condition with their actions, safe_degrade on bad critical readings, and
the supply temperature settling after a load step. Long scenarios run at a 5 s tick to stay fast."""

from __future__ import annotations

import pytest

from simulations.plant.config import plant_config
from simulations.runners.closed_loop import run_scenario
from simulations.scenarios.definitions import SCENARIOS
from tests.step_helpers import reference_site

SITE = reference_site()


def modes_entered(k):
    return [(t, f["dest"], f["cause"]) for t, kind, _, f in k.timeline if kind == "mode_changed"]


def trips(k):
    return [(t, f) for t, kind, _, f in k.timeline if kind == "trip"]


def faults(k, action="inject"):
    return [t for t, kind, _, _ in k.timeline if kind == f"fault_{action}"]


def assert_trip_actions(k, name):
    fired = [(t, f) for t, f in trips(k) if f["trip"] == name]
    assert fired, f"trip {name} never fired"
    t, f = fired[0]
    for point, value in SITE.trips[name].actions.items():
        cmd_value, source = f["commands"][point]
        assert source == "trip"
        first = next(n for n, tr in SITE.trips.items() if point in tr.actions and n in
                     {g["trip"] for tt, g in trips(k) if tt <= t})
        assert cmd_value == SITE.trips[first].actions[point]
    return t


@pytest.mark.slow
def test_winter_day_stays_normal_and_reuses_most_heat():
    k, _ = run_scenario(SITE, SCENARIOS["winter-day"], tick_s=5.0)
    assert [m for _, m, _ in modes_entered(k)] == ["normal"]
    assert not k.trips
    assert k.hours_above_limit["it_overtemp"] == 0.0
    # The pool wants more than the servers give: nearly all captured heat is delivered.
    assert k.delivered_kwh > 0.9 * k.captured_kwh
    assert k.dumped_kwh < 0.02 * k.captured_kwh
    assert abs(k.energy_balance_error) < 0.005


@pytest.mark.slow
def test_summer_day_charges_the_tank_then_bypasses():
    k, trace = run_scenario(SITE, SCENARIOS["summer-day"], tick_s=5.0)
    entered = modes_entered(k)
    dests = [m for _, m, _ in entered]
    assert dests[:3] == ["normal", "buffer_charging", "bypass"]
    assert "heat available beyond demand" in entered[1][2]
    assert entered[2][2] == "buffer tank full"
    # The tank really filled before bypass, and the pool was kept near its setpoint throughout.
    i_bypass = next(i for i, m in enumerate(trace.mode) if m == "bypass")
    assert trace.tank_soc[i_bypass] >= SITE.modes.tank_full_soc - 0.02
    late = trace.consumer_supply_c[len(trace.consumer_supply_c) // 4:]
    assert max(late) < SITE.loops.consumer_supply.setpoint + 1.5
    assert k.dumped_kwh > 0.5 * k.captured_kwh  # nobody wants it: compute goes on, heat is dumped
    assert k.throttled_hours < 0.2 and not k.trips


@pytest.mark.slow
def test_consumer_offline_mid_day():
    k, trace = run_scenario(SITE, SCENARIOS["consumer-offline"], tick_s=5.0)
    entered = modes_entered(k)
    off, on = 10 * 3600, 16 * 3600
    during = [(t, m) for t, m, _ in entered if off <= t < on]
    assert during and during[0][1] == "buffer_charging"
    after = [(t, m) for t, m, _ in entered if t >= on]
    assert after and after[-1][1] == "normal"
    assert not k.trips and k.hours_above_limit["it_overtemp"] == 0.0


def test_pump_failure_trips_low_flow_in_the_same_tick():
    k, _ = run_scenario(SITE, SCENARIOS["pump-failure"])
    t_fault = faults(k)[0]
    t_trip = assert_trip_actions(k, "low_flow")
    assert t_fault <= t_trip <= t_fault + SITE.tick_period_s  # the first tick that sees no flow
    entered = modes_entered(k)
    assert ("safe_degrade" in [m for _, m, _ in entered])
    degrade = next((t, c) for t, m, c in entered if m == "safe_degrade")
    assert degrade[0] == t_trip and "low_flow" in degrade[1]
    # Repaired at 3 h, acknowledged at 3 h 10: back to normal after the exit dwell, not before.
    back = [t for t, m, _ in entered if m == "normal" and t > t_trip]
    assert back and back[0] >= 3 * 3600 + 600
    assert list(k.trips) == ["low_flow"]


def test_sensor_fault_goes_to_safe_degrade_and_trips_sensor_lost():
    k, trace = run_scenario(SITE, SCENARIOS["sensor-fault"])
    t_fault = faults(k)[0]
    entered = modes_entered(k)
    degrade = next((t, c) for t, m, c in entered if m == "safe_degrade")
    grace = SITE.modes.critical_grace_s
    assert t_fault + grace <= degrade[0] <= t_fault + grace + 2 * SITE.tick_period_s
    assert "it_supply_temp" in degrade[1]
    t_trip = assert_trip_actions(k, "sensor_lost")
    assert t_trip <= t_fault + SITE.trips["sensor_lost"].grace_s + 2 * SITE.tick_period_s
    # While blind, IT power is capped: never handed back while the sensor is bad.
    blind = [p for t, p in zip(trace.t_s, trace.power_cap_w) if t_fault + 60 <= t < 2.5 * 3600]
    assert blind and max(blind) <= SITE.power.safe_degrade_w
    assert [m for _, m, _ in entered][-1] == "normal"
    assert k.hours_above_limit["it_overtemp"] == 0.0


def test_leak_isolates_the_it_loop():
    k, _ = run_scenario(SITE, SCENARIOS["leak"])
    t_fault = faults(k)[0]
    t_trip = assert_trip_actions(k, "leak")
    assert t_fault <= t_trip <= t_fault + SITE.tick_period_s
    f = next(f for t, f in trips(k) if f["trip"] == "leak")
    assert f["commands"]["p1_speed"] == (0.0, "trip") and f["commands"]["p2_speed"] == (0.0, "trip")
    assert [m for _, m, _ in modes_entered(k)][-1] == "normal"
    # The servers capped by the trip, and after it until the cap loop has handed power back: all
    # of it counted as the safe state's (Kpis.throttled_safe_hours), none as control's.
    assert k.throttled_hours > 0.5 and k.throttled_safe_hours == k.throttled_hours


def test_supply_temperature_settles_after_a_50_percent_load_step():
    s = SCENARIOS["load-step"]
    k, trace = run_scenario(SITE, s, trace_every_s=10.0)
    sp = SITE.loops.consumer_supply.setpoint
    after = [c for t, c in zip(trace.t_s, trace.consumer_supply_c) if t >= s.expect["settle_after_h"] * 3600]
    assert after and max(abs(c - sp) for c in after) <= s.expect["settle_within_k"]
    # It was a real step: IT power rose by half of the servers' working range.
    before = [p for t, p in zip(trace.t_s, trace.it_power_w) if 1.5 * 3600 <= t < 2 * 3600]
    late = [p for t, p in zip(trace.t_s, trace.it_power_w) if t >= 3 * 3600]
    cfg = plant_config(SITE)
    assert min(late) - max(before) >= 0.49 * cfg.servers * (cfg.server_max_w - cfg.server_idle_w)
    assert not k.trips
