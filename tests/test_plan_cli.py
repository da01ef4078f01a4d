"""`heatctl plan`: the plan slot by slot, made offline from a scenario, or from the daemon."""

from __future__ import annotations

import json

from controller.cli import main


def test_plan_simulated_prints_every_slot_as_json(capsys):
    assert main(["plan", "--simulate", "pool-year", "--day", "15", "--hour", "18", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    slots = out["plan"]["slots"]
    assert len(slots) == 96 and all(s["reason"] and s["policy"] in ("compute_first", "heat_first") for s in slots)
    assert all(s["batch_budget_w"] >= 0.0 and 0.0 <= s["tank_target_soc"] <= 1.0 for s in slots)


def test_plan_table_and_bad_arguments(capsys):
    assert main(["plan", "--simulate", "dhw-year", "--day", "40", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "batch kW" in out and "why" in out and len(out.splitlines()) == 3 + 24  # header, note, columns, 24 hours
    assert main(["plan", "--simulate", "dhw-year", "--day", "40"]) == 0
    narrow = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 100 for line in narrow) and len(narrow) > 3 + 24  # the reasons wrapped
    assert main(["plan", "--simulate", "nowhere-year"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected pool-year or dhw-year" in err


def test_plan_without_a_daemon_is_one_line(capsys, tmp_path):
    rc = main(["plan", "--socket", str(tmp_path / "none.sock")])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "Traceback" not in err


def test_plan_simulated_has_its_own_time_limit(capsys):
    """An operator's one-off plan does not take the daemon's 0.5 s limit (it failed on a busy
    machine): its own default, or --time-limit. A limit nothing can meet fails with the solver's
    reason, once; a limit that is no limit is one line and exit 2."""
    from controller.cli.verbs.plan import SIMULATE_TIME_LIMIT_S
    from controller.site.loader import load_config
    from controller.site.paths import default_config_path

    assert SIMULATE_TIME_LIMIT_S > 10 * load_config(default_config_path()).site.planning.solve_time_limit_s
    assert main(["plan", "--simulate", "pool-year", "--time-limit", "0.00001"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no plan: solver: Time limit reached") and out.count("no plan") == 1
    for bad in ("0", "-1", "601"):
        assert main(["plan", "--simulate", "pool-year", "--time-limit", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"heatctl plan: --time-limit must be more than 0 and at most 600 s, got {float(bad):g}"]
