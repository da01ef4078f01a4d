"""Year scenarios on their test windows (a few days of the interesting season at the year tick),
fault weeks on their fault day: KPIs internally consistent, heatctl against the baseline and the
physical bound, the trips and safe_degrade hours each fault should cause, and the report folder.

A whole year takes minutes (README, "A year, proven"), so no full year runs here; the windows run
the same code at the same tick."""

from __future__ import annotations

import functools
import json

import pytest

from simulations.runners.closed_loop import run_compare, run_scenario
from controller.cli.verbs.simulate import format_comparison
from simulations.analysis.kpi_report import Result, write_report
from simulations.scenarios.definitions import SCENARIOS
from simulations.scenarios.year import FAULT_WEEKS, YEAR_SCENARIOS, YEAR_TICK_S, site_for, window_of


@functools.lru_cache(maxsize=None)
def compared(name: str):
    s = SCENARIOS[name]
    # jobs=1: the suite already runs on both cores (xdist); no nested process pools.
    return site_for(s), run_compare(site_for(s), window_of(s), jobs=1)


def test_year_scenarios_are_years_at_the_year_tick_with_a_window():
    assert {"pool-year", "dhw-year", "space-heating-year", "district-year"} <= {s.name for s in YEAR_SCENARIOS}
    for s in YEAR_SCENARIOS:
        assert s.hours == 8760 and s.tick_s == YEAR_TICK_S and s.compare and s.trace_every_s == 3600
        start, hours = s.window
        assert 72 <= hours <= 168 and 0 <= start < 365 * 86400


@pytest.mark.slow
@pytest.mark.parametrize("name", [s.name for s in YEAR_SCENARIOS])
def test_year_window_kpis_are_consistent_and_heatctl_beats_the_baseline(name):
    site, c = compared(name)
    h, _ = c.runs["heatctl"]
    b, _ = c.runs["baseline"]
    bound = c.bound
    for k in (h, b):
        assert k.energy_balance_error < 0.005
        assert k.erf == pytest.approx(k.delivered_kwh / (k.it_kwh + k.pumps_fans_kwh), rel=1e-9)
        assert k.reused_kwh <= bound.reused_kwh + 1e-6, (k.controller, k.reused_kwh, bound.reused_kwh)
        assert not k.trips and all(v == 0.0 for v in k.hours_above_limit.values())
        # The monthly breakdown adds up to the totals.
        assert sum(r["delivered"] for r in k.monthly) == pytest.approx(k.delivered_kwh, rel=1e-9)
        assert sum(r["boiler"] for r in k.monthly) == pytest.approx(k.boiler_kwh, rel=1e-9)
        assert 0.0 <= k.demand_met_share <= 1.0
    # Both controllers saw the same world.
    assert h.demand_kwh == pytest.approx(b.demand_kwh, rel=1e-9)
    # The bound is built from what the workload asked for, never from a run's capture.
    assert bound.captured_kwh >= h.captured_kwh * 0.999
    # heatctl reuses at least what the baseline does, with no more boiler, and changes mode calmly.
    assert h.delivered_kwh >= b.delivered_kwh
    assert h.boiler_kwh <= b.boiler_kwh * 1.01
    # Calm modes: at most one change an hour on average, even under bursty GPU load (min dwell 5 min).
    assert h.mode_changes_per_day <= 24
    assert h.throttled_hours <= 0.2  # the start-up hold only: compute_first never throttles for heat


@pytest.mark.parametrize("scenario", FAULT_WEEKS, ids=lambda s: s.name)
def test_fault_week_causes_its_trips_and_safe_degrade_and_nothing_above_a_limit(scenario):
    site = site_for(scenario)
    k, trace = run_scenario(site, window_of(scenario))
    exp = scenario.expect
    assert sorted(k.trips) == sorted(exp["trips"])
    lo, hi = exp["safe_degrade_h"]
    assert lo <= k.safe_degrade_hours <= hi, k.mode_hours
    assert all(v == 0.0 for v in k.hours_above_limit.values()), k.hours_above_limit
    assert k.max_it_supply_c < site.trips["it_overtemp"].alarm
    assert k.energy_balance_error < 0.005
    if "fallback_h" in exp:
        lo, hi = exp["fallback_h"]
        assert lo <= k.fallback_hours <= hi
    else:
        assert k.fallback_hours == 0.0
    entered = {f["dest"] for _, kind, _, f in k.timeline if kind == "mode_changed"}
    assert set(exp.get("modes", [])) <= entered
    # Every fault is over and acknowledged by the end of the window: back in normal operation.
    assert trace.mode[-1] != "safe_degrade"


