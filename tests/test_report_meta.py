"""A report says what it covers: period as dates, hours, tick, heatctl version and config hash in
kpis.md and kpis.json; a window is not titled as the whole scenario; `cost --kpis` takes the
report's own kpis.json."""

from __future__ import annotations

import json

from controller import __version__
from controller.cli import main
from simulations.analysis.kpi_report import sim_time_label


def test_sim_time_is_a_date_in_utc():
    assert sim_time_label(0) == "01 Jan 00:00 UTC"
    assert sim_time_label((31 + 28) * 86400 + 3600) == "01 Mar 01:00 UTC"  # a non-leap year


def test_window_report_metadata_and_cost_from_it(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["simulate", "--scenario", "pool-year", "--window", "--hours", "2", "--tick", "10",
                 "--report", str(out)]) == 0
    md = (out / "kpis.md").read_text()
    title = md.splitlines()[0]
    assert title == "# pool-year: 2 h test window"
    assert "for a year" not in title
    meta = json.loads((out / "kpis.json").read_text())["meta"]
    assert meta["period"]["hours"] == 2 and meta["period"]["window"] is True
    assert meta["tick_s"] == 10 and meta["heatctl_version"] == __version__
    assert len(meta["config_sha256"]) == 64
    assert f"tick 10 s, heatctl {__version__}" in md and meta["config_sha256"][:12] in md
    assert meta["period"]["start"] in md and "UTC" in meta["period"]["start"]
    capsys.readouterr()
    assert main(["cost", "--kpis", str(out / "kpis.json")]) == 0
    text = capsys.readouterr().out
    assert "net after depreciation" in text and meta["period"]["start"] in " ".join(text.split("\n  from")[0].split())  # the (wrapped) title


def test_events_carry_the_simulated_date_and_hours_since_the_start(tmp_path, capsys):
    # pump-failure: P1 fails at 02:00 on 1 January (the scenario's own description).
    out = tmp_path / "r"
    assert main(["simulate", "--scenario", "pump-failure", "--hours", "2.5", "--tick", "5",
                 "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "kpis.md").read_text()
    events = json.loads((out / "kpis.json").read_text())["controllers"]["heatctl"]["events"]
    fault = next(e for e in events if "pump_failure" in e)
    assert fault.startswith("01 Jan 02:00 UTC (+2.00 h): "), fault
    assert f"- {fault}" in md and "## Events" in md
    assert fault in printed
