"""The monthly SLA report against the truth: the real Daemon for a simulated January on the plant model.

simulations.runners.daemon_simtime runs controller.daemon.runtime.Daemon on simulated time (a 60 s tick) with
SimulatedPlantDriver reading the plant model directly, writing the real SQLite history and events.
The month has a pump failure (a low_flow trip, acknowledged by an operator) and the daemon down for
three hours. `heatctl report --month 2026-01` is then compared with the plant's own meters over the
time the daemon ran: within 1 %.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path

import pytest
import structlog

from controller import cli
from controller.daemon.api_server import user_name
from controller.daemon.audit import AuditStore
from controller.site.loader import load_config
from controller.ops.monthly_report import build_report, parse_period, ReportError
from controller.core.requests import AckTripRequest
from simulations.runners.daemon_simtime import SimClock, SimulatedPlant, make_daemon, request, run_daemon_for
from simulations.plant.faults import Fault
from simulations.scenarios.definitions import SCENARIOS
import simulations.scenarios.year  # noqa: F401 - registers pool-year
from tests.step_helpers import REFERENCE

JAN_2026 = 1767225600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
TICK_S = 60.0


def sim_config(tmp: Path) -> Path:
    text = REFERENCE.read_text().replace("tick_period_s: 1.0", f"tick_period_s: {TICK_S:g}")
    # A 60 s tick meters every interval (the default refuses gaps over 10 s as unmetered).
    text += "\nmetering:\n  max_gap_s: 180\n"
    path = tmp / "site.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def january(tmp_path_factory):
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    tmp = tmp_path_factory.mktemp("month")
    loaded = load_config(sim_config(tmp))
    state = str(tmp / "state")
    plant = SimulatedPlant(loaded, SCENARIOS["pool-year"], 0.0, TICK_S)
    clock = SimClock(plant, JAN_2026)
    user = user_name(1000)
    # Day 6: P1 fails 10:00-12:00; the operator acknowledges low_flow at 12:15.
    clock.at(5 * DAY + 10 * 3600, lambda: plant.plant.inject(Fault("pump_failure", "p1")))
    clock.at(5 * DAY + 12 * 3600, lambda: plant.plant.clear("pump_failure", "p1"))
    holder: dict = {}
    clock.at(5 * DAY + 12.25 * 3600, lambda: request(holder["d"], AckTripRequest(
        reason="P1 replaced", user=user, trip="low_flow"), uid=1000))

    async def month():
        plant.mark("start")
        holder["d"] = make_daemon(loaded, state, plant, clock)
        await run_daemon_for(loaded, state, plant, clock, 12 * DAY, daemon=holder["d"])
        plant.mark("stop")
        clock.idle(3 * 3600, TICK_S)  # the daemon is down: the plant's own fallback runs it
        plant.mark("restart")
        await run_daemon_for(loaded, state, plant, clock, 31 * DAY - plant.t)
        plant.mark("end")

    asyncio.run(month())
    return tmp, state, plant


def truth(plant, key):
    m = plant.truth.marks
    return (m["stop"][key] - m["start"][key]) + (m["end"][key] - m["restart"][key])


def test_month_report_matches_the_plant_meters_within_1pct(january):
    tmp, state, plant = january
    out = tmp / "out"
    assert cli.main(["report", "--month", "2026-01", "--state-dir", state, "--out", str(out)]) == 0
    rep = json.loads((out / "heatctl-report-2026-01.json").read_text())
    md = (out / "heatctl-report-2026-01.md").read_text()
    e = rep["energy"]
    delivered = truth(plant, "delivered_j") / 3.6e6
    it = truth(plant, "it_j") / 3.6e6
    erf = truth(plant, "delivered_j") / (truth(plant, "it_j") + truth(plant, "aux_j"))
    assert e["delivered_kwh"] == pytest.approx(delivered, rel=0.01)
    assert e["it_kwh"] == pytest.approx(it, rel=0.01)
    assert e["erf"] == pytest.approx(erf, rel=0.01)
    assert e["boiler_kwh"] == pytest.approx(truth(plant, "boiler_j") / 3.6e6, rel=0.01, abs=1.0)
    # Compute availability: throttled time (the trip's cap, its slow hand-back) within 1 % (or a tick).
    thr = truth(plant, "throttled_s") / 3600
    assert thr > 1.0
    assert rep["compute"]["throttled_hours"] == pytest.approx(thr, rel=0.01, abs=TICK_S / 3600)
    assert rep["thermal"]["deficit_kh"] == pytest.approx(truth(plant, "deficit_ks") / 3600, rel=0.01, abs=0.05)
    assert rep["thermal"]["below_setpoint_hours"] == pytest.approx(truth(plant, "below_s") / 3600, rel=0.01,
                                                                   abs=TICK_S / 3600)
    # The gap: named with its times, nothing guessed for it.
    gap_from = JAN_2026 + plant.truth.marks["stop"]["t_s"]
    gaps = rep["coverage"]["gaps"]
    assert len(gaps) == 1 and 179 <= gaps[0]["minutes"] <= 182, gaps
    assert abs(_ts(gaps[0]["from"]) - gap_from) <= 2 * TICK_S
    assert "not in these figures" in e["not_counted"] and gaps[0]["from"] in md
    # The trip, its acknowledgement by the operator, and its restore.
    trips = [t for t in rep["trips"] if t["trip"] == "low_flow"]
    assert len(trips) == 1
    t = trips[0]
    assert t["acknowledged_by"] == user_name(1000) and t["ack_reason"] == "P1 replaced"
    assert 2 * 3600 <= t["time_to_acknowledge_s"] <= 2.35 * 3600
    assert t["time_to_restore_s"] >= t["time_to_acknowledge_s"]
    assert any(i["reason"] == "P1 replaced" for i in rep["interventions"])
    assert [d["kind"] for d in rep["daemon"]] == ["daemon_start", "daemon_stop", "daemon_start", "daemon_stop"]
    assert "## Trips" in md and "low_flow" in md and "P1 replaced" in md
    print(f"\nreport vs plant: delivered {e['delivered_kwh']:.1f} / {delivered:.1f} kWh, ERF {e['erf']:.4f} / "
          f"{erf:.4f}, throttled {rep['compute']['throttled_hours']:.3f} / {thr:.3f} h, "
          f"deficit {rep['thermal']['deficit_kh']:.3f} / {truth(plant, 'deficit_ks') / 3600:.3f} K.h")


def _ts(text: str) -> float:
    import datetime as dt
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_old_rows_without_sla_columns_stay_readable(tmp_path):
    """A database written before the SLA columns: opened, migrated in place, its rows read as NULL."""
    import sqlite3
    db = sqlite3.connect(tmp_path / "heatctl.sqlite3")
    db.executescript("""
        CREATE TABLE history(minute INTEGER PRIMARY KEY, ts REAL NOT NULL, mode TEXT NOT NULL,
            samples INTEGER NOT NULL, degraded_s REAL NOT NULL, it_w REAL, captured_w REAL,
            transferred_w REAL, delivered_w REAL, to_tank_w REAL, dumped_w REAL, boiler_w REAL,
            it_supply_c REAL, b_supply_c REAL, consumer_supply_c REAL, consumer_setpoint_c REAL,
            boiler_on_s REAL NOT NULL DEFAULT 0, counters TEXT NOT NULL);""")
    db.execute("INSERT INTO history VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (int(JAN_2026 // 60), JAN_2026, "normal", 60, 0, 30000, 0, 0, 20000, 0, 0, 0, 40, 45, 39.5, 40,
                0, json.dumps({"delivered_j": 1.2e6, "it_j": 1.8e6})))
    db.commit()
    db.close()
    store = AuditStore(tmp_path)  # the daemon's open adds the columns
    store.close()
    store = AuditStore(tmp_path, read_only=True)
    start, end, label = parse_period("2026-01", None, None)
    rep = build_report(store, start, end, label)
    store.close()
    assert rep["coverage"]["old_rows_without_sla_columns"] == 1
    assert rep["thermal"]["min_supply_c"] == 39.5
    assert rep["coverage"]["gaps"][0]["minutes"] == 31 * 1440 - 1


def test_period_arguments_fail_with_one_line(tmp_path, capsys):
    with pytest.raises(ReportError):
        parse_period("2026-13", None, None)
    with pytest.raises(ReportError):
        parse_period(None, "2026-01-02", "2026-01-01")
    assert cli.main(["report", "--month", "2026-01", "--state-dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no audit database" in err
    a, b, _ = parse_period(None, "2026-01-01T00:00Z", "2026-01-02T00:00")
    assert b - a == DAY and math.isclose(a, JAN_2026)
