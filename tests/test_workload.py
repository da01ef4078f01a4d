"""The workload model: deterministic, batch work conserved, deadlines counted, interactive never held;
and the planned closed loop on a short window against the same workload without the plan and the bound."""

from __future__ import annotations

import dataclasses

import pytest

from simulations.scenarios.profiles import DAY, day_start_s
from simulations.scenarios.year import SCENARIOS, site_for
from simulations.workload.model import WorkloadSim, jobs_for_day
from simulations.workload.profiles import MIXES, Interactive, mix_for

H = 3600.0


def run(sim: WorkloadSim, hours: float, budget=lambda t: None) -> list[float]:
    out = []
    for k in range(int(hours * H / sim.tick_s)):
        t = sim.start_s + k * sim.tick_s
        sim.budget_nodes = budget(t)
        out.append(sim.load(t))
    return out


@pytest.mark.parametrize("config, idle, span", [(None, 600.0, 4400.0), ("config/templates/cpu-rack-dhw.yaml", 300.0, 2200.0)])
def test_batch_is_30_to_50_percent_of_it_energy_with_deadlines_of_4_to_24_hours(config, idle, span):
    mix = mix_for(config)
    sim = WorkloadSim(mix, 8, 0.0, 300.0)
    loads = run(sim, 14 * 24)
    it_wh = sum(8 * (idle + f * span) for f in loads) * sim.tick_s / H
    share = sim.stats.batch_node_h * span / it_wh
    assert 0.30 <= share <= 0.50, share
    jobs = [j for d in range(14) for j in jobs_for_day(mix, 8, d)]
    hours = [(j.deadline_s - j.arrival_s) / H for j in jobs]
    assert 4.0 <= min(hours) and max(hours) <= 24.0 + 1e-9
    assert sim.stats.missed == 0


def test_jobs_are_deterministic_and_sum_to_the_mix():
    mix = mix_for(None)
    a, b = jobs_for_day(mix, 8, 40), jobs_for_day(mix, 8, 40)
    assert [(j.job_id, j.arrival_s, j.size_node_h) for j in a] == [(j.job_id, j.arrival_s, j.size_node_h) for j in b]
    assert sum(j.size_node_h for j in a) == pytest.approx(mix.batch_load * 8 * 24)
    assert jobs_for_day(mix, 8, 41)[0].arrival_s != a[0].arrival_s


def test_held_work_runs_later_and_interactive_is_never_held():
    mix = mix_for(None)
    free = WorkloadSim(mix, 8, 0.0, 60.0)
    held = WorkloadSim(mix, 8, 0.0, 60.0)
    # Hold all batch 00-12 h each day (the deadline guard still forces what is due).
    loads_free = run(free, 72)
    loads_held = run(held, 72, budget=lambda t: 0.0 if (t % DAY) < 12 * H else None)
    for k, f in enumerate(loads_held):
        t = k * 60.0
        assert f >= mix.interactive(t) - 1e-12                 # interactive always runs
    arrived = sum(j.size_node_h for d in range(3) for j in jobs_for_day(mix, 8, d))
    for sim in (free, held):
        left = sum(j.remaining_node_h for j in sim.queue)
        assert sim.stats.batch_node_h + left == pytest.approx(arrived)   # conserved
    assert held.stats.held_node_h > 10.0
    # A blunt hold can make jobs late (a plan does not: it knows the deadlines); each is counted once.
    for sim in (free, held):
        late = [j for j in sim.done if j.finished_s > j.deadline_s + 1e-6]
        late += [j for j in sim.queue if j.deadline_s < 72 * H]
        assert sim.stats.missed == len(late) == len({j.job_id for j in late})
    assert free.stats.missed == 0
    # Held work ran later: less batch in the mornings, more in the afternoons.
    morning = lambda ls: sum(ls[k] for k in range(len(ls)) if (k * 60.0) % DAY < 12 * H)  # noqa: E731
    assert morning(loads_held) < morning(loads_free)


