"""The named baselines (simulations.baselines.registry): each runs a winter window of the pool year
without trips, keeps its boiler's minimum switching times, and reports dry-cooler switchings as
what they are."""

from __future__ import annotations

import dataclasses
import functools
import importlib

import pytest

from simulations.baselines.registry import ALIASES, BASELINES, DESCRIPTIONS, make_baseline
from simulations.runners.closed_loop import make_controller, run_scenario
from simulations.scenarios.definitions import SCENARIOS
from simulations.scenarios.profiles import day_start_s
from simulations.scenarios.year import site_for


@functools.lru_cache(maxsize=None)
def _site():
    return site_for(SCENARIOS["pool-year"])


def _window(hours: float = 48.0):
    return dataclasses.replace(SCENARIOS["pool-year"], start_s=day_start_s(1, 15), hours=hours)


def test_every_baseline_has_a_description_and_a_source():
    assert set(BASELINES) == {"naive", "good-practice", "g36"} and ALIASES == {"baseline": "naive"}
    for name, (module, _) in BASELINES.items():
        assert DESCRIPTIONS[name]
        doc = importlib.import_module(module).__doc__
        assert doc and ("Source" in doc or "common commercial default" in doc), name
    assert type(make_controller(_site(), "baseline")) is type(make_baseline("naive", _site()))
    with pytest.raises(ValueError, match="good-practice"):
        make_controller(_site(), "nonesuch")


@pytest.mark.parametrize("name", ["good-practice", "g36"])
def test_baseline_runs_a_winter_window_without_trips_and_without_short_cycling(name):
    k, trace = run_scenario(_site(), _window(), controller=name)
    assert not k.trips and all(v == 0.0 for v in k.hours_above_limit.values())
    # Boiler: at most one start per 10 minutes on + 10 minutes off, i.e. 3 switchings an hour.
    assert k.actuator_travel["boiler_switches"] <= 3 * k.hours
    # The dry cooler (mode bypass while it runs) does not chatter: minimum on/off times hold.
    assert k.mode_changes <= k.hours * 6
    assert k.reused_kwh > 0.5 * k.demand_kwh
    assert k.iae_below_kh == pytest.approx(k.comfort_deficit_kh)
    assert k.iae_below_kh + k.iae_above_kh == pytest.approx(k.supply_iae_kh)
