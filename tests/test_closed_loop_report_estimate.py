"""The monthly report against an independent truth: a site WITHOUT a consumer heat meter, so the
report's delivered heat is the daemon's estimate from temperatures, flows and actuator positions
(controller.core.metering), compared with the plant model's own books (its exact meters).

The real Daemon runs on simulated time (simulations.runners.daemon_simtime) for four January days of
the pool year at a 60 s tick, writing real SQLite; `heatctl report --month 2026-01` then reads it.
The error is printed whatever it is (run with -s); the test holds it within the bound it states.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest
import structlog

from controller import cli
from controller.site.loader import load_config
from simulations.runners.daemon_simtime import SimClock, SimulatedPlant, run_daemon_for
from simulations.scenarios.definitions import SCENARIOS
import simulations.scenarios.year  # noqa: F401 - registers pool-year
from tests.step_helpers import REFERENCE

JAN_2026 = 1767225600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
TICK_S = 60.0
DAYS = 4
# What the estimate is held to. Measured: -10.8 % over these four days. The estimate
# (controller.core.metering) takes the building loop's transferred heat times the share of flow V1
# leaves to the consumer; but the branch through the tank returns hot (the tank is full) while
# the consumer's branch returns cold, so the consumer took more than its flow share of the heat,
# and the P3 discharge (~3 % here) is not counted at all. Held at 15 % so that a worse estimate
# fails; a heat meter (EN 1434 class 2: a few %) is the fix on a real site, a branch balance the
# fix in the estimate.
TOLERANCE = 0.15


def site_without_consumer_meter(tmp: Path) -> Path:
    text = REFERENCE.read_text().replace("tick_period_s: 1.0", f"tick_period_s: {TICK_S:g}")
    text, n = re.subn(r"\n  consumer_heat:\n(    .*\n)+", "\n", text)
    assert n == 1 and "role: consumer_heat" not in text
    text += "\nmetering:\n  max_gap_s: 180\n"
    path = tmp / "site.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    tmp = tmp_path_factory.mktemp("estimate")
    loaded = load_config(site_without_consumer_meter(tmp))
    state = str(tmp / "state")
    plant = SimulatedPlant(loaded, SCENARIOS["pool-year"], 0.0, TICK_S)
    clock = SimClock(plant, JAN_2026)

    async def days():
        plant.mark("start")
        await run_daemon_for(loaded, state, plant, clock, DAYS * DAY)
        plant.mark("end")

    asyncio.run(days())
    return tmp, state, plant


def test_report_heat_from_temperatures_and_flows_against_the_plant_books(run):
    tmp, state, plant = run
    out = tmp / "out"
    assert cli.main(["report", "--month", "2026-01", "--state-dir", state, "--out", str(out)]) == 0
    rep = json.loads((out / "heatctl-report-2026-01.json").read_text())
    e = rep["energy"]
    m = plant.truth.marks
    books = (m["end"]["delivered_j"] - m["start"]["delivered_j"]) / 3.6e6
    err = (e["delivered_kwh"] - books) / books
    pm = plant.plant.meters  # the plant was built at the start mark: its meters are this run's
    print(f"\nreport without a consumer meter: delivered {e['delivered_kwh']:.1f} kWh estimated from "
          f"temperatures and flows, {books:.1f} kWh in the plant's books over {DAYS} days: error {err:+.2%} "
          f"(books: consumer HX {pm.consumer_hx_j / 3.6e6:.1f} kWh + tank discharge {pm.discharge_j / 3.6e6:.1f} kWh"
          f" - returned {pm.returned_j / 3.6e6:.1f} kWh)")
    assert books > 1000.0  # four January days of the pool: the estimate had real heat to measure
    assert abs(err) <= TOLERANCE