def test_a_job_that_cannot_run_misses_its_deadline_and_is_counted_once():
    full = dataclasses.replace(mix_for(None), interactive=Interactive("all nodes busy", 1.0, 1.0, weekend_factor=1.0))
    sim = WorkloadSim(full, 8, 0.0, 300.0)
    run(sim, 36)
    due = [j for d in range(2) for j in jobs_for_day(full, 8, d) if j.deadline_s <= 36 * H]
    assert due and sim.stats.missed == len(due) and sim.stats.batch_node_h == 0.0


def test_every_mix_names_its_profiles():
    for config, mix in MIXES.items():
        assert mix.classes and abs(sum(c.share for c in mix.classes) - 1.0) < 1e-9, config


def test_plan_on_a_january_pool_window_reuses_more_and_stays_under_the_bound():
    from simulations.runners.planned import run_with_workload
    from simulations.workload.bound import workload_bound

    sc = SCENARIOS["pool-year"]
    site = site_for(sc)
    start = day_start_s(1, 10)
    with_plan, _, wl_p, pc = run_with_workload(site, sc, "heatctl", True, hours=48, start_s=start)
    without, _, wl_n, _ = run_with_workload(site, sc, "heatctl", False, hours=48, start_s=start)
    bound = workload_bound(site, sc, hours=48, start_s=start)
    assert wl_p.stats.missed == wl_n.stats.missed == 0
    assert with_plan.throttled_hours <= without.throttled_hours + 0.05
    # Interactive work is capped only by the start-up hold (safe_degrade), with or without the plan.
    assert with_plan.throttled_hours == with_plan.throttled_safe_hours
    assert without.throttled_hours == without.throttled_safe_hours
    assert without.reused_kwh < with_plan.reused_kwh <= bound["reused_kwh"]
    assert with_plan.boiler_kwh < without.boiler_kwh
    assert len(pc.solve_s) == 48 * 4 and pc.keeper.counters.failed == 0
    assert pc.statuses == {"optimal": 48 * 4} and pc.failures == []


def test_forecast_history_is_taken_from_days_of_the_same_type():
    from simulations.runners.planned import same_day_type
    from simulations.scenarios.profiles import DAY, is_weekend

    for day in range(14, 21):                      # a week: Monday 15 January is day 14
        t = day * DAY + 7 * 3600.0
        days = same_day_type(t)
        assert len(days) == 5 and len(set(days)) == 5
        assert all(is_weekend(t - d * DAY) == is_weekend(t) for d in days)
        assert max(days) <= 21


def test_a_failed_solve_is_logged_with_its_status_and_the_last_plan_kept():
    from controller.planning.solver import SolveResult, solve
    from simulations.runners import planned

    sc = SCENARIOS["pool-year"]
    site = site_for(sc)
    start = day_start_s(1, 10)
    calls = []

    def every_third_times_out(inputs, time_limit_s):
        calls.append(time_limit_s)
        if len(calls) % 3 == 0:
            return SolveResult(None, "solver: Time limit reached", 31.0, inputs.now_s)
        return solve(inputs, time_limit_s)

    wl = planned.workload_for(site, sc, 60.0, start)
    sc2 = dataclasses.replace(planned.with_workload(sc, wl), start_s=start)
    ctrl = planned.PlannedController(site, sc2, wl, time_limit_s=planned.SIM_TIME_LIMIT_S, solver=every_third_times_out)
    planned.run_scenario(site, sc2, hours=3, tick_s=60.0, controller=ctrl)
    assert calls and all(c == float("inf") for c in calls)      # simulations solve without a wall-clock box
    assert ctrl.statuses == {"optimal": 8, "solver: Time limit reached": 4}
    assert [why for _t, why, _s in ctrl.failures] == ["solver: Time limit reached"] * 4
    assert ctrl.keeper.counters.failed == 4 and ctrl.keeper.counters.fallbacks == 0   # the last plan kept
