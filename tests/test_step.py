"""Per-tick tests of the control step on the reference plant: inputs at tick N, outputs at tick N.

Most tests are tables (tests/step_table.py): one row per tick, its readings (overrides of the good
operating point in tests/step_helpers.py) and requests, then the outputs, events, mode and trips
expected at that tick. Tests that need hundreds of ticks (dwell times, chatter) loop over a row.
"""

from __future__ import annotations

import math

import pytest

from controller.core.commands import OutputSource
from controller.core.modes import Mode
from controller.core.readings import Quality
from controller.core.requests import (AckTripRequest, ClearOverrideRequest, HoldRequest, ModeRequest,
                                 OverrideRequest, ReleaseRequest, TripTestRequest)
from tests.step_helpers import make_controller, snap
from tests.step_table import Tick, run_table

S = OutputSource


@pytest.fixture
def ctrl(ref_ctrl):
    return ref_ctrl  # the reference plant's controller, from tests/conftest.py


def started(ctrl, t=0.0):
    st = ctrl.initial_state(t)
    res = ctrl.step(st, snap(ctrl.site, t), [], t)
    assert res.state.mode is Mode.NORMAL
    return res.state


def kinds(res):
    return [e.kind for e in res.events]


def values(res):
    return {p: o.value for p, o in res.commands.items()}


def test_startup_holds_safe_state_until_complete_valid_snapshot(ctrl):
    safe_w = ctrl.site.power.safe_degrade_w
    run_table(ctrl, ctrl.initial_state(0.0), [
        # it_supply_temp missing: not a complete snapshot. The safe state holds; a missing reading
        # at start-up is the hold, not a trip.
        Tick(0, drop=("it_supply_temp",), mode=Mode.SAFE_DEGRADE, events=[],
             outputs={"boiler_enable": (1.0, S.STARTUP), "d1_fan": (100.0, S.STARTUP),
                      "p1_speed": (100.0, S.STARTUP), "power_cap": (safe_w, S.STARTUP)},
             latched={"sensor_lost": False}),
        Tick(1, mode=Mode.NORMAL, events=["reading_recovered", "mode_changed", "power_cap_start"],
             outputs={"boiler_enable": (0.0, S.AUTO)}),
    ])
    res = ctrl.step(ctrl.initial_state(0.0), snap(ctrl.site, 1.0), [], 1.0)
    assert res.events[-2].fields["cause"] == "first complete, valid snapshot"
    assert {o.source for p, o in res.commands.items()} == {S.AUTO}


def test_overtemp_trip_fires_in_the_same_tick_and_latches_until_ack(ctrl):
    st = started(ctrl)
    actions = ctrl.site.trips["it_overtemp"].actions
    # Ramp within the rate limit so the reading stays valid: 2 K/s is the configured max.
    temps = [37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 60.5]
    for i, temp in enumerate(temps, start=1):
        res = ctrl.step(st, snap(ctrl.site, i, it_supply_temp=temp, it_return_temp=temp + 8), [], float(i))
        st = res.state
        if temp < 59:
            assert not st.trips.get("it_overtemp") or not st.trips["it_overtemp"].latched
    assert "trip" in kinds(res)
    for point, value in actions.items():
        assert res.commands[point].value == value and res.commands[point].source is OutputSource.TRIP
    assert st.mode is Mode.SAFE_DEGRADE
    t = len(temps) + 1
    # Still hot: mode normal refused, with the reason.
    res = ctrl.step(st, snap(ctrl.site, t, it_supply_temp=60.0, it_return_temp=68.0),
                    [ModeRequest(reason="commissioning", mode=Mode.NORMAL)], float(t))
    st = res.state
    refused = [e for e in res.events if e.kind == "request_refused"]
    assert refused and "it_overtemp" in refused[0].fields["refusal"]
    assert st.mode is Mode.SAFE_DEGRADE
    # Condition clears (cool down inside the rate limit): the trip stays latched until ack.
    temp = 60.0
    while temp > 36:
        t += 1
        temp -= 2
        res = ctrl.step(st, snap(ctrl.site, t, it_supply_temp=temp, it_return_temp=temp + 8), [], float(t))
        st = res.state
    assert st.trips["it_overtemp"].latched and not st.trips["it_overtemp"].active
    assert res.commands["power_cap"].source is OutputSource.TRIP
    t += 1
    res = ctrl.step(st, snap(ctrl.site, t, it_supply_temp=35.0), [AckTripRequest(reason="checked pump", trip="it_overtemp")], float(t))
    st = res.state
    assert "trip_reset" in kinds(res) and not st.trips["it_overtemp"].latched
    assert res.commands["power_cap"].source is OutputSource.SAFE_DEGRADE
    # Leaving safe_degrade needs the exit dwell with every cause gone.
    dwell = ctrl.site.modes.safe_degrade_exit_dwell_s
    t0 = t
    while st.mode is Mode.SAFE_DEGRADE and t < t0 + dwell + 5:
        t += 1
        st = ctrl.step(st, snap(ctrl.site, t), [], float(t)).state
    assert st.mode is Mode.NORMAL
    assert t - t0 >= dwell - 15  # causes cleared during the cool-down, ~15 s before the ack


