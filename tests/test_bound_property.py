"""The bound holds for every controller, greedy ones included, on a summer and a winter window of
every year scenario, in total and in every month (simulations.analysis.lp_bound).

The greedy controllers are heatctl with its consumer setpoint raised 4 K (pushes heat above the
consumer's setpoint), heatctl with the tank forced full (charges whenever it can, to a higher top
temperature), heatctl under heat_first, and the naive baseline. What is compared is
`Kpis.reused_kwh`, the heat the consumer took up to its demand minus the boiler's: the quantity the
LP bounds. Windows are 3 days at the year tick."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from controller.site.models import Policy
from simulations.analysis.lp_bound import lp_bound
from simulations.runners.closed_loop import run_scenario
from simulations.scenarios.definitions import SCENARIOS
from simulations.scenarios.profiles import day_start_s
from simulations.scenarios.year import YEAR_SCENARIOS, site_for

WINDOW_H = 72.0
SEASONS = {"winter": day_start_s(1, 15), "summer": day_start_s(7, 15)}


def greedy_sites(site) -> dict[str, tuple[object, str]]:
    """name -> (site, controller): heatctl, three greedy variants of it, and the naive baseline."""
    loops = site.loops
    raised = site.model_copy(update={"loops": loops.model_copy(update={
        "consumer_supply": loops.consumer_supply.model_copy(update={"setpoint": loops.consumer_supply.setpoint + 4.0})})})
    m = site.modes
    tank_full = site.model_copy(update={"modes": m.model_copy(update={
        "tank_full_temp_c": m.tank_full_temp_c + 10.0, "tank_full_soc": 1.0, "tank_resume_soc": 0.99,
        "surplus_enter_w": 0.0, "surplus_exit_w": -1e6})})
    heat_first = site.model_copy(update={"site": site.site.model_copy(update={"policy": Policy.HEAT_FIRST})})
    return {
        "heatctl": (site, "heatctl"),
        "setpoint+4K": (raised, "heatctl"),
        "tank-forced-full": (tank_full, "heatctl"),
        "heat_first": (heat_first, "heatctl"),
        "naive": (site, "baseline"),
    }


@functools.lru_cache(maxsize=None)
def _site(name: str):
    return site_for(SCENARIOS[name])


@pytest.mark.parametrize("season", list(SEASONS))
@pytest.mark.parametrize("name", [s.name for s in YEAR_SCENARIOS])
def test_no_controller_beats_the_bound_in_total_or_any_month(name, season):
    site = _site(name)
    window = dataclasses.replace(SCENARIOS[name], start_s=SEASONS[season], hours=WINDOW_H)
    bound = lp_bound(site, window)
    by_month = {r["month"]: r["reused"] for r in bound.monthly}
    assert bound.reused_kwh <= bound.demand_kwh + 1e-6
    assert bound.reused_kwh <= bound.captured_max_kwh + sum(by_month.values()) + 1e-6
    lines = [f"{name} {season}: bound {bound.reused_kwh:.1f} kWh (demand {bound.demand_kwh:.1f}, "
             f"capture at most {bound.captured_max_kwh:.1f})"]
    for label, (s, ctrl) in greedy_sites(site).items():
        k, _ = run_scenario(s, window, controller=ctrl)
        share = f"{k.reused_kwh / bound.reused_kwh:6.1%}" if bound.reused_kwh > 1.0 else "   n/a"
        lines.append(f"  {label:18s} reused {k.reused_kwh:8.1f} kWh = {share}"
                     f" (delivered {k.delivered_kwh:.1f}, boiler {k.boiler_kwh:.1f})")
        assert k.reused_kwh <= bound.reused_kwh * (1 + 1e-9) + 1e-6, "\n".join(lines)
        for row in k.monthly:
            reused = row["useful"] - row["boiler"]
            assert reused <= by_month[row["month"]] * (1 + 1e-9) + 1e-6, (label, row["month"], reused, by_month)
    print("\n".join(lines))


def test_the_bound_is_tight_enough_to_mean_something():
    """On the pool's winter window the bound is below demand and above what heatctl reaches: it binds."""
    site = _site("pool-year")
    window = dataclasses.replace(SCENARIOS["pool-year"], start_s=SEASONS["winter"], hours=WINDOW_H)
    bound = lp_bound(site, window)
    k, _ = run_scenario(site, window)
    assert k.reused_kwh <= bound.reused_kwh <= bound.demand_kwh
    assert bound.reused_kwh <= bound.captured_max_kwh + bound.tank_capacity_kwh + bound.other_capacity_kwh


@pytest.mark.parametrize("name", ["pool-year", "dhw-year"])
def test_hourly_aggregation_only_loosens_the_bound(name):
    """The hourly LP is a relaxation of the 15-minute one, and that of the 5-minute one: never below it."""
    site = _site(name)
    window = dataclasses.replace(SCENARIOS[name], start_s=SEASONS["winter"], hours=48.0)
    fine = lp_bound(site, window, step_s=300.0)
    quarter = lp_bound(site, window, step_s=900.0)
    hourly = lp_bound(site, window, step_s=3600.0)
    assert fine.reused_kwh <= quarter.reused_kwh * (1 + 1e-9) + 1e-6
    assert quarter.reused_kwh <= hourly.reused_kwh * (1 + 1e-9) + 1e-6
    print(f"{name}: bound at 5 min {fine.reused_kwh:.1f}, 15 min {quarter.reused_kwh:.1f}, 1 h {hourly.reused_kwh:.1f} kWh"
          f" (solved in {fine.solve_s:.2f} s at 5 min)")
