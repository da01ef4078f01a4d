"""The plan as an input to the pure step: applied like a setpoint, and the trips always win."""

from __future__ import annotations

from controller.core.commands import OutputSource
from controller.site.roles import Role
from controller.core.plan import COMPUTE_FIRST, HEAT_FIRST, Plan, PlanSlot, SLOT_S, adjustments
from tests.step_helpers import make_controller, snap


def warm(ctrl, ticks: int = 5):
    state = ctrl.initial_state(0.0)
    for t in range(ticks):
        state = ctrl.step(state, snap(ctrl.site, float(t)), [], float(t)).state
    return state


def one_slot(policy: str) -> Plan:
    return Plan(0.0, (PlanSlot(0.0, 0.6, 12000.0, policy, "test"),), slot_s=SLOT_S)


def test_the_plans_policy_sets_the_loops_like_the_site_policy_does():
    ctrl = make_controller()
    site = ctrl.site
    state = warm(ctrl)
    limit = site.trips["it_overtemp"].limit
    hf, cf = site.policy.heat_first, site.policy.compute_first
    none = ctrl.step(state, snap(site, 5.0), [], 5.0)
    heat = ctrl.step(state, snap(site, 5.0), [], 5.0, plan=adjustments(one_slot(HEAT_FIRST), 5.0))
    comp = ctrl.step(state, snap(site, 5.0), [], 5.0, plan=adjustments(one_slot(COMPUTE_FIRST), 5.0))
    assert none.loops["power_cap"].setpoint == limit - cf.cap_margin_k      # the site's own policy
    assert heat.loops["power_cap"].setpoint == limit - hf.cap_margin_k
    assert heat.loops["dump"].setpoint == site.loops.dump.setpoint + hf.dump_offset_k
    assert comp.loops["dump"].setpoint == none.loops["dump"].setpoint
    assert {p: o.value for p, o in comp.commands.items()} == {p: o.value for p, o in none.commands.items()}
    # No plan at this time (after the slot): the rules, exactly as without a plan.
    later = ctrl.step(state, snap(site, 5.0), [], 5.0, plan=adjustments(one_slot(HEAT_FIRST), SLOT_S + 1))
    assert later.loops["dump"].setpoint == none.loops["dump"].setpoint


def test_the_step_with_a_plan_stays_pure():
    ctrl = make_controller()
    state = warm(ctrl)
    adj = adjustments(one_slot(HEAT_FIRST), 5.0)
    a = ctrl.step(state, snap(ctrl.site, 5.0), [], 5.0, plan=adj)
    b = ctrl.step(state, snap(ctrl.site, 5.0), [], 5.0, plan=adj)
    assert a.state == b.state and a.commands == b.commands


def test_a_trip_wins_over_the_plan_in_the_tick_it_is_seen():
    ctrl = make_controller()
    state = warm(ctrl)
    adj = adjustments(one_slot(HEAT_FIRST), 5.0)
    res = ctrl.step(state, snap(ctrl.site, 5.0, leak_rack=1), [], 5.0, plan=adj)
    cap = ctrl.site.point_for(Role.POWER_CAP)
    assert res.commands[cap].source is OutputSource.TRIP and res.commands[cap].value == 5000.0
    # Blind to the IT supply: the cap loop's own rule (do not hand power back) holds under a plan.
    blind = ctrl.step(state, snap(ctrl.site, 5.0, drop=("it_supply_temp",)), [], 5.0, plan=adj)
    assert blind.commands[cap].value <= ctrl.site.power.safe_degrade_w


def _at_full_cap(ctrl, policy: str, it_supply: float, ticks: int = 240):
    """The controller after `ticks` 1 s ticks under a `policy` slot with the IT supply at `it_supply`
    (below the cap target): the cap loop hands power back to the site maximum at 50 W/s."""
    site = ctrl.site
    adj = adjustments(Plan(0.0, (PlanSlot(0.0, 0.6, 12000.0, policy, "test"),), slot_s=1e6), 0.0)
    state = ctrl.initial_state(0.0)
    for t in range(ticks):
        state = ctrl.step(state, snap(site, float(t), it_supply_temp=it_supply), [], float(t), plan=adj).state
    return state