def test_first_listed_trip_wins_on_shared_actuators(ctrl):
    run_table(ctrl, started(ctrl), [
        # A leak and an over-temperature trip test in one tick: leak (listed first) stops P1;
        # it_overtemp would run it at 100 %. D1 is only it_overtemp's.
        Tick(1, {"leak_rack": 1}, requests=[TripTestRequest(reason="prove overtemp", trip="it_overtemp")],
             latched={"leak": True, "it_overtemp": True},
             outputs={"p1_speed": (0.0, S.TRIP), "d1_fan": (100.0, S.TRIP), "power_cap": (5000.0, S.TRIP)}),
    ])
    res = ctrl.step(started(ctrl), snap(ctrl.site, 1, leak_rack=1),
                    [TripTestRequest(reason="prove overtemp", trip="it_overtemp")], 1.0)
    assert res.commands["p1_speed"].why == "leak" and res.commands["d1_fan"].why == "it_overtemp"


def test_trip_test_latches_for_real_and_needs_ack(ctrl):
    run_table(ctrl, started(ctrl), [
        Tick(1, requests=[TripTestRequest(reason="SAT step 12", trip="low_flow")],
             has_events=["trip_test", "trip"], latched={"low_flow": True}, outputs={"power_cap": (5000.0, S.TRIP)}),
        Tick(2, events=["trip_clear"], latched={"low_flow": True}, outputs={"power_cap": (5000.0, S.TRIP)}),
        Tick(3, requests=[AckTripRequest(reason="proven", trip="low_flow")], has_events=["trip_acked", "trip_reset"],
             latched={"low_flow": False}),
    ])


def test_low_flow_needs_it_power_above_idle(ctrl):
    idle = {f"srv{i}_power": 600 for i in range(1, 9)}  # 4.8 kW < it_idle_w 6 kW
    run_table(ctrl, started(ctrl), [
        Tick(1, {"it_flow": 0.2, **idle}, latched={"low_flow": False}),
        Tick(2, {"it_flow": 0.2}, has_events=["trip"], latched={"low_flow": True}),  # 32 kW
    ])


@pytest.mark.parametrize("fault", ["lost", "nan", "out_of_range", "stale"])
def test_bad_critical_reading_goes_to_safe_degrade_then_sensor_lost(ctrl, fault):
    st = started(ctrl)
    grace = ctrl.site.modes.critical_grace_s
    trip_grace = ctrl.site.trips["sensor_lost"].grace_s
    cap_before = st.outputs["power_cap"]
    for t in range(1, int(trip_grace) + 3):
        s = snap(ctrl.site, t)
        r = dict(s.readings)
        old = r["it_supply_temp"]
        if fault == "lost":
            r["it_supply_temp"] = type(old)(None, "degC", t, Quality.LOST, "timeout")
        elif fault == "nan":
            r["it_supply_temp"] = type(old)(math.nan, "degC", t)
        elif fault == "out_of_range":
            r["it_supply_temp"] = type(old)(250.0, "degC", t)
        else:
            r["it_supply_temp"] = type(old)(35.0, "degC", -10.0)  # last refreshed 10 s before start
        res = ctrl.step(st, type(s)(t, r), [], float(t))
        st = res.state
        assert res.checked["it_supply_temp"].value is None  # never used as if good
        assert res.loops["power_cap"].held
        assert st.outputs["power_cap"] <= cap_before  # blind: power is never handed back
        bad_for = t - 1  # bad since tick 1
        assert (st.mode is Mode.SAFE_DEGRADE) == (bad_for >= grace)
        assert st.trips.get("sensor_lost", None) is not None
        assert st.trips["sensor_lost"].latched == (bad_for >= trip_grace)
    if fault == "stale":
        assert "stale" in res.checked["it_supply_temp"].reason


