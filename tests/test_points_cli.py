"""`heatctl points` against the simulated plant on the wire (a real subprocess, free ports)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
import pytest_asyncio

from controller import cli
from controller.site.loader import load_config
from controller.site.paths import REPO_ROOT
from simulations.wire.sim_plant import SimPlant

from tests.plant_harness import sim_config

# A generous bound on interpreter start and imports (about 1 s here) in a loaded CI runner.
STARTUP_S = 5.0


# One simulated plant for the module; each test gets it back with no faults and no silences.
on_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sim(tmp_path_factory):
    loaded = sim_config(tmp_path_factory.mktemp("sim"))
    async with SimPlant(loaded, free_ports=True, start_time_of_day_s=12 * 3600) as s:
        yield s


@pytest_asyncio.fixture(loop_scope="module")
async def sim(shared_sim):
    yield shared_sim
    shared_sim.clear("all")


@pytest.fixture
def site_file(sim, tmp_path):
    return sim.write_config(tmp_path / "site.yaml")


async def heatctl(*args: str, timeout_s: float = 20.0) -> tuple[int, str, str, float]:
    """Run `heatctl ARGS` in a subprocess (the sim keeps serving in this event loop)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *args, cwd=str(REPO_ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - started


@on_module_loop
async def test_points_lists_every_point_good_and_exits_0(sim, site_file):
    code, out, err, _ = await heatctl("points", "--config", str(site_file), "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] and not report["critical_not_good"]
    rows = {r["point"]: r for r in report["points"]}
    assert set(rows) == set(sim.site.points)
    assert all(r["quality"] == "good" for r in rows.values()), [r for r in rows.values()
                                                                if r["quality"] != "good"]
    assert rows["it_supply_temp"]["driver"] == "bms_modbus" and rows["it_supply_temp"]["unit"] == "degC"
    assert rows["srv1_power"]["driver"] == "bmcs" and rows["tank_top_temp"]["driver"] == "bms_opcua"
    assert "Traceback" not in err

    code, out, err, _ = await heatctl("points", "--config", str(site_file))
    assert code == 0, out + err
    assert "it_supply_temp *" in out and "36 points, 36 good" in out
    assert "pymodbus" not in out + err  # its frame dumps are silenced


@on_module_loop
async def test_a_silent_modbus_server_makes_its_points_lost_and_exits_1(sim, site_file):
    sim.inject("silent", "bms_modbus")
    loaded = load_config(site_file)
    timeout_s = loaded.site.drivers["bms_modbus"].timeout_s
    retries = loaded.site.drivers["bms_modbus"].retries
    code, out, err, wall = await heatctl("points", "--config", str(site_file), "--json")
    assert code == 1, out + err
    report = json.loads(out)
    rows = {r["point"]: r for r in report["points"]}
    modbus = [p for p, r in rows.items() if r["driver"] == "bms_modbus"]
    assert modbus and all(rows[p]["quality"] == "lost" for p in modbus)
    others = [r for r in rows.values() if r["driver"] != "bms_modbus"]
    assert all(r["quality"] == "good" for r in others), [(r["point"], r["reason"], r["read_ms"]) for r in others if r["quality"] != "good"]
    assert "it_supply_temp" in report["critical_not_good"]
    # Each read is bounded by the driver's timeout (one request and its retries) plus the margin;
    # the verb re-reads a LOST driver for --settle (1.5 s) and then stops.
    assert rows["it_supply_temp"]["read_ms"] <= (timeout_s * (1 + retries) + 0.2) * 1000
    assert wall <= STARTUP_S + 1.5 + timeout_s * (1 + retries) + 1.0


@on_module_loop
async def test_a_wrong_port_makes_the_opcua_points_lost(sim, site_file, tmp_path):
    text = site_file.read_text().replace(f":{sim.ports['bms_opcua']}/", ":1/")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text)
    code, out, err, _ = await heatctl("points", "--config", str(wrong), "--settle", "0.5", "--json")
    rows = {r["point"]: r for r in json.loads(out)["points"]}
    assert rows["tank_top_temp"]["quality"] == "lost" and "refused" in rows["tank_top_temp"]["reason"]
    # No critical point comes from the BMS's OPC-UA server: lost, but the verb exits 0.
    assert code == 0 and rows["it_supply_temp"]["quality"] == "good"


@on_module_loop
async def test_write_takes_and_is_read_back(sim, site_file):
    code, out, err, _ = await heatctl("points", "--config", str(site_file),
                                      "--write", "d1_fan=37.5", "--reason", "commissioning D1")
    assert code == 0, out + err
    assert "d1_fan = 37.50 pct: took; read back 37.50 pct" in out
    assert "commissioning D1" in out
    assert sim.state()["commanded"]["d1_pct"] == 37.5

    code, out, err, _ = await heatctl("points", "--config", str(site_file),
                                      "--write", "power_cap=24000", "--reason", "cap test")
    assert code == 0, out + err
    assert sim.state()["bmc_limits_w"]["srv1"] == 3000.0


@pytest.mark.parametrize("args, message", [
    (["--write", "d1_fan=50"], "--write needs --reason"),
    (["--write", "d1_fan=50", "--reason", "  "], "--write needs --reason"),
    (["--write", "no_such_point=1", "--reason", "x"], "unknown point 'no_such_point'"),
    (["--write", "it_supply_temp=40", "--reason", "x"], "is a reading, not an actuator"),
    (["--write", "d1_fan=150", "--reason", "x"], "outside its range [0, 100] pct"),
    (["--write", "d1_fan=nan", "--reason", "x"], "outside its range"),
    (["--write", "d1_fan=fast", "--reason", "x"], "is not a number"),
    (["--write", "d1_fan", "--reason", "x"], "expects POINT=VALUE"),
])
def test_refused_writes_are_one_line_and_exit_2(args, message, capsys):
    # Refused before any device is contacted: no sim needed, the reference config is enough.
    code = cli.main(["points", "--config", str(REPO_ROOT / "config" / "reference-plant.yaml"), *args])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


def test_a_bad_config_is_reported_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: x}\nsite: {name: y}\n")
    assert cli.main(["points", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "duplicate key" in err and "Traceback" not in err
