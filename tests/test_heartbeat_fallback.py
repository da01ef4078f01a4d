"""The plant's own word on fallback and the heartbeat's read-back, in the pure step (issue 13).

A BMS that says it runs on its fallback while heatctl believes it controls, and a heartbeat that
does not read back counting, are each a safe_degrade cause, an event and an alarm. Per-tick
tables on the reference plant, on a fake clock; `applied_outputs` plays the drivers' verified
read-backs (controller.core.heartbeat).
"""

from __future__ import annotations

import pytest

from controller.core.alarms import Alarms
from controller.core.commands import OutputSource as S
from controller.core.heartbeat import HeartbeatCheck, check
from controller.core.modes import Mode
from controller.core.state import STARTUP_CAUSE
from controller.core.step import Controller
from controller.site.loader import load_config
from tests.step_helpers import REFERENCE, reference_site, snap

SAFE = {"p1_speed": 100.0, "p2_speed": 100.0, "d1_fan": 100.0, "boiler_enable": 1.0}


@pytest.fixture
def ctrl(ref_ctrl):
    return ref_ctrl


def _steps(ctrl, state, t0, n, readback=lambda cmd, t: cmd, readings=None, applied=None):
    """n ticks from t0 (1 s apart); the heartbeat's read-back is readback(commanded, t) (None:
    not verified). Returns the list of StepResults."""
    out = []
    for t in range(t0, t0 + n):
        res = ctrl.step(state, snap(ctrl.site, t, **(readings or {})), [], float(t), applied_outputs=applied)
        out.append(res)
        state = res.state
        applied = {p: o.value for p, o in res.commands.items()}
        rb = readback(applied["heartbeat"], t)
        if rb is None:
            del applied["heartbeat"]
        else:
            applied["heartbeat"] = rb
    return out


def started_normal(ctrl, t=0):
    res = _steps(ctrl, ctrl.initial_state(float(t)), t, 3)
    assert res[-1].state.mode is Mode.NORMAL and not res[-1].state.heartbeat_check.fault
    return res[-1]


def _applied(res):
    return {p: o.value for p, o in res.commands.items()}


# --- the heartbeat ------------------------------------------------------------------------------

def test_a_heartbeat_that_reads_back_counting_is_never_a_fault(ctrl):
    last = started_normal(ctrl)
    res = _steps(ctrl, last.state, 3, 60, applied=_applied(last))
    assert all(r.state.mode is Mode.NORMAL for r in res)
    assert not any(e.kind == "heartbeat_fault" for r in res for e in r.events)
    assert res[-1].state.heartbeat_check.verified_at == 62.0


def test_a_heartbeat_range_the_register_flattens_is_a_fault_and_safe_degrade():
    # The mutant: a heartbeat range of [0, 0.5] makes every heartbeat 0. The write reads
    # back exactly what was written (0), so only "does it count" can see it.
    site = reference_site()
    hb = site.points["heartbeat"].model_copy(update={"range": (0.0, 0.5)})
    ctrl = Controller(site.model_copy(update={"points": {**site.points, "heartbeat": hb}}))
    res = _steps(ctrl, ctrl.initial_state(0.0), 0, 12)
    assert {r.commands["heartbeat"].value for r in res} == {0.0}
    grace = ctrl._hb_grace_s
    for r in res:
        t = r.state.last_now
        if t < 1 + grace:  # verification begins on the second tick (the first write's read-back)
            assert not r.state.heartbeat_check.fault, t
            continue
        assert "reads back 0, unchanged" in r.state.heartbeat_check.fault, t
        assert r.state.mode is Mode.SAFE_DEGRADE, t
        assert any("heartbeat point heartbeat" in c for c in r.state.degrade_causes)
        for point, value in SAFE.items():
            assert r.commands[point].value == value and r.commands[point].source is S.SAFE_DEGRADE
    first = next(r for r in res if r.state.heartbeat_check.fault)
    assert [e.kind for e in first.events] == ["heartbeat_fault", "mode_changed"]
    assert first.state.last_now == 1 + grace


