"""Site policy: the same plant and profiles under compute_first and heat_first. The policy changes
what gives way (IT thermal margin vs heat kept), never a trip limit."""

from __future__ import annotations

import pytest

from controller.site.loader import parse_config_text
from simulations.runners.closed_loop import run_scenario
from simulations.scenarios.definitions import SCENARIOS
from tests.step_helpers import REFERENCE


def site_for(policy: str):
    text = REFERENCE.read_text().replace("policy: compute_first", f"policy: {policy}")
    return parse_config_text(text, f"{policy}.yaml").site


@pytest.mark.slow
def test_heat_first_keeps_more_heat_and_compute_first_keeps_more_margin():
    runs = {}
    for policy in ("compute_first", "heat_first"):
        site = site_for(policy)
        runs[policy], _ = run_scenario(site, SCENARIOS["day-night"], tick_s=5.0)
    cf, hf = runs["compute_first"], runs["heat_first"]
    assert site_for("compute_first").trips == site_for("heat_first").trips
    # heat_first: more recovered heat delivered, less dumped, less boiler, a better ERF...
    assert hf.delivered_kwh > cf.delivered_kwh * 1.02
    assert hf.dumped_kwh < cf.dumped_kwh
    assert hf.boiler_kwh < cf.boiler_kwh
    assert hf.erf > cf.erf
    # ...paid for in IT thermal margin: its loop runs warmer (still far below the trip).
    assert hf.max_it_supply_c > cf.max_it_supply_c + 2.0
    for k in (cf, hf):
        assert not k.trips and k.hours_above_limit["it_overtemp"] == 0.0
        assert k.throttled_hours < 0.2
