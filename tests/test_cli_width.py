"""Every verb that prints fits 100 columns; `--wide` prints the full rows (issue 15).

The daemon verbs run against a real daemon on the simulated plant (tests/plant_harness.py); the
offline ones (points, config-history, report, simulate, sweep, cost, trip-test --dry-run) against
its config and state. Long text is provoked on purpose: a long reason on a hold, a state directory
with a long path.
"""

from __future__ import annotations

import contextlib
import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from controller import cli
from controller.cli.table import WIDTH, Col, render
from controller.cli.verbs.fleet import format_fleet
from controller.ops.fleet import SiteRow
from tests.plant_harness import Daemon, Sim

NOTE = re.compile(r"\((.+): not shown to fit 100 columns; --wide shows them\)")
LONG_REASON = ("night shift: holding the mode while the pool's plate heat exchanger is cleaned by the "
               "contractor, call the duty engineer before releasing")


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    # A deep working folder: paths in the output (config, state) are as long as an operator's.
    # (The socket path must stay under AF_UNIX's 108 bytes.)
    workdir = tmp_path_factory.mktemp("width") / "a-site-folder" / "heatctl"
    workdir.mkdir(parents=True)
    sim = Sim(workdir)
    d = Daemon(workdir, sim.config)
    try:
        d.start()
        d.ok("hold", "--reason", LONG_REASON)
        d.ok("release", "--reason", LONG_REASON)
        yield sim, d
    finally:
        d.stop()
        sim.stop()


def _check(name: str, narrow: str, wide: str) -> None:
    # The one exception: a single word longer than the width (a deep path) on a line of its own.
    long_lines = [(len(line), line) for line in narrow.splitlines() if len(line) > WIDTH and len(line.split()) > 1]
    assert not long_lines, f"{name}: lines wider than {WIDTH} columns: {long_lines}"
    assert narrow.strip(), f"{name} printed nothing"
    dropped = NOTE.search(narrow)
    if dropped:  # every column left out is in the wide output's header, and no note there
        assert not NOTE.search(wide), name
        for title in dropped.group(1).split(", "):
            assert title in wide and title not in narrow.replace(dropped.group(0), ""), (name, title)


def _both(run, *argv: str) -> tuple[str, str]:
    code, narrow, err = run(*argv)
    assert code == 0, f"{argv}: exit {code}: {err}"
    code, wide, err = run(*argv, "--wide")
    assert code == 0, f"{argv} --wide: exit {code}: {err}"
    _check(" ".join(argv), narrow, wide)
    return narrow, wide


def test_daemon_verbs_fit_100_columns_and_wide_shows_all(plant):
    sim, d = plant
    wide_lines = 0
    for argv in (["status"], ["alarms"], ["events"], ["envelope"]):
        narrow, wide = _both(d.cli, *argv)
        wide_lines += sum(len(line) > WIDTH for line in wide.splitlines())
    # The long reason is wrapped, never cut.
    narrow, _ = _both(d.cli, "events")
    assert "releasing" in narrow and "contractor" in narrow
    assert wide_lines > 0, "--wide printed nothing wider than the narrow layout"


def test_offline_verbs_fit_100_columns(plant, tmp_path):
    sim, d = plant
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    _both(_main, "points", "--config", str(sim.config), "--settle", "0.5")
    _both(_main, "config-history", "--state-dir", str(d.state_dir))
    _both(_main, "report", "--month", month, "--state-dir", str(d.state_dir), "--out", str(tmp_path))
    _both(_main, "trip-test", "it_overtemp", "--dry-run", "--config", str(sim.config))
    report = tmp_path / "a-report-folder-with-a-long-name-as-operators-make-them"
    _both(_main, "simulate", "--scenario", "pump-failure", "--hours", "2.5", "--tick", "5",
          "--report", str(report))
    _both(_main, "cost", "--kpis", str(report / "kpis.json"))


def test_comparison_and_sweep_fit_100_columns():
    narrow, wide = _both(_main, "simulate", "--scenario", "pump-failure", "--hours", "1", "--tick", "10",
                         "--compare", "--no-report")
    assert "good-practice" in narrow and "bound" in narrow
    _both(_main, "sweep", "--scenario", "pump-failure", "--hours", "0.5", "--tick", "10",
          "--set", "modes.tank_full_temp_c=60,62")


def test_fleet_table_fits_and_wide_shows_the_dropped_columns():
    rows = [SiteRow(site="a-very-long-site-name-north-campus-building-7", mode="safe_degrade", it_w=180_000.0,
                    delivered_w=150_000.0, dumped_w=20_000.0, boiler_w=0.0, erf_month=0.61,
                    carryable_min_24h_w=120_000.0,
                    alarms_by_owner={"facilities": 12, "it_operations": 3, "both": 1, "x" * 40: 2}),
            SiteRow(site="quiet", silent=True)]
    narrow, wide = "\n".join(format_fleet(rows)), "\n".join(format_fleet(rows, wide=True))
    _check("fleet", narrow, wide)


def test_the_formatter_drops_by_rank_then_wraps_and_wide_keeps_everything():
    cols = (Col("NAME"), Col("OWNER", drop=2), Col("VALUE", right=True, drop=1), Col("WHAT", wrap=True))
    rows = [("x" * 50, "o" * 20, "1.00", "word " * 30)]  # dropping both is not enough: WHAT wraps
    narrow = render(cols, rows)
    assert all(len(line) <= WIDTH for line in narrow)
    assert narrow[-1] == "(OWNER, VALUE: not shown to fit 100 columns; --wide shows them)"
    assert narrow[0].split() == ["NAME", "WHAT"]
    assert " ".join(line[52:].strip() for line in narrow[1:-1]).split() == ["word"] * 30
    wide = render(cols, rows, wide=True)
    assert len(wide) == 2 and "OWNER" in wide[0] and wide[1].rstrip().endswith("word")
