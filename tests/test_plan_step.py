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
