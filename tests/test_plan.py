"""The 24-hour plan: the linear program's decisions, the keeper's fallback, a solver that is killed.

The plan is a pure input (controller.core.plan); the solver (controller.planning.solver) runs off
the tick; the keeper (controller.planning.keeper) decides which plan is in force. A solve that fails,
is late, or is killed leaves the last valid plan in force for its remaining slots, then the rules.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from controller.core.plan import COMPUTE_FIRST, HEAT_FIRST, SLOT_S, Plan, PlanSlot, adjustments
from controller.planning.inputs import PlanInputs, QueuedJob, site_limits
from controller.planning.keeper import PlanKeeper
from controller.planning.solver import SolveResult, solve
from controller.planning.worker import solve_in_subprocess
from controller.site.loader import load_config
from controller.site.models import Policy
from tests.step_helpers import REFERENCE

N = 96
H = 3600.0


@pytest.fixture(scope="module")
def site():
    return load_config(REFERENCE).site


def pool_inputs(site, queue, soc=0.5, now=0.0) -> PlanInputs:
    """A pool day from midnight: 12 kW closed, 36 kW open 06-22 h; interactive 45 % of 8 nodes."""
    span = 4400.0
    demand = tuple(36000.0 if 24 <= i < 88 else 12000.0 for i in range(N))
    fixed = tuple(8 * 600.0 + 0.45 * 8 * span for _ in range(N))
    bmax = tuple(0.55 * 8 * span for _ in range(N))
    return PlanInputs(now, soc, demand, tuple(5.0 for _ in range(N)), fixed, bmax, tuple(queue), site_limits(site))


def test_plan_moves_batch_into_the_hours_that_want_heat_and_keeps_deadlines(site):
    # 60 kWh of batch work queued at midnight, due within 24 h: at night the heat would be dumped.
    queue = [QueuedJob(f"train-{i}", 20000.0, 23.5 * H, 8800.0) for i in range(3)]
    res = solve(pool_inputs(site, queue), 1.0)
    assert res.plan is not None, res.reason
    slots = res.plan.slots
    assert len(slots) == N and slots[0].start_s == 0.0
    night = sum(s.batch_budget_w for s in slots[:20]) * 0.25 / 1000
    day = sum(s.batch_budget_w for s in slots[24:88]) * 0.25 / 1000
    assert night < 1.0 < 55.0 < day, (night, day)
    # All 60 kWh are run by the deadline (less the planning guard of an hour).
    assert sum(s.batch_budget_w for s in slots[:90]) * 0.25 / 1000 == pytest.approx(60.0, rel=1e-3)
    # heat_first where the plan is short of heat then or later in the horizon (keep heat for it).
    for i, s in enumerate(slots):
        assert (s.policy == HEAT_FIRST) == any(r.boiler_w > 50 for r in slots[i:]), s
    assert slots[0].policy == HEAT_FIRST and slots[-1].policy == COMPUTE_FIRST
    assert all(s.reason for s in slots) and "hold batch" in slots[4].reason


def test_without_a_shortfall_ahead_the_plan_keeps_compute_first(site):
    import dataclasses
    inp = pool_inputs(site, [QueuedJob("j", 20000.0, 20 * H, 8800.0)])
    summer = dataclasses.replace(inp, demand_w=tuple(8000.0 for _ in range(N)))
    plan = solve(summer, 1.0).plan
    assert all(s.policy == COMPUTE_FIRST and s.boiler_w == 0.0 for s in plan.slots)


def test_work_due_soon_runs_now_even_where_the_heat_is_dumped(site):
    queue = [QueuedJob("transcode", 5000.0, 3.0 * H, 4400.0)]
    plan = solve(pool_inputs(site, queue), 1.0).plan
    assert plan is not None
    # Due at 03:00 less the hour of guard: all of it before 02:00, at night.
    assert sum(s.batch_budget_w for s in plan.slots[:8]) * 0.25 == pytest.approx(5000.0, rel=1e-3)


def test_a_running_job_that_cannot_be_preempted_keeps_its_nodes(site):
    # Two running jobs that finish after their deadline guard: the plan must not read this as
    # infeasible (seen in a dhw window before the floor became cumulative).
    queue = [QueuedJob("a", 2750.0, 1.3 * H, 4400.0, preemptible=False, running=True),
             QueuedJob("b", 5930.0, 1.6 * H, 4400.0, preemptible=False, running=True)]
    plan = solve(pool_inputs(site, queue), 1.0).plan
    assert plan is not None
    assert plan.slots[0].batch_budget_w >= 8800.0 - 1.0


def test_the_budget_never_exceeds_what_the_queued_jobs_can_run(site):
    # One job of one node (4.4 kW) with 20 kWh: the free nodes could take 19.8 kW, the job cannot.
    # Planned as free nodes, the daytime budget would be more than any scheduler can run, and the
    # work planned there would in fact run elsewhere.
    queue = [QueuedJob("render", 20000.0, 23.5 * H, 4400.0)]
    plan = solve(pool_inputs(site, queue), 1.0).plan
    assert plan is not None
    assert max(s.batch_budget_w for s in plan.slots) <= 4400.0 + 1e-6
    assert sum(s.batch_budget_w for s in plan.slots[:90]) * 0.25 == pytest.approx(20000.0, rel=1e-3)


def test_each_job_is_due_by_its_own_deadline_not_by_another_jobs_work(site):
    # "soon" is due by 02:00 (03:00 less the guard); "later" by 22:30. Running "later" at night
    # cannot stand in for "soon": by 02:00 at least "soon"'s 4 kWh are done, at its width.
    queue = [QueuedJob("soon", 4000.0, 3.0 * H, 2200.0), QueuedJob("later", 30000.0, 23.5 * H, 8800.0)]
    plan = solve(pool_inputs(site, queue), 1.0).plan
    assert plan is not None
    first = [s.batch_budget_w for s in plan.slots[:8]]
    assert sum(first) * 0.25 >= 4000.0 - 1.0
    assert max(first) <= 2200.0 + 8800.0 + 1e-6


def test_a_queue_the_nodes_cannot_clear_in_time_still_gets_a_plan(site):
    # 40 kWh due within the hour's guard on 4.4 kW of width: it cannot be met, and the plan says
    # what it can do (run it flat out) rather than nothing.
    queue = [QueuedJob("late", 40000.0, 2.0 * H, 4400.0)]
    plan = solve(pool_inputs(site, queue), 1.0).plan
    assert plan is not None
    assert plan.slots[0].batch_budget_w == pytest.approx(4400.0, rel=1e-6)


def test_bad_inputs_give_a_reason_not_a_plan(site):
    inp = pool_inputs(site, [])
    import dataclasses
    res = solve(dataclasses.replace(inp, demand_w=inp.demand_w[:10]), 1.0)
    assert res.plan is None and "unequal length" in res.reason


def test_adjustments_are_the_current_slot_or_none():
    slots = tuple(PlanSlot(i * SLOT_S, 0.5, 1000.0 * i, HEAT_FIRST if i % 2 else COMPUTE_FIRST, "why")
                  for i in range(4))
    plan = Plan(0.0, slots)
    assert adjustments(None, 10.0) is None
    assert adjustments(plan, -1.0) is None
    assert adjustments(plan, 4 * SLOT_S) is None           # after the last slot: the rules
    a = adjustments(plan, SLOT_S + 1.0)
    assert a.policy is Policy.HEAT_FIRST and a.batch_budget_w == 1000.0 and a.slot_start_s == SLOT_S
    assert adjustments(plan, 2 * SLOT_S).policy is Policy.COMPUTE_FIRST


def _plan(at: float, slots: int = 8) -> Plan:
    return Plan(at, tuple(PlanSlot(at + i * SLOT_S, 0.5, 5000.0, COMPUTE_FIRST, "x") for i in range(slots)))


def test_keeper_keeps_the_last_valid_plan_then_falls_back_to_the_rules():
    k = PlanKeeper()
    assert k.current(0.0) == (None, [])
    ev = k.offer(SolveResult(_plan(0.0, 4), "optimal", 0.01, 0.0), 0.0)
    assert [e.kind for e in ev] == ["plan_in_force"]
    # Three failed solves: the plan made at 0 stays in force for its four slots.
    for i in (1, 2, 3):
        ev = k.offer(SolveResult(None, "solver: Infeasible", 0.01, i * SLOT_S), i * SLOT_S)
        assert [e.kind for e in ev] == ["plan_failed"] and "keeping the last valid plan" in ev[0].message
        plan, ev = k.current(i * SLOT_S + 1.0)
        assert plan is not None and plan.made_at_s == 0.0 and ev == []
    # Its slots are over: the rules, with one event, and a metric.
    plan, ev = k.current(4 * SLOT_S)
    assert plan is None and [e.kind for e in ev] == ["plan_fallback"] and "Infeasible" in ev[0].message
    assert k.current(4 * SLOT_S + 60.0) == (None, [])       # once, not per tick
    assert (k.counters.accepted, k.counters.failed, k.counters.fallbacks) == (1, 3, 1)
    # A late result is refused; a timely one brings the plan back.
    ev = k.offer(SolveResult(_plan(4 * SLOT_S), "optimal", 0.01, 4 * SLOT_S), 6 * SLOT_S)
    assert [e.kind for e in ev] == ["plan_refused"] and k.counters.late == 1
    assert k.current(6 * SLOT_S)[0] is None
    ev = k.offer(SolveResult(_plan(6 * SLOT_S), "optimal", 0.01, 6 * SLOT_S), 6 * SLOT_S)
    assert [e.kind for e in ev] == ["plan_in_force"] and k.current(6 * SLOT_S)[0].made_at_s == 6 * SLOT_S


def hanging_solver(inputs, time_limit_s):
    """A FAKE solver that never returns (a hung solver): the child process must be killed."""
    while True:
        time.sleep(0.05)


def failing_solver(inputs, time_limit_s):
    """A FAKE solver that crashes."""
    raise MemoryError("out of memory")


def test_a_killed_solver_leaves_the_last_valid_plan_then_the_rules(site):
    k = PlanKeeper()
    first = solve_in_subprocess(pool_inputs(site, [QueuedJob("j", 9000.0, 20 * H, 8800.0)]), 1.0, kill_after_s=30.0)
    assert first.plan is not None, first.reason
    k.offer(first, 0.0)
    started = time.monotonic()
    res = solve_in_subprocess(pool_inputs(site, [], now=SLOT_S), 0.1, kill_after_s=0.5, target=hanging_solver)
    assert res.plan is None and "killed after 0.5 s" in res.reason
    assert time.monotonic() - started < 10.0
    k.offer(res, SLOT_S)
    crashed = solve_in_subprocess(pool_inputs(site, [], now=2 * SLOT_S), 0.1, kill_after_s=10.0, target=failing_solver)
    assert crashed.plan is None and "MemoryError" in crashed.reason
    k.offer(crashed, 2 * SLOT_S)
    plan, _ = k.current(2 * SLOT_S + 5.0)
    assert plan is first.plan                                   # the last valid plan, still in force
    a = adjustments(plan, 2 * SLOT_S + 5.0)
    assert a is not None and a.batch_budget_w == first.plan.slots[2].batch_budget_w
    plan, ev = k.current(first.plan.end_s)                      # its slots run out: the rules
    assert plan is None and ev[0].kind == "plan_fallback" and adjustments(plan, first.plan.end_s) is None
    assert k.counters.failed == 2 and k.counters.fallbacks == 1


def test_a_solve_that_hits_its_time_limit_is_a_failure(site):
    # HiGHS's own time limit: far too short for the LP, so the status is not optimal.
    res = solve(pool_inputs(site, [QueuedJob(f"j{i}", 3000.0, (4 + i % 20) * H, 4400.0) for i in range(60)]), 1e-9)
    assert res.plan is None and "time limit" in res.reason.lower()


_HELD_IN_THE_CALLER = threading.Lock()


def lock_taking_solver(inputs, time_limit_s):
    """A FAKE solver that takes a lock, as logging or SQLite would: in a fork of a process where
    another thread holds that lock, the copy is held for good."""
    got = _HELD_IN_THE_CALLER.acquire(timeout=2.0)
    return SolveResult(None, f"lock {'taken' if got else 'held for good'}; parent {os.getppid()}", 0.0,
                       inputs.now_s)


def test_the_solver_child_is_not_a_fork_of_the_threaded_caller(site):
    """The daemon calls this with threads running; the child comes from a fork server, so a lock
    another thread of the daemon holds right now is free in the child."""
    _HELD_IN_THE_CALLER.acquire()
    try:
        res = solve_in_subprocess(pool_inputs(site, [], now=SLOT_S), 0.1, kill_after_s=20.0,
                                  target=lock_taking_solver)
    finally:
        _HELD_IN_THE_CALLER.release()
    assert res.reason == f"lock taken; parent {res.reason.rsplit(' ', 1)[1]}"
    assert int(res.reason.rsplit(" ", 1)[1]) != os.getpid()
