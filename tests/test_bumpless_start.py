"""A bumpless start of the power cap loop (issue 13): when the start-up hold ends on a snapshot that
shows the IT loop inside its limits, the cap loop starts from what the BMCs held or what the IT
load draws, not from the safe_degrade cap it would then hand back at 50 W/s for minutes.

Per-tick tables on the reference plant (compute_first: cap target 52 degC, safe_degrade cap 16 kW,
rate up 50 W/s), fake clock.
"""

from __future__ import annotations

import dataclasses

import pytest

from controller.core.commands import OutputSource as S
from controller.core.modes import Mode
from tests.step_helpers import snap
from tests.step_table import Tick, run_table

SAFE_W = 16000.0
RATE_UP = 50.0


@pytest.fixture
def ctrl(ref_ctrl):
    assert ref_ctrl.site.power.safe_degrade_w == SAFE_W
    assert ref_ctrl.site.loops.power_cap.rate_up_per_s == RATE_UP
    return ref_ctrl


def servers(*watts):
    return {f"srv{i + 1}_power": w for i, w in enumerate(watts)}


def start(ctrl, readings, before_start=None, hold_first=True):
    """Tick 0 (optional): the start-up hold on an incomplete snapshot; tick 1: the first complete,
    valid one. Returns tick 1's StepResult."""
    st = dataclasses.replace(ctrl.initial_state(0.0), cap_before_start=before_start)
    if hold_first:
        st = ctrl.step(st, snap(ctrl.site, 0, drop=("it_supply_temp",), **readings), [], 0.0).state
        assert st.mode is Mode.SAFE_DEGRADE and not st.started
    return ctrl.step(st, snap(ctrl.site, 1, **readings), [], 1.0)


def start_event(res):
    (ev,) = [e for e in res.events if e.kind == "power_cap_start"]
    return ev


@pytest.mark.parametrize("name, readings, before, expect", [
    # 8 x 4 kW, the BMCs read back the start-up safe state's 16 kW: from the measured IT power.
    ("measured IT power", {**servers(*[4000] * 8), "power_cap": SAFE_W}, None, 32000.0),
    # No limit active on any BMC (a fresh start): the read-back is 8 x max_power_w, the cap's max.
    ("uncapped BMCs", {**servers(*[2000] * 8), "power_cap": 40000.0}, None, 40000.0),
    # The limits the last run left on the BMCs, read before the start-up safe state capped them.
    ("limits before the start", {**servers(*[2500] * 8), "power_cap": SAFE_W}, 30000.0, 30000.0),
    # An uneven load: a cap at the sum (12 kW) would throttle srv1 to its 1.5 kW share.
    ("busiest server", {**servers(5000, *[1000] * 7), "power_cap": SAFE_W}, None, 40000.0),
    # A light load never starts the loop below the safe_degrade cap it held.
    ("never below the safe cap", {**servers(*[1000] * 8), "power_cap": SAFE_W}, None, SAFE_W),
])
def test_inside_its_limits_the_cap_loop_starts_where_the_it_load_is(ctrl, name, readings, before, expect):
    res = start(ctrl, readings, before)
    assert res.state.mode is Mode.NORMAL
    cap = res.commands["power_cap"]
    # This tick already slews up from the start value (the IT supply is far below the target).
    assert cap.source is S.AUTO
    assert expect <= cap.value <= min(expect + RATE_UP * 1.0, 40000.0), name
    ev = start_event(res)
    assert ev.fields["bumpless"] is True and ev.fields["value"] == expect
    assert ev.message.startswith(f"bumpless start: the power cap loop starts at {expect:.0f} W")


def test_the_first_tick_itself_may_be_the_start(ctrl):
    res = start(ctrl, {**servers(*[4000] * 8), "power_cap": SAFE_W}, hold_first=False)
    assert res.commands["power_cap"].value == 32000.0  # dt = 0: no slew yet


def test_the_start_up_hold_keeps_the_safe_cap_until_the_snapshot_is_complete(ctrl):
    run_table(ctrl, ctrl.initial_state(0.0), [
        Tick(t, drop=("it_supply_temp",), readings={**servers(*[4000] * 8), "power_cap": 40000.0},
             mode=Mode.SAFE_DEGRADE, outputs={"power_cap": (SAFE_W, S.STARTUP)})
        for t in range(5)])


@pytest.mark.parametrize("it_supply, mode", [
    (53.0, Mode.NORMAL),            # above the 52 degC cap target, below the trip's near band
    (59.5, Mode.SAFE_DEGRADE),      # within limit_near_k of the 60 degC trip: a safe_degrade cause
])
def test_out_of_its_limits_the_cap_loop_starts_safe(ctrl, it_supply, mode):
    res = start(ctrl, {**servers(*[4000] * 8), "power_cap": 40000.0, "it_supply_temp": it_supply,
                       "it_return_temp": it_supply + 6}, before_start=40000.0)
    assert res.state.mode is mode
    assert res.commands["power_cap"].value <= SAFE_W
    if mode is Mode.NORMAL:
        ev = start_event(res)
        assert ev.fields["bumpless"] is False and ev.fields["value"] is None
        assert "not below the cap target 52 degC" in ev.message
    else:
        assert not [e for e in res.events if e.kind == "power_cap_start"]


def test_without_the_read_back_or_every_servers_power_it_starts_safe(ctrl):
    from controller.core.readings import Quality
    st = ctrl.initial_state(0.0)
    res = ctrl.step(st, snap(ctrl.site, 0, bad={"srv3_power": Quality.LOST}), [], 0.0)
    assert res.state.mode is Mode.NORMAL  # server power is not critical
    assert res.commands["power_cap"].value == SAFE_W
    assert "neither the BMCs' read-back cap nor every server's power" in start_event(res).message


def test_only_the_end_of_the_start_up_hold_starts_bumplessly(ctrl):
    # A later recovery from safe_degrade hands power back at the loop's rate, as ever.
    res = start(ctrl, {**servers(*[4000] * 8), "power_cap": SAFE_W})
    st = res.state
    st = ctrl.step(st, snap(ctrl.site, 2, bms_fallback=1), [], 2.0).state
    assert st.mode is Mode.SAFE_DEGRADE
    t, res = 3, None
    while st.mode is Mode.SAFE_DEGRADE:
        res = ctrl.step(st, snap(ctrl.site, t, power_cap=40000.0), [], float(t))
        st, t = res.state, t + 1
    assert not [e for e in res.events if e.kind == "power_cap_start"]
    assert res.commands["power_cap"].value <= SAFE_W + RATE_UP
    assert st.cap_before_start is None
