"""The step's contracts with the daemon: request ids echoed on every answer, and applied outputs
(what the drivers verified the last write did) folded into the loops' tracking."""

from __future__ import annotations

import pytest

from controller.core.modes import Mode
from controller.core.requests import (AckTripRequest, ClearOverrideRequest, HoldRequest, ModeRequest,
                                      OverrideRequest, ReleaseRequest, TripTestRequest)
from tests.step_helpers import snap


@pytest.fixture
def ctrl(ref_ctrl):
    return ref_ctrl  # the reference plant's controller, from tests/conftest.py


def started(ctrl):
    res = ctrl.step(ctrl.initial_state(0.0), snap(ctrl.site, 0.0), [], 0.0)
    assert res.state.mode is Mode.NORMAL
    return res.state


# One row per request: the request, the event kinds the step answers it with (all must carry its id).
ROWS = [
    (OverrideRequest(reason="test", point="d1_fan", value=40.0, duration_s=60.0, request_id=11), {"override_set"}),
    (OverrideRequest(reason="test", point="d1_fan", value=400.0, duration_s=60.0, request_id=12), {"request_refused"}),
    (OverrideRequest(reason=" ", point="d1_fan", value=40.0, duration_s=60.0, request_id=13), {"request_refused"}),
    (ClearOverrideRequest(reason="test", point="d1_fan", request_id=14), {"override_cleared"}),
    (AckTripRequest(reason="test", trip="it_overtemp", request_id=15), {"request_refused"}),
    (TripTestRequest(reason="proof test", trip="leak", request_id=16), {"trip_test"}),
    (ModeRequest(reason="commissioning", mode=Mode.BYPASS, request_id=17), {"mode_changed", "request_accepted"}),
    (ModeRequest(reason="commissioning", mode=Mode.NORMAL, request_id=18), {"request_accepted"}),
    (HoldRequest(reason="test", request_id=19), {"request_accepted"}),
    (ReleaseRequest(reason="test", request_id=20), {"request_accepted"}),
]


@pytest.mark.parametrize("req,answers", ROWS, ids=[f"{type(r).__name__}-{r.request_id}" for r, _ in ROWS])
def test_every_answer_to_a_request_carries_its_id(ctrl, req, answers):
    st = started(ctrl)
    res = ctrl.step(st, snap(ctrl.site, 1.0), [req], 1.0)
    mine = [e for e in res.events if e.fields.get("request_id") == req.request_id]
    assert {e.kind for e in mine} == answers
    # Events not answering a request (a trip the trip test caused, say) carry no request id.
    others = [e for e in res.events if e not in mine]
    assert all("request_id" not in e.fields for e in others)


def test_two_requests_in_one_tick_are_told_apart_by_id(ctrl):
    st = started(ctrl)
    a = OverrideRequest(reason="a", point="d1_fan", value=40.0, duration_s=60.0, request_id=1)
    b = OverrideRequest(reason="b", point="d1_fan", value=40.0, duration_s=60.0, request_id=2)
    res = ctrl.step(st, snap(ctrl.site, 1.0), [a, b], 1.0)
    assert [(e.kind, e.fields["request_id"]) for e in res.events] == [("override_set", 1), ("override_set", 2)]


def test_request_id_defaults_to_zero():
    assert HoldRequest(reason="x").request_id == 0


def _loop_after(ctrl, st, t, applied):
    res = ctrl.step(st, snap(ctrl.site, t, it_return_temp=48.0), [], t, applied_outputs=applied)
    return res


# Per-tick table: the IT dT loop (P1) at 13 K against its 8 K setpoint wants more pump. At tick 1
# P1 is commanded 80 %; the drivers report what tick 1's write applied at tick 2.
#   applied at tick 2      P1's slew starts from   the integral tracks
#   None (unknown)         80 (commanded)          80 - P - D
#   {"p1_speed": 50.0}     50 (applied)            50 - P - D
def test_the_loop_tracks_the_applied_output_not_the_commanded_one(ctrl):
    st = started(ctrl)
    ov = OverrideRequest(reason="hold P1 at 80", point="p1_speed", value=80.0, duration_s=1.0)
    res1 = ctrl.step(st, snap(ctrl.site, 1.0, it_return_temp=48.0), [ov], 1.0)
    assert res1.commands["p1_speed"].value == 80.0
    assert res1.state.loops["it_delta_t"].output == 80.0  # tracked to the commanded value
    # Tick 2: the override has expired; the loop runs from where the pump is.
    assumed = _loop_after(ctrl, res1.state, 2.0, None)
    known = _loop_after(ctrl, res1.state, 2.0, {"p1_speed": 50.0})
    same = _loop_after(ctrl, res1.state, 2.0, {"p1_speed": 80.0})
    rate = ctrl.site.loops.it_delta_t.rate_up_per_s
    lr_assumed, lr_known = assumed.loops["it_delta_t"], known.loops["it_delta_t"]
    # The slew limit starts from the applied value: at most `rate` above 50, not above 80.
    assert lr_assumed.output > 80.0
    assert 50.0 < lr_known.output <= 50.0 + rate * 1.0 + 1e-9
    # The PID's integral was tracked to the applied 50 %: P + I + D = 50 before this tick's update,
    # so this tick's raw output is ~30 % lower than with 80 % assumed.
    assert lr_known.i == pytest.approx(lr_assumed.i - 30.0, abs=1e-6)
    # Applied equal to commanded changes nothing.
    assert same.loops["it_delta_t"] == lr_assumed
    assert same.commands == assumed.commands
    # The input state is never mutated (the step is pure): re-running gives the same answer.
    again = _loop_after(ctrl, res1.state, 2.0, None)
    assert again.loops["it_delta_t"] == lr_assumed


def test_applied_valve_and_discharge_pump_fold_into_the_consumer_loop(ctrl):
    st = started(ctrl)
    cmd_v1 = st.outputs["v1_position"]
    res = ctrl.step(st, snap(ctrl.site, 1.0), [], 1.0, applied_outputs={"v1_position": cmd_v1 + 10.0})
    plain = ctrl.step(st, snap(ctrl.site, 1.0), [], 1.0)
    # The consumer loop's internal output is V1 - P3; only V1 was verified: P3's command stands.
    assert res.loops["consumer_supply"].i != plain.loops["consumer_supply"].i
    # Loops whose points were not reported are untouched.
    for name in ("it_delta_t", "dump", "power_cap"):
        assert res.loops[name] == plain.loops[name]