@pytest.mark.parametrize("readback, expect", [
    (lambda cmd, t: 0.0, "wrote {cmd:g}, reads back 0"),             # a register that keeps 0
    (lambda cmd, t: None, "no verified read-back for"),               # the write fails every tick
])
def test_a_heartbeat_that_does_not_read_back_is_a_fault(ctrl, readback, expect):
    last = started_normal(ctrl)
    res = _steps(ctrl, last.state, 3, 10, readback=readback, applied=_applied(last))
    faulted = [r for r in res if r.state.heartbeat_check.fault]
    # The write of t=2 was verified at t=3, the last good read-back.
    assert faulted and faulted[0].state.last_now == 3 + ctrl._hb_grace_s
    cmd = faulted[0].state.outputs["heartbeat"] - 1  # the value written in the tick before
    assert expect.format(cmd=cmd) in faulted[0].state.heartbeat_check.fault
    assert all(r.state.mode is Mode.SAFE_DEGRADE for r in faulted)


def test_one_lost_heartbeat_write_within_the_grace_is_no_fault(ctrl):
    last = started_normal(ctrl)
    lost = {5.0, 6.0}
    res = _steps(ctrl, last.state, 3, 20, readback=lambda cmd, t: None if t in lost else cmd,
                 applied=_applied(last))
    assert all(r.state.mode is Mode.NORMAL and not r.state.heartbeat_check.fault for r in res)


def test_the_heartbeat_recovers_and_the_mode_follows_after_the_exit_dwell(ctrl):
    last = started_normal(ctrl)
    res = _steps(ctrl, last.state, 3, 10, readback=lambda cmd, t: 0.0, applied=_applied(last))
    assert res[-1].state.heartbeat_check.fault
    dwell = ctrl.site.modes.safe_degrade_exit_dwell_s
    back = _steps(ctrl, res[-1].state, 13, int(dwell) + 3, applied=_applied(res[-1]))
    assert [e.kind for e in back[0].events] == ["heartbeat_ok"]
    assert not back[0].state.heartbeat_check.fault
    normal = [r for r in back if r.state.mode is Mode.NORMAL]
    assert normal and normal[0].state.last_now == 13 + dwell


def test_without_verified_read_backs_the_heartbeat_is_not_judged(ctrl):
    # A caller with no drivers that verify (the closed-loop simulation) passes no applied_outputs.
    st = ctrl.initial_state(0.0)
    for t in range(30):
        st = ctrl.step(st, snap(ctrl.site, t), [], float(t)).state
    assert st.heartbeat_check == HeartbeatCheck() and st.mode is Mode.NORMAL


def test_check_is_pure_and_names_the_point():
    hb = check(HeartbeatCheck(), "hb", None, {}, 0.0, 2.0)
    assert hb == HeartbeatCheck(None, 0.0, "")
    hb = check(hb, "hb", 1.0, {"hb": 1.0}, 1.0, 2.0)
    assert hb == HeartbeatCheck(1.0, 1.0, "")
    assert check(hb, "hb", 2.0, {"hb": 1.0}, 2.5, 2.0) is hb  # within the grace: unchanged
    assert check(hb, "hb", 2.0, {"hb": 1.0}, 3.0, 2.0).fault == "heartbeat point hb: wrote 2, reads back 1"
    assert check(hb, "hb", 2.0, None, 99.0, 2.0) is hb


# --- the BMS's own word on fallback ------------------------------------------------------------