def test_rate_of_change_rejects_a_jump_once(ctrl):
    st = started(ctrl)
    res = ctrl.step(st, snap(ctrl.site, 1, b_return_temp=50.0), [], 1.0)
    assert res.checked["b_return_temp"].reason.startswith("rate")
    res = ctrl.step(res.state, snap(ctrl.site, 2, b_return_temp=50.5), [], 2.0)
    assert res.checked["b_return_temp"].good


def test_override_expires_and_trip_still_wins(ctrl):
    res = run_table(ctrl, started(ctrl), [
        Tick(1, requests=[OverrideRequest(reason="valve stroke test", point="v1_position", value=55.0, duration_s=3.0)],
             events=["override_set"], outputs={"v1_position": (55.0, S.OVERRIDE)}),
        Tick(2, requests=[OverrideRequest(reason="pump test", point="p1_speed", value=30.0, duration_s=60.0)],
             events=["override_set"], outputs={"v1_position": (55.0, S.OVERRIDE), "p1_speed": (30.0, S.OVERRIDE)}),
        # A trip beats the operator's override.
        Tick(3, {"it_supply_temp": 36.0}, requests=[TripTestRequest(reason="prove", trip="it_overtemp")],
             has_events=["trip"], outputs={"p1_speed": (100.0, S.TRIP)}),
        # The valve override's 3 s are up at t = 4.
        Tick(4, has_events=["override_expired"], outputs={"p1_speed": (100.0, S.TRIP)}),
    ])
    assert "v1_position" not in res.state.overrides and "p1_speed" in res.state.overrides


@pytest.mark.parametrize("req, words", [
    (OverrideRequest(reason="", point="v1_position", value=10, duration_s=10), "reason is required"),
    (OverrideRequest(reason="x", point="nope", value=10, duration_s=10), "unknown actuator"),
    (OverrideRequest(reason="x", point="it_supply_temp", value=10, duration_s=10), "unknown actuator"),
    (OverrideRequest(reason="x", point="v1_position", value=150, duration_s=10), "outside v1_position's range"),
    (OverrideRequest(reason="x", point="v1_position", value=10, duration_s=0), "every override expires"),
    (OverrideRequest(reason="x", point="v1_position", value=10, duration_s=1e6), "every override expires"),
    (OverrideRequest(reason="x", point="heartbeat", value=1, duration_s=10), "heartbeat cannot be overridden"),
    (AckTripRequest(reason="x", trip="nope"), "unknown trip"),
    (HoldRequest(reason=" "), "reason is required"),
])
def test_bad_requests_are_refused_with_a_reason(ctrl, req, words):
    st = started(ctrl)
    res = ctrl.step(st, snap(ctrl.site, 1), [req], 1.0)
    refused = [e for e in res.events if e.kind == "request_refused"]
    assert len(refused) == 1 and words in refused[0].fields["refusal"]
    assert res.state.overrides == st.overrides


def test_operator_steps_through_modes_and_releases(ctrl):
    st = started(ctrl)
    t = 1
    for mode in (Mode.BUFFER_CHARGING, Mode.BYPASS, Mode.SAFE_DEGRADE, Mode.NORMAL):
        res = ctrl.step(st, snap(ctrl.site, t), [ModeRequest(reason="SAT", mode=mode)], float(t))
        st = res.state
        assert st.mode is mode and st.held
        t += 1
    # Held in bypass: a big surplus does not move it after the dwell.
    res = ctrl.step(st, snap(ctrl.site, t), [ModeRequest(reason="SAT", mode=Mode.BYPASS)], float(t))
    st = res.state
    for t in range(t + 1, t + 400):
        st = ctrl.step(st, snap(ctrl.site, t, consumer_demand=0.0), [], float(t)).state
    assert st.mode is Mode.BYPASS
    st = ctrl.step(st, snap(ctrl.site, t + 1, consumer_demand=60000.0), [ReleaseRequest(reason="done")], float(t + 1)).state
    assert not st.held
    st = ctrl.step(st, snap(ctrl.site, t + 2, consumer_demand=60000.0), [], float(t + 2)).state
    assert st.mode is Mode.NORMAL  # deficit: demand beyond the captured heat


