"""The plan on a site (controller/daemon/planning.py): the value of heat the node weights follow, the
plan's inputs from the envelope and Slurm, the planner task off the tick with the keeper's fallback
(last valid plan, then the rules, each audited), plan-against-actual metrics, `heatctl plan` live.

The solvers here are fakes (named so): a real HiGHS solve is in test_plan.py and the e2e test; here
the point is what the daemon does with a result, a failure and a hang, on a deterministic clock.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.cli.verbs.plan import format_plan
from controller.core.envelope import HourForecast
from controller.core.plan import COMPUTE_FIRST, HEAT_FIRST, SLOT_S, Plan, PlanSlot
from controller.daemon import planning
from controller.daemon.metrics import DaemonMetrics
from controller.daemon.workload import situation_from
from controller.planning import value
from controller.planning.solver import SolveResult, solve
from drivers.slurm.decide import Memory, decide, node_weight
from drivers.slurm.model import Job, Node, Snapshot
from tests.step_helpers import make_controller, reference_site, snap

H = 3600.0
T0 = 1_796_400_000.0 - (1_796_400_000.0 % SLOT_S)   # a wall-clock slot boundary


def slots(values: list[tuple[float, float]], start: float = T0, budget: float = 5000.0) -> Plan:
    """A plan whose slot i has (boiler_w, dump_w) = values[i]."""
    return Plan(start, tuple(PlanSlot(start + i * SLOT_S, 0.5, budget, HEAT_FIRST if b > 0 else COMPUTE_FIRST,
                                      f"slot {i}", boiler_w=b, dump_w=d) for i, (b, d) in enumerate(values)))


# --- the value of heat --------------------------------------------------------------------------

def test_value_from_the_plan_is_the_next_hours_mean_and_none_outside_it():
    boiler, dump, neither = (8000.0, 0.0), (0.0, 9000.0), (0.0, 0.0)
    assert value.from_plan(slots([boiler] * 96), T0) == 1.0
    assert value.from_plan(slots([dump] * 96), T0 + 100.0) == 0.0
    # 4 h = 16 slots: 8 boiler then 8 neither -> 0.75; what lies beyond 4 h does not count.
    assert value.from_plan(slots([boiler] * 8 + [neither] * 8 + [dump] * 80), T0) == 0.75
    assert value.from_plan(slots([boiler] * 96), T0 - 1.0) is None          # before the plan
    assert value.from_plan(slots([boiler] * 4), T0 + 4 * SLOT_S) is None    # after it
    assert value.from_plan(None, T0) is None


@pytest.mark.parametrize("mode, boiler, online, soc, want", [
    ("normal", True, True, 0.3, 1.0),              # boiler firing: heat wanted most
    ("normal", False, True, 0.3, 0.75),            # demand beyond the recovered heat
    ("buffer_charging", False, True, 0.5, 0.25),   # surplus into the tank
    ("bypass", False, True, 0.97, 0.0),            # tank full, dumping
    ("safe_degrade", False, True, 0.5, 0.0),       # the heat goes to the dry cooler
    ("safe_degrade", True, True, 0.5, 0.0),        # start-up safe state: boiler on, heat still dumped
    ("bypass", True, True, 0.97, 0.0),             # dumping while the boiler's minimum run ends
    ("normal", False, False, 0.96, 0.0),           # consumer offline, tank full
    ("normal", False, False, 0.40, 0.25),          # consumer offline, the tank still has room
    ("normal", False, False, None, None),          # nothing known: no weight change
])
def test_value_from_the_present_state(mode, boiler, online, soc, want):
    assert value.from_state(mode, boiler, online, soc) == want


def test_node_weights_prefer_the_site_firing_its_boiler():
    firing = value.from_state("normal", True, True, 0.2)
    dumping = value.from_state("bypass", False, True, 0.97)
    assert node_weight(firing) == 1 and node_weight(dumping) == 100


def test_situation_takes_the_plan_then_the_state():
    ctrl = make_controller()
    site = ctrl.site
    res = ctrl.step(ctrl.initial_state(0.0), snap(site, 0.0), [], 0.0)
    plan = slots([(0.0, 9000.0)] * 96, budget=0.0)
    s = situation_from(site, res, T0 + 10.0, plan)
    assert s.heat_value == 0.0 and s.plan_batch_budget_w == 0.0 and s.plan_reason == "slot 0"
    s = situation_from(site, res, T0 + 10.0, None)
    assert s.heat_value == value.from_state(res.state.mode.value, res.state.boiler_on, True, res.state.tank_soc)
    assert s.plan_batch_budget_w is None and s.consumer_online


def test_a_plan_that_holds_batch_holds_pending_jobs_and_sets_weights():
    plan = slots([(0.0, 9000.0)] * 96, budget=0.0)
    ctrl = make_controller()
    res = ctrl.step(ctrl.initial_state(0.0), snap(ctrl.site, 0.0), [], 0.0)
    s = situation_from(ctrl.site, res, T0, plan)
    sn = Snapshot({"n1": Node("n1", "idle", False, "", 1)},
                  (Job(7, "batch", "", "PENDING", "None", None, False),))
    actions, mem = decide(s, sn, Memory())
    assert {(a.kind, a.target, a.value) for a in actions} == {("weight", "n1", 100), ("hold", "7", None)}
    assert "plan holds batch work (slot 0)" in next(a.reason for a in actions if a.kind == "hold")


# --- the plan's inputs on a site ------------------------------------------------------------------

def shape():
    site = reference_site().model_copy(update={"workload": None})
    sh = planning.SiteShape.of(site)
    assert sh is not None
    return planning.SiteShape(sh.limits, ("n1", "n2", "n3"), sh.node_w)


def test_inputs_from_the_envelope_and_slurm():
    sh = shape()
    fc = [HourForecast(30000.0 + h * 100.0, 5.0 + h) for h in range(24)]
    now = T0 + 2 * SLOT_S + 60.0          # the third slot of its hour
    nodes = {"n1": Node("n1", "allocated", False, "", 1), "n2": Node("n2", "idle", True, "heatctl: full", 1),
             "n3": Node("n3", "idle", True, "maintenance", 1)}
    jobs = (Job(1, "batch", "", "RUNNING", "None", now + 10 * H, True, nodes=1, time_limit_s=2 * H,
                start_ts=now - 0.5 * H, node_list="n1"),
            Job(2, "batch", "", "PENDING", "None", None, False, nodes=2, time_limit_s=3 * H))
    inp = planning.inputs_from(sh, now, 0.4, 40000.0, fc, Snapshot(nodes, jobs), 3600.0)
    assert inp.slots == 96 and inp.first_slot_s == T0 + 2 * SLOT_S
    assert inp.demand_w[0] == fc[0].demand_w and inp.demand_w[2] == fc[1].demand_w  # slots 2, 3 of hour 0, then hour 1
    # n1 (busy) and n2 (drained by heatctl, ours to resume) count; n3 (an operator's drain) does not.
    assert inp.batch_max_w[0] == pytest.approx(min(2 * sh.node_w, sh.limits.it_max_w - inp.fixed_it_w[0]))
    assert inp.fixed_it_w[0] == pytest.approx(max(40000.0 - sh.node_w, sh.limits.it_floor_w))
    run, pend = inp.queue
    assert run.running and run.preemptible and run.remaining_wh == pytest.approx(1.5 * sh.node_w)
    assert run.deadline_s == now + 10 * H
    assert not pend.running and pend.max_w == 2 * sh.node_w and pend.remaining_wh == pytest.approx(3 * 2 * sh.node_w)
    assert pend.deadline_s == now + 24 * H          # no deadline: a day after its submission (unknown: now)
    # And HiGHS plans it.
    res = solve(inp, 2.0)
    assert res.plan is not None, res.reason


def test_inputs_without_slurm_have_no_queue_and_no_batch_room():
    inp = planning.inputs_from(shape(), T0, None, None, [HourForecast(1000.0, 5.0)], None, 3600.0)
    assert inp.queue == () and set(inp.batch_max_w) == {0.0}
    assert set(inp.fixed_it_w) == {shape().limits.it_floor_w}
    # The nowcast: the current slot takes the present demand (0: the consumer is offline).
    off = planning.inputs_from(shape(), T0, None, None, [HourForecast(1000.0, 5.0)], None, 3600.0, 0.0)
    assert off.demand_w[0] == 0.0 and set(off.demand_w[1:]) == {1000.0}


# --- the planner task: off the tick, the keeper's fallback, audited ---------------------------------

class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def fake_solver(outcomes: list, gate: threading.Event | None = None):
    """A fake solver (no HiGHS): returns the next outcome ("ok" -> a 96-slot plan made for the inputs'
    time, or a failure reason); with `gate`, it waits for it first (a hung solver)."""
    calls = []

    def run(inputs, limit, kill_after):
        calls.append((inputs.now_s, limit, kill_after))
        if gate is not None:
            gate.wait(5.0)
        what = outcomes.pop(0)
        if what == "ok":
            return SolveResult(slots([(0.0, 9000.0)] * 96, start=inputs.first_slot_s, budget=0.0), "optimal",
                               0.01, inputs.now_s)
        return SolveResult(None, what, 0.02, inputs.now_s)
    return run, calls


def planner(solver, clock) -> tuple[planning.PlannerTask, list]:
    rows: list = []
    return planning.PlannerTask(shape(), rows.extend, clock, every_s=SLOT_S, time_limit_s=0.5,
                                kill_after_s=5.0, solver=solver), rows


FC = [HourForecast(30000.0, 5.0)] * 24


def test_planner_solves_when_due_keeps_the_last_plan_then_the_rules():
    async def scenario():
        clock = FakeClock(T0 + 1.0)
        solver, calls = fake_solver(["ok", "solver: Infeasible", "solver raised MemoryError: x"])
        p, rows = planner(solver, clock)
        assert p.current(clock()) is None                     # nothing solved yet: the rules
        p.after_step(clock(), 0.5, 30000.0, None, None)       # no forecast yet: no solve
        assert calls == []
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        p.after_step(clock(), 0.5, 30000.0, FC, None)         # one in flight: not another
        await p.wait_idle()
        assert calls == [(T0 + 1.0, 0.5, 5.0)]
        plan = p.current(clock())
        assert plan is not None and plan.slot_at(clock()) is not None
        assert [r.kind for r in rows] == ["plan_in_force"]
        v = p.view(clock())
        assert v["in_force"] and v["fallback"] == "plan" and v["last_solve"]["status"] == "optimal"
        p.after_step(clock() + 60.0, 0.5, 30000.0, FC, None)  # not due yet
        assert len(calls) == 1

        clock.t += SLOT_S                                     # the next solve fails: the plan stays
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        await p.wait_idle()
        assert p.current(clock()) is plan
        assert rows[-1].kind == "plan_failed" and "keeping the last valid plan" in rows[-1].message
        assert p.view(clock())["last_solve"] == {"at_s": clock(), "status": "solver: Infeasible",
                                                 "solve_s": 0.02, "accepted": False}
        clock.t += SLOT_S
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        await p.wait_idle()
        assert rows[-1].kind == "plan_failed" and rows[-1].cause == "solver raised MemoryError: x"

        clock.t = plan.end_s + 1.0                            # the last valid plan runs out: rules
        assert p.current(clock()) is None
        assert rows[-1].kind == "plan_fallback" and p.keeper.counters.fallbacks == 1
        assert p.current(clock() + 5.0) is None and rows[-1].kind == "plan_fallback" and len(
            [r for r in rows if r.kind == "plan_fallback"]) == 1  # once, not per tick
        v = p.view(clock())
        assert not v["in_force"] and v["fallback"] == "rules" and "ran out" in v["note"]
        assert v["counters"] == {"accepted": 1, "failed": 2, "late": 0, "fallbacks": 1}
    asyncio.run(scenario())


def test_a_hung_solver_never_holds_the_caller():
    async def scenario():
        gate = threading.Event()
        clock = FakeClock(T0)
        solver, calls = fake_solver(["ok"], gate)
        p, rows = planner(solver, clock)
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        # The caller (the tick) goes on while the solve hangs in its thread.
        for _ in range(5):
            await asyncio.sleep(0)
            assert p.current(clock()) is None
        assert not p._task.done()
        gate.set()
        await p.wait_idle()
        assert p.current(clock()) is not None
    asyncio.run(scenario())


def test_a_late_solve_is_refused():
    async def scenario():
        clock = FakeClock(T0)

        def slow(inputs, limit, kill_after):
            clock.t += 2 * SLOT_S          # the answer arrives two slots after it was asked for
            return SolveResult(slots([(0.0, 0.0)] * 96, start=inputs.first_slot_s), "optimal", 0.1, inputs.now_s)
        p, rows = planner(slow, clock)
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        await p.wait_idle()
        assert p.current(clock()) is None and rows[-1].kind == "plan_refused"
        assert p.keeper.counters.late == 1 and not p.view(clock())["last_solve"]["accepted"]
    asyncio.run(scenario())


def test_build_planner_is_on_with_a_workload_or_when_asked():
    site = reference_site()
    assert site.workload is None and planning.build_planner(site, list, FakeClock(0)) is None
    on = site.model_copy(update={"planning": site.planning.model_copy(update={"enabled": "on"})})
    p = planning.build_planner(on, list, FakeClock(0))
    assert p is not None and p.every_s == 900.0 and p.shape.nodes == ()
    off = on.model_copy(update={"planning": site.planning.model_copy(update={"enabled": "off"})})
    assert planning.build_planner(off, list, FakeClock(0)) is None


# --- metrics and the CLI's view ---------------------------------------------------------------------

def scrape(m: DaemonMetrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(m.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name.startswith("heatctl_plan")}


def test_plan_metrics_show_plan_against_actual_and_follow_the_keeper():
    m = DaemonMetrics(reference_site())
    before = scrape(m)
    assert before[("heatctl_plan_solves_total", (("result", "failed"),))] == 0.0
    base = dict(in_force=True, planned_soc=0.6, actual_soc=0.55, planned_batch_w=8000.0, actual_batch_w=4400.0,
                age_s=120.0, solve_ok=True, solve_s=0.08, accepted=1, failed=0, late=0, fallbacks=0)
    m.observe_plan(base)
    m.observe_plan({**base, "failed": 2, "fallbacks": 1, "solve_ok": False, "in_force": False,
                    "planned_soc": None})
    got = scrape(m)
    assert got[("heatctl_plan_tank_soc_ratio", (("source", "actual"),))] == 0.55
    assert got[("heatctl_plan_tank_soc_ratio", (("source", "plan"),))] != got[("heatctl_plan_tank_soc_ratio", (("source", "plan"),))]  # NaN
    assert got[("heatctl_plan_batch_power_watts", (("source", "plan"),))] == 8000.0
    assert got[("heatctl_plan_batch_power_watts", (("source", "actual"),))] == 4400.0
    assert got[("heatctl_plan_solves_total", (("result", "accepted"),))] == 1.0
    assert got[("heatctl_plan_solves_total", (("result", "failed"),))] == 2.0
    assert got[("heatctl_plan_fallbacks_total", ())] == 1.0
    assert got[("heatctl_plan_in_force", ())] == 0.0 and got[("heatctl_plan_last_solve_successful", ())] == 0.0
    assert got[("heatctl_plan_age_seconds", ())] == 120.0 and got[("heatctl_plan_solve_duration_seconds", ())] == 0.08


def test_cli_shows_the_live_plan_with_its_solve_and_fallback():
    async def scenario():
        clock = FakeClock(T0 + 30.0)
        solver, _ = fake_solver(["ok"])
        p, _rows = planner(solver, clock)
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        await p.wait_idle()
        p.current(clock())
        clock.t += 90.0
        return {"ok": True, **p.view(clock()), "enabled": True}
    resp = asyncio.run(scenario())
    wide = format_plan(resp, wide=True)
    first = wide[0]
    assert first.startswith("plan made at 20") and " UTC (age 120 s)" in first, first
    assert "in force" in first and "last solve optimal" in first, first
    assert len(wide) == 2 + 24 and wide[2].split()[-2:] == ["slot", "0"]
    narrow = format_plan(resp)
    assert all(len(line) <= 100 for line in narrow) and "in force" in " ".join(narrow[:3])
    rules = format_plan({"ok": True, "plan": None, "in_force": False, "fallback": "rules",
                         "note": "no plan solved yet: today's rules"})
    assert rules[0].startswith("no plan: no plan solved yet")


# --- in the daemon (fake drivers and clock, the real HiGHS in its child process) -------------------

def test_the_daemon_plans_off_the_tick_and_serves_the_plan(tmp_path):
    from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
    from tests.runtime_fakes import FakeClock as DaemonClock, FakeDrivers, flushed, load, write_config

    path = write_config(tmp_path, replace={"\nplant:\n": "\nplanning:\n  enabled: \"on\"\n\nplant:\n"})
    clock = DaemonClock()
    options = RuntimeOptions(config_path=str(path), state_dir=str(tmp_path / "state"), socket_path=None)
    metrics = DaemonMetrics(load(path).site)
    d = Daemon(options, load(path), clock=clock, wall=clock.wall, sleep=clock.sleep,
               driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}), metrics=metrics)

    stepped: list = []

    async def run():
        await d.start()
        step = d.ctrl.step

        def spy(*a, **kw):                     # what the step is given as its plan input
            stepped.append(kw.get("plan"))
            return step(*a, **kw)
        d.ctrl.step = spy
        assert d.api_plan()["plan"] is None and d.api_plan()["fallback"] == "rules"
        assert await d.tick()                  # the envelope's forecast, then a solve starts
        await d.planner.wait_idle()
        clock.advance(1.0)
        assert await d.tick()                  # the plan is in force from this tick on
        first = d.api_plan()
        slot = d.planner.in_force.slot_at(clock.wall())
        assert stepped[0] is None and stepped[-1] is not None
        assert stepped[-1].policy.value == slot.policy and stepped[-1].batch_budget_w == slot.batch_budget_w
        d.planner.solver = lambda inputs, limit, kill: SolveResult(None, "solver killed after 5 s", 5.0, inputs.now_s)
        clock.advance(SLOT_S)
        assert await d.tick()
        await d.planner.wait_idle()
        clock.advance(1.0)
        assert await d.tick()
        second = d.api_plan()
        kinds = [e.kind for e in flushed(d).events(limit=1000)[0]]
        await d.shutdown()
        return first, second, kinds
    first, second, kinds = asyncio.run(run())
    assert first["in_force"] and first["plan"] and len(first["plan"]["slots"]) == 96, first["note"]
    assert first["last_solve"]["status"] == "optimal" and first["last_solve"]["solve_s"] < 5.0
    assert all(s["reason"] for s in first["plan"]["slots"])
    # The failed solve keeps the last valid plan in force, audited.
    assert second["in_force"] and second["counters"]["failed"] == 1
    assert second["last_solve"]["status"] == "solver killed after 5 s" and not second["last_solve"]["accepted"]
    assert "plan_in_force" in kinds and "plan_failed" in kinds
    got = scrape(metrics)
    assert got[("heatctl_plan_in_force", ())] == 1.0 and got[("heatctl_plan_solves_total", (("result", "failed"),))] == 1.0
    assert got[("heatctl_plan_tank_soc_ratio", (("source", "plan"),))] >= 0.0


@pytest.mark.parametrize("planning, where, words", [
    ("  solve_time_limit_s: 5\n  kill_after_s: 2\n", "planning.kill_after_s", "more than solve_time_limit_s"),
    ("  kill_after_s: 500\n  replan_every_s: 900\n", "planning.kill_after_s", "at most half of replan_every_s"),
])
def test_a_plan_time_box_that_cannot_work_is_one_line(tmp_path, planning, where, words):
    from controller.site.loader import ConfigError, load_config
    from tests.step_helpers import REFERENCE
    path = tmp_path / "site.yaml"
    path.write_text(REFERENCE.read_text() + "\nplanning:\n" + planning)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = [line for line in str(e.value).splitlines() if where in line]
    assert len(lines) == 1 and words in lines[0], str(e.value)


def test_the_site_dashboard_has_the_plan_panels():
    import json
    from pathlib import Path
    d = json.loads((Path(__file__).resolve().parent.parent / "docs/grafana/heatctl-dashboard.json").read_text())
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in d["panels"]}
    assert "heatctl_plan_tank_soc_ratio" in exprs["Plan vs actual: tank state of charge"]
    assert "heatctl_plan_batch_power_watts" in exprs["Plan vs actual: batch power"]
    for name in ("heatctl_plan_age_seconds", "heatctl_plan_solve_duration_seconds", "heatctl_plan_solves_total",
                 "heatctl_plan_fallbacks_total", "heatctl_plan_in_force"):
        assert name in exprs["Plan: age, solve, fallbacks"]


def test_a_changed_queue_brings_the_next_solve_forward_at_most_once_a_minute():
    async def scenario():
        clock = FakeClock(T0)
        solver, calls = fake_solver(["ok"] * 5)
        p, _ = planner(solver, clock)
        one = Snapshot({}, (Job(1, "batch", "", "PENDING", "None", None, False),))
        two = Snapshot({}, one.jobs + (Job(2, "batch", "", "PENDING", "None", None, False),))
        p.after_step(clock(), 0.5, 30000.0, FC, one)
        await p.wait_idle()
        clock.t += 30.0
        p.after_step(clock(), 0.5, 30000.0, FC, one)      # same queue: not due
        p.after_step(clock(), 0.5, 30000.0, FC, two)      # a new job, but within the minute
        assert len(calls) == 1
        clock.t += 30.0
        p.after_step(clock(), 0.5, 30000.0, FC, one)      # the queue it was planned with: not due
        assert len(calls) == 1
        p.after_step(clock(), 0.5, 30000.0, FC, two)      # a new job, a minute on: solved now
        await p.wait_idle()
        assert len(calls) == 2
        assert [len(c) for c in calls] == [3, 3]
    asyncio.run(scenario())


def test_a_reload_keeps_the_plan_in_force_and_takes_the_new_settings():
    async def scenario():
        clock = FakeClock(T0)
        solver, calls = fake_solver(["ok", "ok"])
        p, rows = planner(solver, clock)
        p.after_step(clock(), 0.5, 30000.0, FC, None)
        await p.wait_idle()
        plan = p.current(clock())
        site = reference_site()
        site = site.model_copy(update={"planning": site.planning.model_copy(update={"enabled": "on",
                                                                                   "replan_every_s": 600.0})})
        q = planning.rebuilt(p, site, rows.extend, clock)
        assert q is not p and q.every_s == 600.0 and q.keeper is p.keeper and q.current(clock()) is plan
        assert q.due(clock())                                  # the new settings solve at once
        off = site.model_copy(update={"planning": site.planning.model_copy(update={"enabled": "off"})})
        assert planning.rebuilt(q, off, rows.extend, clock) is None
    asyncio.run(scenario())
