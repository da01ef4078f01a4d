"""`heatctl fleet` and the fleet rules against a real central Prometheus (remote-write receiver) fed
by real Prometheus agents, one per site, built from docs/fleet/site-agent.yml.

The sites' daemons are stand-ins (tests/fleet_harness.FakeSiteExposition, named as fakes): this test
is about the fleet path (agent, remote write, central store, rules, CLI), not the daemon. The
central store's lookback is 10 s here (5 m by default) so that a silent site shows within seconds, yet
samples that reach it a few seconds late on a loaded machine are still seen.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest

from controller import cli
from controller.cli.verbs.fleet import format_fleet
from controller.ops.fleet import fleet_table, query
from tests.fleet_harness import PROMETHEUS, FLEET, FakeSiteExposition, agent, central, free_port
from tests.plant_harness import wait_for

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus")


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["fleet", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet")
    sites = {"dumper": FakeSiteExposition(dumped_w=25_000.0),
             "boiler": FakeSiteExposition(boiler_w=40_000.0, mode="safe_degrade", carryable=(50_000.0, 20_000.0),
                                          alarms=(("facilities", 2), ("it_operations", 1))),
             "quiet": FakeSiteExposition()}
    store = central(work, lookback="10s")
    agents = {name: agent(work, name, exp.port, store.url) for name, exp in sites.items()}
    try:
        wait_for(lambda: len(query(store.url, "group by (site) (heatctl_ticks_total)")) == 3, 60,
                 "all three sites in the central store")
        yield store, agents, sites
    finally:
        for a in agents.values():
            a.stop()
        store.stop()
        for s in sites.values():
            s.stop()


def test_fleet_table_lists_every_site_with_its_figures(fleet):
    store, _, _ = fleet
    # ERF needs two samples of each counter in the store.
    rows = wait_for(lambda: (r := fleet_table(store.url)) and all(x.erf_month is not None for x in r) and r, 60,
                    "ERF for every site")
    by = {r.site: r for r in rows}
    assert sorted(by) == ["boiler", "dumper", "quiet"]
    assert by["boiler"].mode == "safe_degrade" and by["dumper"].mode == "normal"
    assert by["dumper"].dumped_w == 25_000 and by["boiler"].boiler_w == 40_000
    assert by["boiler"].carryable_min_24h_w == 20_000
    assert by["boiler"].alarms_by_owner == {"facilities": 2, "it_operations": 1}
    assert by["quiet"].erf_month == pytest.approx(0.3, abs=0.02)
    assert all(not r.silent for r in rows)
    lines = format_fleet(rows)
    assert all(len(line) <= 100 for line in lines)
    code, out, err = run_cli("--url", store.url)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["boiler", "dumper", "quiet"]
    code, out, _ = run_cli("--url", store.url, "--json")
    assert {r["site"] for r in json.loads(out)} == {"boiler", "dumper", "quiet"}


def test_fleet_recording_rules_and_dashboard_queries_return_every_site(fleet):
    store, _, _ = fleet
    for record in ("site:heatctl_it_power_watts:sum", "site:heatctl_dumped_watts:sum",
                   "site:heatctl_carryable_watts_24h:min", "site:heatctl_erf_30d:ratio"):
        wait_for(lambda: {s["metric"]["site"] for s in query(store.url, record)} == {"boiler", "dumper", "quiet"},
                 60, f"{record} for every site")
    dumped = wait_for(lambda: query(store.url, "site:heatctl_dumped_while_boiler_elsewhere_watts:sum"), 60,
                      "dumped while a boiler burns elsewhere")
    assert [s["metric"]["site"] for s in dumped] == ["dumper"]
    # Every instant query of the fleet dashboard's summary table answers with all three sites.
    dash = json.loads((FLEET / "heatctl-fleet-dashboard.json").read_text())
    table = next(p for p in dash["panels"] if p["type"] == "table")
    for t in table["targets"]:
        sites = {s["metric"].get("site") for s in query(store.url, t["expr"])}
        assert sites == {"boiler", "dumper", "quiet"}, t["expr"]


def test_fleet_names_a_silent_site_and_exits_1(fleet):
    store, agents, _ = fleet
    agents["quiet"].stop()
    try:
        rows = wait_for(lambda: [r for r in fleet_table(store.url) if r.silent], 60, "the quiet site silent")
        assert [r.site for r in rows] == ["quiet"]
        code, out, err = run_cli("--url", store.url)
        assert code == 1
        assert "quiet" in out and "SILENT" in out
        assert err.strip() == "heatctl fleet: silent (no series in the last 5 minutes): quiet"
    finally:
        agents["quiet"].start()


def test_fleet_store_unreachable_is_one_line_and_exit_3(monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("HEATCTL_FLEET_URL", f"http://127.0.0.1:{port}")
    code, out, err = run_cli()
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"heatctl fleet: cannot reach the fleet store at http://127.0.0.1:{port}")


def test_fleet_without_url_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("HEATCTL_FLEET_URL", raising=False)
    code, _, err = run_cli()
    assert code == 2 and "--url" in err and "HEATCTL_FLEET_URL" in err


def test_fleet_rules_pass_their_promtool_tests():
    promtool = Path(PROMETHEUS).with_name("promtool")
    r = subprocess.run([str(promtool), "test", "rules", "fleet-rules.test.yaml"], cwd=FLEET,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
