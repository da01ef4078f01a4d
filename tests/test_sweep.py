"""What-if sweeps: --set parsing, the config edited as data and re-validated, bad keys, a real sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.analysis.sweep import SweepError, configs_for, parse_set, run_sweep

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "config" / "reference-plant.yaml"
BASE = REFERENCE.read_text(encoding="utf-8")


@pytest.mark.parametrize("text, key, values", [
    ("modes.tank_full_temp_c=40..50/2", ("modes", "tank_full_temp_c"), (40, 42, 44, 46, 48, 50)),
    ("modes.min_dwell_s=60..600/60", ("modes", "min_dwell_s"), tuple(range(60, 601, 60))),
    ("loops.consumer_supply.kp=5..25/5", ("loops", "consumer_supply", "kp"), (5, 10, 15, 20, 25)),
    # Decimal steps: no 0.30000000000000004; B is included only when a step lands on it.
    ("modes.tank_full_soc=0.1..0.35/0.1", ("modes", "tank_full_soc"), (0.1, 0.2, 0.3)),
    ("site.policy=compute_first,heat_first", ("site", "policy"), ("compute_first", "heat_first")),
    ("drivers.bmcs.bmcs[0].max_power_w=4000..4000/1", ("drivers", "bmcs", "bmcs", 0, "max_power_w"), (4000,)),
])
def test_parse_set(text, key, values):
    spec = parse_set(text)
    assert spec.key == key
    assert spec.values == values
    assert all(type(a) is type(b) for a, b in zip(spec.values, values))


@pytest.mark.parametrize("text, message", [
    ("modes.tank_full_temp_c", "expected KEY=A..B/STEP"),
    ("modes.tank_full_temp_c=50..40/2", "A must be <= B"),
    ("modes.tank_full_temp_c=40..50/0", "STEP must be > 0"),
    ("modes.tank_full_temp_c=40..5x/1", "bad range"),
    ("modes.min_dwell_s=0..1000/1", "at most 100"),
    ("modes..x=1..2/1", "bad key"),
])
def test_bad_set(text, message):
    with pytest.raises(SweepError, match=message):
        parse_set(text)


@pytest.mark.parametrize("text, message", [
    ("modes.tank_ful_temp_c=40..50/2", "no such key modes.tank_ful_temp_c: modes.tank_ful_temp_c is not part"),
    ("nosection.x=1..2/1", "no such key nosection.x: nosection is not part"),
    ("points.nosuch.range=1..2/1", "points.nosuch is not part"),
    ("loops.dump=1..2/1", "it is a section, not a value"),
    ("tick_period_s.x=1..2/1", "tick_period_s is a value, not a section"),
])
def test_bad_key(text, message):
    with pytest.raises(SweepError, match=message):
        configs_for(BASE, parse_set(text))


def test_invalid_value_is_its_row_with_the_loaders_reason():
    # A negative gain is refused by the loader (direction is built into each loop); it says why.
    out = configs_for(BASE, parse_set("loops.consumer_supply.kp=-5..5/5"))
    assert [v for v, _, _ in out] == [-5, 0, 5]
    (_, text0, err0), (_, text1, err1), (_, text2, err2) = out
    assert text0 is None and err0.startswith("loops.consumer_supply.kp: expected kp >= 0")
    assert "\n" not in err0
    assert err1 is None and err2 is None and text1 is not None
    # The edit is to the data: the value is really there, and nothing else changed.
    import yaml
    assert yaml.safe_load(text2)["loops"]["consumer_supply"]["kp"] == 5
    assert yaml.safe_load(text2)["trips"] == yaml.safe_load(BASE)["trips"]


def test_a_section_the_file_leaves_to_defaults_can_be_swept():
    out = configs_for(BASE, parse_set("plant.capture_fraction=0.7..0.9/0.1"))
    assert [err for _, _, err in out] == [None, None, None]


def test_real_sweep_in_a_pool_of_two():
    spec = parse_set("loops.consumer_supply.kp=-1,10,20")
    rows = run_sweep(BASE, spec, "winter-day", hours=0.5, tick_s=5.0, workers=2)
    assert [r.value for r in rows] == [-1, 10, 20]
    assert rows[0].error is not None and rows[0].kpis is None
    for r in rows[1:]:
        assert r.error is None
        assert r.kpis["delivered_kwh"] > 0 and r.kpis["trips"] == 0
        assert set(r.kpis) >= {"dumped_kwh", "boiler_kwh", "erf", "comfort_deficit_kh", "throttled_hours",
                               "mode_changes_per_day"}


def _heatctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_sweep_verb():
    p = _heatctl("sweep", "--scenario", "winter-day", "--set", "modes.min_dwell_s=60..120/60",
                 "--hours", "0.25", "--tick", "5", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["key"] == "modes.min_dwell_s" and [r["value"] for r in out["rows"]] == [60, 120]
    for args, msg in [
        (("--set", "modes.nope=1..2/1"), "no such key modes.nope"),
        (("--set", "modes.min_dwell_s=2..1/1"), "A must be <= B"),
    ]:
        p = _heatctl("sweep", "--scenario", "winter-day", *args)
        assert p.returncode == 2
        assert p.stderr.count("\n") == 1 and msg in p.stderr and "Traceback" not in p.stderr
    p = _heatctl("sweep", "--scenario", "no-such", "--set", "modes.min_dwell_s=1..2/1")
    assert p.returncode == 2 and "unknown scenario" in p.stderr


def test_base_edits_apply_to_every_value():
    import yaml
    out = configs_for(BASE, parse_set("modes.min_dwell_s=60,120"), base_set={("site", "policy"): "heat_first"})
    for _, text, err in out:
        assert err is None and yaml.safe_load(text)["site"]["policy"] == "heat_first"