def test_fault_ends_a_hold(ctrl):
    run_table(ctrl, started(ctrl), [
        Tick(1, requests=[HoldRequest(reason="tuning")], events=["request_accepted"], held=True, mode=Mode.NORMAL),
        Tick(2, {"leak_cdu": 1}, has_events=["trip", "mode_changed"], held=False, mode=Mode.SAFE_DEGRADE),
    ])


def test_automatic_transitions_respect_dwell_and_hysteresis(ctrl):
    st = started(ctrl)
    dwell = ctrl.site.modes.min_dwell_s
    # Captured heat ~27.6 kW (3 m3/h x 8 K); demand 20 kW: surplus 7.6 kW > 3 kW enter threshold.
    changes = []
    for t in range(1, int(dwell) + 30):
        res = ctrl.step(st, snap(ctrl.site, t, consumer_demand=20000.0), [], float(t))
        st = res.state
        changes += [(t, e.fields["dest"]) for e in res.events if e.kind == "mode_changed"]
    assert changes and changes[0][1] == "buffer_charging" and changes[0][0] >= dwell
    # Demand now in the hysteresis band (surplus -1 kW: above exit -2 kW): stays put forever.
    for t in range(t + 1, t + 2 * int(dwell)):
        res = ctrl.step(st, snap(ctrl.site, t, consumer_demand=28600.0), [], float(t))
        st = res.state
        assert st.mode is Mode.BUFFER_CHARGING
    # Clear deficit: back to normal, once.
    for t in range(t + 1, t + int(dwell)):
        st = ctrl.step(st, snap(ctrl.site, t, consumer_demand=40000.0), [], float(t)).state
    assert st.mode is Mode.NORMAL


def test_tank_full_sends_buffer_charging_to_bypass(ctrl):
    st = started(ctrl)
    st = ctrl.step(st, snap(ctrl.site, 1, consumer_available=0), [ModeRequest(reason="t", mode=Mode.BUFFER_CHARGING)], 1.0).state
    st = ctrl.step(st, snap(ctrl.site, 2, consumer_available=0), [ReleaseRequest(reason="t")], 2.0).state
    res = None
    for t in range(3, 400):
        res = ctrl.step(st, snap(ctrl.site, t, consumer_available=0, tank_top_temp=56.0, tank_bottom_temp=54.5), [], float(t))
        st = res.state
    assert st.mode is Mode.BYPASS
    assert res.commands["p3_speed"].value == 0.0


def test_consumer_offline_charges_tank_without_discharging(ctrl):
    run_table(ctrl, started(ctrl), [
        # Offline and cold: all recovered heat to the tank (V1 open), no discharge, no boiler.
        Tick(1, {"consumer_available": 0, "consumer_supply_temp": 20.0},
             outputs={"v1_position": (100.0, S.AUTO), "p3_speed": (0.0, S.AUTO), "boiler_enable": (0.0, S.AUTO)}),
    ])


def test_heartbeat_increments_and_wraps(ctrl):
    st = started(ctrl)
    hb = [st.heartbeat]
    for t in range(1, 4):
        st = ctrl.step(st, snap(ctrl.site, t), [], float(t)).state
        hb.append(st.heartbeat)
    assert hb == [hb[0], hb[0] + 1, hb[0] + 2, hb[0] + 3]
    from dataclasses import replace
    st = replace(st, heartbeat=65535)
    assert ctrl.step(st, snap(ctrl.site, 9), [], 9.0).state.heartbeat == 0


def test_override_release_is_bumpless(ctrl):
    st = started(ctrl)
    for t in range(1, 60):
        st = ctrl.step(st, snap(ctrl.site, t, it_return_temp=45.0), [], float(t)).state
    st = ctrl.step(st, snap(ctrl.site, 60, it_return_temp=45.0), [OverrideRequest(reason="x", point="p1_speed", value=40.0, duration_s=100)], 60.0).state
    for t in range(61, 100):
        st = ctrl.step(st, snap(ctrl.site, t, it_return_temp=45.0), [], float(t)).state
    assert st.outputs["p1_speed"] == 40.0
    res = ctrl.step(st, snap(ctrl.site, 100, it_return_temp=45.0), [ClearOverrideRequest(reason="x", point="p1_speed")], 100.0)
    # Back in automatic from 40 %: the first automatic output moves by at most one slew step.
    assert abs(res.commands["p1_speed"].value - 40.0) <= ctrl.site.loops.it_delta_t.rate_up_per_s * 1.0 + 1e-9