def test_the_bms_on_fallback_while_heatctl_controls_is_safe_degrade_in_the_same_tick(ctrl):
    last = started_normal(ctrl)
    res = _steps(ctrl, last.state, 3, 3, readings={"bms_fallback": 1}, applied=_applied(last))
    first = res[0]
    assert [e.kind for e in first.events] == ["bms_fallback", "mode_changed"]
    assert first.state.mode is Mode.SAFE_DEGRADE and first.state.bms_fallback
    assert "bms_fallback: the BMS runs on its own fallback" in first.state.mode_cause
    for r in res:
        assert r.state.mode is Mode.SAFE_DEGRADE
        for point, value in SAFE.items():
            assert r.commands[point].value == value and r.commands[point].source is S.SAFE_DEGRADE
    dwell = ctrl.site.modes.safe_degrade_exit_dwell_s
    back = _steps(ctrl, res[-1].state, 6, int(dwell) + 2, applied=_applied(res[-1]))
    assert back[0].events[0].kind == "bms_fallback_ended" and not back[0].state.bms_fallback
    normal = [r for r in back if r.state.mode is Mode.NORMAL]
    assert normal and normal[0].state.last_now == 6 + dwell


def test_at_start_up_the_hold_lasts_while_the_bms_still_runs_on_its_fallback(ctrl):
    # The daemon was not there: the BMS fell back. The start-up safe state holds while it says
    # so, and the first snapshot without it ends the hold (start-up is no fault: no exit dwell).
    res = _steps(ctrl, ctrl.initial_state(0.0), 0, 3, readings={"bms_fallback": 1})
    for r in res:
        assert r.state.mode is Mode.SAFE_DEGRADE and r.state.mode_cause == STARTUP_CAUSE
        assert r.state.started and any("fallback" in c for c in r.state.degrade_causes)
        assert r.commands["p1_speed"].value == 100.0 and r.commands["boiler_enable"].value == 1.0
    nxt = _steps(ctrl, res[-1].state, 3, 1, applied=_applied(res[-1]))[0]
    assert [e.kind for e in nxt.events] == ["bms_fallback_ended", "mode_changed", "power_cap_start"]
    assert nxt.state.mode is Mode.NORMAL
    assert nxt.events[1].fields["cause"] == "first complete, valid snapshot"


def test_a_bad_fallback_reading_is_not_taken_for_the_bms_word(ctrl):
    from controller.core.readings import Quality
    last = started_normal(ctrl)
    res = ctrl.step(last.state, snap(ctrl.site, 3, bms_fallback=1, bad={"bms_fallback": Quality.LOST}), [], 3.0,
                    applied_outputs=_applied(last))
    assert res.state.mode is Mode.NORMAL and not res.state.bms_fallback


def test_while_the_fallback_reading_is_bad_the_bms_last_word_stands(ctrl):
    from controller.core.readings import Quality
    last = started_normal(ctrl)
    res = _steps(ctrl, last.state, 3, 1, readings={"bms_fallback": 1}, applied=_applied(last))[0]
    assert res.state.mode is Mode.SAFE_DEGRADE
    lost = {"bms_fallback": Quality.LOST}
    res = ctrl.step(res.state, snap(ctrl.site, 4, bms_fallback=0, bad=lost), [], 4.0, applied_outputs=_applied(res))
    assert res.state.bms_fallback and any("fallback" in c for c in res.state.degrade_causes)
    assert not [e for e in res.events if e.kind == "bms_fallback_ended"]


