"""Cost model: the arithmetic on a hand-computed case, the shipped model, fail-closed loading, the verb."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.site.loader import ConfigError
from simulations.analysis.cost import (DEFAULT_COST_MODEL, SimulatedEnergy, evaluate, format_report,
                              load_cost_model, parse_cost_model)

ROOT = Path(__file__).resolve().parents[1]

HAND = """\
currency: EUR
capex: {compute: 100000, thermal_integration: 30000, controls_and_metering: 10000, civil_works: 10000}
opex_per_year: {maintenance: 2000, water_treatment: 500, metering: 500, support: 1000}
prices: {electricity_per_kwh: 0.20, fuel_per_kwh: 0.05, boiler_efficiency: 0.8}
carbon: {electricity_kg_per_kwh: 0.3, fuel_kg_per_kwh: 0.2}
depreciation_years: 10
cases:
  conservative: {utilisation: 0.5, capture: 0.8, maintenance: 1.5}
  expected: {utilisation: 1.0, capture: 1.0, maintenance: 1.0}
  aggressive: {utilisation: 1.2, capture: 1.0, maintenance: 0.5}
"""


def test_hand_computed_case():
    """24 simulated hours: IT 800 kWh, delivered 600 kWh, pumps+fans 10 kWh, demand 660 kWh.

    Year scale 8760 / 24 = 365. Capex 100000 + 30000 + 10000 + 10000 = 150000 (heat reuse without
    compute: 50000), annualised over 10 years: 15000/yr. Opex 2000 + 500 + 500 + 1000 = 4000/yr.
    Pumps and fans (every case): 10 x 365 = 3650 kWh/yr, x 0.20 = 730 EUR/yr.

    expected (1, 1, 1):
      delivered 600 x 365 = 219000 kWh; fuel 219000 / 0.8 = 273750 kWh; avoided 273750 x 0.05 = 13687.5
      net = 13687.5 - 730 - 4000 = 8957.5; after depreciation 8957.5 - 15000 = -6042.5
      carbon 273750 x 0.2 - 3650 x 0.3 = 54750 - 1095 = 53655 kg
      payback 150000 / 8957.5 = 16.7457...; heat-reuse payback 50000 / 8957.5 = 5.5819...
      IT 800 x 365 = 292000 kWh, 58400 EUR (shown, not charged)
    conservative (0.5, 0.8, 1.5):
      delivered 600 x 0.5 x 0.8 = 240 -> 87600 kWh; fuel 109500; avoided 5475; opex 6000
      net = 5475 - 730 - 6000 = -1255 -> payback never; IT 800 x 0.5 x 365 = 146000 kWh
    aggressive (1.2, 1.0, 0.5):
      600 x 1.2 = 720 > demand 660: capped at 660 -> 240900 kWh; fuel 301125; avoided 15056.25
      opex 2000; net = 15056.25 - 730 - 2000 = 12326.25; payback 150000 / 12326.25 = 12.1691...
    """
    model = parse_cost_model(HAND, "hand.yaml")
    r = evaluate(model, SimulatedEnergy(hours=24, it_kwh=800, delivered_kwh=600, pumps_fans_kwh=10,
                                        demand_kwh=660))
    assert r.year_scale == pytest.approx(365)
    assert r.capex_total == 150000 and r.heat_reuse_capex == 50000
    cons, exp, aggr = r.cases
    assert (cons.case, exp.case, aggr.case) == ("conservative", "expected", "aggressive")

    approx = lambda x: pytest.approx(x, rel=1e-12)  # noqa: E731
    assert exp.delivered_kwh == approx(219000)
    assert exp.avoided_fuel_kwh == approx(273750)
    assert exp.avoided_cost == approx(13687.5)
    assert exp.pumps_fans_kwh == approx(3650) and exp.pumps_fans_cost == approx(730)
    assert exp.opex == approx(4000)
    assert exp.net_benefit == approx(8957.5)
    assert exp.annualised_capex == approx(15000)
    assert exp.net_after_depreciation == approx(-6042.5)
    assert exp.avoided_carbon_kg == approx(53655)
    assert exp.payback_years == approx(150000 / 8957.5)
    assert exp.heat_reuse_payback_years == approx(50000 / 8957.5)
    assert exp.it_kwh == approx(292000) and exp.it_electricity_cost == approx(58400)
    assert not exp.delivered_capped_by_demand

    assert cons.delivered_kwh == approx(87600)
    assert cons.avoided_cost == approx(5475)
    assert cons.opex == approx(6000)
    assert cons.net_benefit == approx(-1255)
    assert cons.payback_years is None and cons.heat_reuse_payback_years is None
    assert cons.it_kwh == approx(146000)

    assert aggr.delivered_capped_by_demand
    assert aggr.delivered_kwh == approx(240900)
    assert aggr.avoided_cost == approx(15056.25)
    assert aggr.net_benefit == approx(12326.25)
    assert aggr.payback_years == approx(150000 / 12326.25)

    text = format_report(r)
    assert "never" in text and "not charged" in text and "capped at the consumer" in text


def test_zero_benefit_is_never():
    model = parse_cost_model(HAND, "hand.yaml")
    r = evaluate(model, SimulatedEnergy(hours=8760, it_kwh=0, delivered_kwh=0, pumps_fans_kwh=0))
    assert r.year_scale == 1.0
    assert all(c.payback_years is None for c in r.cases)


def test_shipped_model_loads():
    m = load_cost_model(DEFAULT_COST_MODEL)
    assert m.capex.total > m.capex.heat_reuse > 0
    assert m.cases.conservative.utilisation < m.cases.expected.utilisation


@pytest.mark.parametrize("edit, line", [
    (("depreciation_years: 10", "depreciation_years: 10\ninterest: 0.05"),
     "c.yaml:7: interest: unknown key (not part of the schema; check its spelling)"),
    (("boiler_efficiency: 0.8", "boiler_efficiency: 1.8"),
     "c.yaml:4: prices.boiler_efficiency: expected a value <= 1.1, got 1.8"),
    (("fuel_per_kwh: 0.05", 'fuel_per_kwh: "0.05"'),
     "c.yaml:4: prices.fuel_per_kwh: expected a number, got the text '0.05' (a quoted value is text; remove the quotes)"),
    (("currency: EUR\n", "currency: EUR\ncurrency: GBP\n"),
     "c.yaml:2: currency: duplicate key (YAML would silently keep the last one)"),
    (("conservative: {utilisation: 0.5", "conservative: {utilisation: 1.5"),
     "c.yaml:8: cases.conservative.utilisation: 1.5 must be <= expected's 1 (a conservative case assumes less)"),
    (("  aggressive: {utilisation: 1.2, capture: 1.0, maintenance: 0.5}\n", ""),
     "c.yaml:7: cases.aggressive: missing required key 'aggressive'"),
])
def test_bad_model_fails_closed(edit, line):
    text = HAND.replace(*edit)
    assert text != HAND
    with pytest.raises(ConfigError) as exc:
        parse_cost_model(text, "c.yaml")
    assert exc.value.problems == [line]


def test_energy_from_kpi_json_rejects_bad_input():
    with pytest.raises(ValueError, match="missing delivered_kwh"):
        SimulatedEnergy.of({"hours": 24, "it_kwh": 1, "pumps_fans_kwh": 1})
    with pytest.raises(ValueError, match="hours: expected a value > 0"):
        SimulatedEnergy.of({"hours": 0, "it_kwh": 1, "delivered_kwh": 1, "pumps_fans_kwh": 1})


def _heatctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cost_verb_from_kpis_file(tmp_path):
    kpis = tmp_path / "k.json"
    kpis.write_text(json.dumps({"hours": 24, "it_kwh": 800, "delivered_kwh": 600, "pumps_fans_kwh": 10,
                                "demand_kwh": 660, "scenario": "hand"}))
    cost = tmp_path / "c.yaml"
    cost.write_text(HAND)
    p = _heatctl("cost", "--kpis", str(kpis), "--cost", str(cost), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["cases"]["expected"]["net_benefit"] == pytest.approx(8957.5)
    assert out["cases"]["conservative"]["payback_years"] is None
    p = _heatctl("cost", "--kpis", str(kpis), "--cost", str(cost))
    assert p.returncode == 0 and "never" in p.stdout


def test_cost_verb_errors(tmp_path):
    p = _heatctl("cost", "--scenario", "no-such")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown scenario" in p.stderr
    bad = tmp_path / "c.yaml"
    bad.write_text(HAND.replace("boiler_efficiency: 0.8", "boiler_efficiency: 0"))
    p = _heatctl("cost", "--scenario", "winter-day", "--cost", str(bad))
    assert p.returncode == 1
    assert p.stderr == f"{bad}:4: prices.boiler_efficiency: expected a value > 0.0, got 0\n"
    p = _heatctl("cost")
    assert p.returncode == 2 and "required" in p.stderr


def test_cost_verb_runs_a_scenario():
    p = _heatctl("cost", "--scenario", "winter-day", "--hours", "1", "--tick", "5", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["simulated_hours"] == 1 and out["year_scale"] == 8760
    assert out["cases"]["expected"]["delivered_kwh"] > 0