def test_step_is_deterministic(ctrl):
    def trace():
        st = ctrl.initial_state(0.0)
        out = []
        for t in range(0, 200):
            temp = 35 + 5 * math.sin(t / 20)
            res = ctrl.step(st, snap(ctrl.site, t, it_supply_temp=temp, consumer_demand=20000 + 100 * t),
                            [OverrideRequest(reason="x", point="d1_fan", value=20, duration_s=5)] if t == 50 else [],
                            float(t))
            st = res.state
            out.append((tuple(sorted(values(res).items())), st.mode, tuple(e.message for e in res.events)))
        return out, st.energy
    assert trace() == trace()


def test_policy_changes_setpoints_not_trip_limits():
    from controller.site.loader import parse_config_text
    from controller.core.step import Controller
    from tests.step_helpers import REFERENCE
    text = REFERENCE.read_text().replace("policy: compute_first", "policy: heat_first")
    heat = Controller(parse_config_text(text, "heat.yaml").site)
    comp = make_controller()
    for c in (heat, comp):
        st = c.initial_state(0.0)
        res = c.step(st, snap(c.site, 0), [], 0.0)
        res = c.step(res.state, snap(c.site, 1), [], 1.0)
        c._last = res
    assert heat._last.loops["power_cap"].setpoint == 54.0
    assert comp._last.loops["power_cap"].setpoint == 52.0
    assert heat._last.loops["it_delta_t"].setpoint == 10.0
    assert heat.site.trips == comp.site.trips


def test_consumer_unseen_enables_the_boiler_but_offline_does_not(ctrl):
    run_table(ctrl, started(ctrl), [
        # The consumer's BMS link is lost: availability unknown -> the boiler is enabled (fail warm).
        Tick(1, bad={"consumer_available": Quality.LOST, "consumer_supply_temp": Quality.LOST},
             outputs={"boiler_enable": (1.0, S.AUTO), "p3_speed": (0.0, S.AUTO)}),
        # The consumer says it is offline: no boiler from us.
        Tick(2, {"consumer_available": 0, "consumer_supply_temp": 30.0}, outputs={"boiler_enable": (0.0, S.AUTO)}),
    ])


def test_boiler_does_not_chatter(ctrl):
    st = started(ctrl)
    sp = ctrl.site.loops.consumer_supply.setpoint
    on_below = ctrl.site.policy.compute_first.boiler_on_below_k
    switches, last = 0, st.outputs["boiler_enable"]
    for t in range(1, 1801):
        # The consumer supply swings 1.6 K across both switch points every 20 s.
        t_c = sp - on_below + (1.3 if (t // 10) % 2 else -0.3)
        res = ctrl.step(st, snap(ctrl.site, t, consumer_supply_temp=t_c), [], float(t))
        st = res.state
        v = res.commands["boiler_enable"].value
        if last is not None and v != last:
            switches += 1
        last = v
    # 30 minutes: at most one switch per boiler_min_switch_s (600 s), whatever the ripple.
    assert 1 <= switches <= 1800 // ctrl.site.outputs.boiler_min_switch_s + 1


def test_safe_degrade_dump_runs_its_loop_while_the_return_is_seen_and_flat_out_when_blind(ctrl):
    st = started(ctrl)
    st = ctrl.step(st, snap(ctrl.site, 1), [ModeRequest(reason="drill", mode=Mode.SAFE_DEGRADE)], 1.0).state
    # A cool building return (25 degC, far below the safe_degrade dump setpoint): the fan winds down.
    for t in range(2, 40):
        res = ctrl.step(st, snap(ctrl.site, t, b_return_temp=25.0), [], float(t))
        st = res.state
    assert res.commands["d1_fan"].source is OutputSource.SAFE_DEGRADE
    assert res.commands["d1_fan"].value < 50.0
    assert res.commands["power_cap"].value <= ctrl.site.power.safe_degrade_w
    # The return reading is lost: flat out at once.
    res = ctrl.step(st, snap(ctrl.site, 40, bad={"b_return_temp": Quality.LOST}), [], 40.0)
    assert res.commands["d1_fan"].value == 100.0
    assert res.commands["d1_fan"].source is OutputSource.SAFE_DEGRADE
