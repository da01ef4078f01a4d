"""`heatctl points --write` to an OPC-UA actuator prints the driver's verified read-back (issue 13).

The subscription publishes every 5 s here, so the settling read after the write still holds the
previous value in the subscription's cache: the line must show the value the driver read back.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import yaml

from controller.site.loader import parse_config_text
from controller.site.paths import REPO_ROOT
from drivers.registry import driver_points
from simulations.wire.opcua_server import OpcuaPlantServer

REFERENCE = REPO_ROOT / "config" / "reference-plant.yaml"


def site_with_d1_fan_on_opcua(tmp_path: Path) -> tuple[Path, dict]:
    data = yaml.safe_load(REFERENCE.read_text())
    for d in data["drivers"].values():
        if d.get("kind") == "ipmi":
            d["credentials_file"] = str(REPO_ROOT / d["credentials_file"])
    data["points"]["d1_fan"]["source"] = {"driver": "bms_opcua", "node_id": "ns=2;s=DryCooler.Fan"}
    data["drivers"]["bms_opcua"].update(publishing_interval_ms=5000, keepalive_count=2)
    return tmp_path / "site.yaml", data


async def test_write_to_an_opcua_actuator_prints_the_verified_readback(tmp_path):
    path, data = site_with_d1_fan_on_opcua(tmp_path)
    loaded = parse_config_text(yaml.safe_dump(data), str(path))
    server = OpcuaPlantServer(driver_points(loaded, "bms_opcua"), initial_values={"d1_fan": 12.5})
    await server.start()
    try:
        data["drivers"]["bms_opcua"]["endpoint"] = server.endpoint
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller.cli", "points", "--config", str(path),
            "--write", "d1_fan=40", "--reason", "fan test", "--settle", "0.5",
            cwd=str(REPO_ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await server.stop()
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert "d1_fan = 40.00 pct: took; read back 40.00 pct, verified by the driver" in text, text
    assert server.get_value("d1_fan") == pytest.approx(40.0)
    assert "Traceback" not in err.decode()