def _slot(policy: str, now: float):
    return adjustments(Plan(0.0, (PlanSlot(0.0, 0.6, 12000.0, policy, "test"),), slot_s=1e6), now)


def test_a_switch_to_compute_first_with_a_warm_it_loop_does_not_cap_below_the_request():
    # The pool year's 0.3 h of capping with the plan, at each heat_first -> compute_first switch:
    # the IT supply at 51.97 degC, under heat_first's 54 degC cap target and under compute_first's
    # 52; the cap loop at its maximum held its integral at the maximum less P (3000 W/K x 2 K),
    # so when the target fell P fell by 6 kW and the cap with it, the supply still below target.
    ctrl = make_controller()
    site, cap = ctrl.site, ctrl.site.point_for(Role.POWER_CAP)
    hf, cf = site.policy.heat_first, site.policy.compute_first
    limit = site.trips["it_overtemp"].limit
    state = _at_full_cap(ctrl, HEAT_FIRST, 51.9)
    assert state.outputs[cap] == site.power.max_w
    t0, last = 240.0, limit - hf.cap_margin_k
    for k in range(660):
        t = t0 + k
        res = ctrl.step(state, snap(site, t, it_supply_temp=51.9), [], t, plan=_slot(COMPUTE_FIRST, t))
        sp = res.loops["power_cap"].setpoint
        # The target falls to compute_first's at 2 K in 10 minutes, never faster.
        assert limit - cf.cap_margin_k <= sp < last and last - sp <= 2.0 / 600.0 + 1e-9
        assert res.commands[cap].value == site.power.max_w, k   # every server's request can run
        state, last = res.state, max(sp, limit - cf.cap_margin_k + 1e-12)
    assert sp == limit - cf.cap_margin_k


def test_the_it_supply_rising_below_the_cap_target_does_not_cap():
    # The pool year's other 0.4 h: a slot that releases batch work raises the IT supply by 3 K in a
    # minute, still below the target: P falls by 3000 W/K x 3 K and, held at the maximum less P,
    # the cap fell with it. Here 47.8 to 53.9 degC at 0.1 K/s, under heat_first's 54 degC.
    ctrl = make_controller()
    site, cap = ctrl.site, ctrl.site.point_for(Role.POWER_CAP)
    state = _at_full_cap(ctrl, HEAT_FIRST, 47.8)
    for k in range(70):
        t, sup = 240.0 + k, min(47.8 + 0.1 * (k + 1), 53.9)
        res = ctrl.step(state, snap(site, t, it_supply_temp=sup), [], t, plan=_slot(HEAT_FIRST, t))
        assert res.commands[cap].value == site.power.max_w
        state = res.state


def test_above_the_target_the_cap_still_falls_in_the_switching_tick_and_a_trip_caps_at_once():
    ctrl = make_controller()
    site, cap = ctrl.site, ctrl.site.point_for(Role.POWER_CAP)
    kp = site.loops.power_cap.kp
    state = _at_full_cap(ctrl, HEAT_FIRST, 53.5)
    t = 240.0
    # 0.5 K above heat_first's 54 degC target as the slot switches: the cap falls by P on the
    # excess in the same tick, and keeps falling while the supply stays above the target.
    res = ctrl.step(state, snap(site, t, it_supply_temp=54.5), [], t, plan=_slot(COMPUTE_FIRST, t))
    assert res.commands[cap].value <= site.power.max_w - 0.9 * kp * 0.5
    nxt = ctrl.step(res.state, snap(site, t + 1, it_supply_temp=54.6), [], t + 1, plan=_slot(COMPUTE_FIRST, t + 1))
    assert nxt.commands[cap].value < res.commands[cap].value
    # A leak in the switching tick, with the cap loop held at the maximum: the trip caps at once.
    leak = ctrl.step(state, snap(site, t, it_supply_temp=53.5, leak_rack=1), [], t, plan=_slot(COMPUTE_FIRST, t))
    assert leak.commands[cap].source is OutputSource.TRIP and leak.commands[cap].value == 5000.0