def test_the_start_up_hold_ends_only_on_a_complete_snapshot_without_the_fallback(ctrl):
    # Seen on the wire: the tick after the BMS's word, every reading of a busy driver was lost.
    # A lost fallback reading is not the BMS leaving its fallback, and an incomplete snapshot
    # does not end the start-up hold.
    from controller.core.readings import Quality
    res = _steps(ctrl, ctrl.initial_state(0.0), 0, 2, readings={"bms_fallback": 1})
    lost = {n: Quality.LOST for n in ("bms_fallback", "it_supply_temp", "it_return_temp", "it_flow")}
    nxt = ctrl.step(res[-1].state, snap(ctrl.site, 2, bad=lost), [], 2.0, applied_outputs=_applied(res[-1]))
    assert nxt.state.mode is Mode.SAFE_DEGRADE and nxt.state.mode_cause == STARTUP_CAUSE
    assert nxt.commands["p1_speed"].value == 100.0
    lost = {n: Quality.LOST for n in ("it_supply_temp", "it_return_temp", "it_flow")}
    nxt = ctrl.step(nxt.state, snap(ctrl.site, 3, bad=lost), [], 3.0, applied_outputs=_applied(nxt))
    assert nxt.state.mode is Mode.SAFE_DEGRADE and nxt.state.mode_cause == STARTUP_CAUSE
    nxt = _steps(ctrl, nxt.state, 4, 1, applied=_applied(nxt))[0]
    assert nxt.state.mode is Mode.NORMAL
    assert nxt.events[-2].fields["cause"] == "first complete, valid snapshot"


def test_a_site_without_the_fallback_point_runs_as_before(tmp_path):
    text = REFERENCE.read_text()
    block = text[text.index("  bms_fallback:\n"):text.index("  # --- building side")]
    assert block.count("\n") == 6, block
    (tmp_path / "site.yaml").write_text(text.replace(block, ""))
    ctrl = Controller(load_config(tmp_path / "site.yaml").site)
    assert ctrl._p_fallback is None
    st = ctrl.initial_state(0.0)
    for t in range(5):
        st = ctrl.step(st, snap(ctrl.site, t, drop=("bms_fallback",)), [], float(t), applied_outputs={}).state
    assert st.mode is Mode.NORMAL and not st.bms_fallback and not st.degrade_causes


# --- alarms --------------------------------------------------------------------------------------

def test_both_are_alarms_on_the_reference_plant(ctrl):
    alarms = Alarms(ctrl.site)
    last = started_normal(ctrl)
    ast = alarms.initial_state(0.0)
    raised = []
    res = _steps(ctrl, last.state, 3, 12, readback=lambda cmd, t: 0.0,
                 readings={"bms_fallback": 0}, applied=_applied(last))
    res += _steps(ctrl, res[-1].state, 15, 2, readback=lambda cmd, t: 0.0,
                  readings={"bms_fallback": 1}, applied={**_applied(res[-1]), "heartbeat": 0.0})
    for r in res:
        ast, events = alarms.evaluate(ast, alarms.inputs_from(r), [], r.state.last_now)
        raised += [(e.fields["alarm"], r.state.last_now) for e in events if e.kind == "alarm_raised"]
    assert ("heartbeat_not_verified", 3 + ctrl._hb_grace_s) in raised
    assert ("bms_fallback_active", 15.0) in raised
    view = {a["name"]: a for a in alarms.view(ast, 16.0)["alarms"]}
    assert view["bms_fallback_active"]["priority"] == "high" and view["bms_fallback_active"]["active"]
    assert view["heartbeat_not_verified"]["state"] == "unacknowledged"


def test_a_reload_keeps_the_bms_last_word_and_the_heartbeat_check(ctrl):
    from controller.daemon.runtime import carry_over
    last = started_normal(ctrl)
    res = _steps(ctrl, last.state, 3, 10, readback=lambda cmd, t: 0.0, readings={"bms_fallback": 1},
                 applied=_applied(last))[-1]
    assert res.state.bms_fallback and res.state.heartbeat_check.fault
    new, _ = carry_over(res.state, ctrl, 13.0)
    assert new.bms_fallback and new.heartbeat_check == res.state.heartbeat_check
    nxt = ctrl.step(new, snap(ctrl.site, 13, bms_fallback=1), [], 13.0, applied_outputs={**_applied(res), "heartbeat": 0.0})
    assert not [e for e in nxt.events if e.kind in ("bms_fallback", "heartbeat_fault")]
    assert nxt.state.mode is Mode.SAFE_DEGRADE