def test_controller_restart_rebuilds_state_while_the_fallback_covers_the_gap():
    s = SCENARIOS["week-controller-restart"]
    k, trace = run_scenario(site_for(s), window_of(s))
    kinds = [kind for _, kind, _, _ in k.timeline]
    assert "controller_stopped" in kinds and "controller_started" in kinds
    t_stop = next(t for t, kind, _, _ in k.timeline if kind == "controller_stopped")
    t_start = next(t for t, kind, _, _ in k.timeline if kind == "controller_started")
    assert t_start - t_stop == pytest.approx(300.0, abs=s.tick_s)
    # After the restart: start-up hold (safe_degrade) until a valid snapshot, then normal again.
    after = [(t, f["dest"]) for t, kind, _, f in k.timeline if kind == "mode_changed" and t >= t_start]
    assert after and after[0][1] == "normal" and after[0][0] - t_start <= 2 * s.tick_s
    assert k.mode_hours["controller_down"] == pytest.approx(300.0 / 3600, abs=s.tick_s / 3600)


def test_comms_loss_marks_every_bms_reading_lost_and_the_bmcs_keep_the_cap():
    s = SCENARIOS["week-bms-comms-loss"]
    k, trace = run_scenario(site_for(s), window_of(s))
    a, b = s.comms_loss[0]
    during = [(p, m) for t, p, m in zip(trace.t_s, trace.power_cap_w, trace.mode) if a + 120 <= t < b]
    assert during and all(m == "safe_degrade" for _, m in during)
    # The cap still reaches the servers over IPMI: never above the safe_degrade cap while blind.
    assert max(p for p, _ in during) <= site_for(s).power.safe_degrade_w


def test_report_folder_has_json_markdown_and_plots(tmp_path):
    site, c = compared("pool-year")
    result = Result("pool-year", SCENARIOS["pool-year"].description, c.runs, c.bound, c.wall_s)
    files = write_report(result, site, tmp_path / "r")
    names = {f.name for f in files}
    assert {"kpis.json", "kpis.md", "temperatures.png", "heat_flows.png", "tank_soc.png", "modes.png",
            "power.png", "monthly.png"} <= names
    data = json.loads((tmp_path / "r" / "kpis.json").read_text())
    assert set(data["controllers"]) == {"heatctl", "baseline", "good-practice", "g36"}
    assert 0 < data["ratios"]["heatctl_reuse_of_bound"] <= 1.0
    assert "| heat reused: delivered (kWh) |" in (tmp_path / "r" / "kpis.md").read_text()
    text = "\n".join(format_comparison(result))
    assert "of the physical bound" in text and "heatctl / baseline" in text
    for f in files:
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_prints_every_baseline_the_lp_bound_and_the_lead():
    from simulations.analysis.yardsticks import format_yardsticks, lead

    _, c = compared("pool-year")
    text = format_yardsticks(c.runs, c.lp_bound)
    for name in ("heatctl", "baseline", "good-practice", "g36", "bound (LP", "share of the bound",
                 "IAE below setpoint", "dry-cooler switchings", "strongest baseline"):
        assert name in text, name
    ld = lead(c.runs)
    assert ld["strongest_baseline"] == max((n for n in c.runs if n != "heatctl"),
                                           key=lambda n: c.runs[n][0].reused_kwh)
    for k, _ in c.runs.values():
        assert k.reused_kwh <= c.lp_bound.reused_kwh


def test_yardstick_plot_is_a_png(tmp_path):
    from simulations.analysis.yardstick_plot import plot_yardsticks

    _, c = compared("pool-year")
    p = plot_yardsticks(c.runs, c.lp_bound, tmp_path / "y.png", "pool-year window")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
