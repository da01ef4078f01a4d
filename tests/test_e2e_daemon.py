"""End to end: the simulated plant (SimPlant in its own process, real Modbus/OPC-UA/IPMI servers on
127.0.0.1 with free ports) and `heatctl run` as a real process, driven through the CLI.

The daemon runs a 0.25 s tick with short grace and dwell times (the e2e config below) so that every
scenario completes in seconds. Every wait is a poll on a condition with a bounded deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from controller.daemon.audit import AuditStore

from tests.plant_harness import HEARTBEAT_TIMEOUT_S, ROOT, Daemon, Sim, wait_for

pytestmark = pytest.mark.skipif(
    not (ROOT / "drivers" / "registry.py").exists() or not (ROOT / "simulations" / "wire" / "sim_plant.py").exists(),
    reason="needs drivers/registry.py and simulations/wire/sim_plant.py")

@pytest.fixture
def plant():
    # Short paths: the unix socket path must fit in 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="hc-e2e-", dir="/tmp"))
    sim = Sim(workdir)
    daemon = Daemon(workdir, sim.config)
    try:
        yield sim, daemon
    finally:
        daemon.stop()
        sim.stop()
        if os.environ.get("HEATCTL_KEEP_E2E"):
            print(f"e2e files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def test_modes_override_and_trips_through_the_cli(plant):
    sim, d = plant
    d.start()
    # `heatctl` as its own process: the entry point, the four questions first.
    p = d.cli_process("status")
    assert p.returncode == 0, p.stderr
    first = [line for line in p.stdout.splitlines() if not line.startswith(" ")]  # labels, not their wrapped rest
    assert first[0].startswith("IT power") and first[1].startswith("Heat") and first[2].startswith("Loop")
    assert first[3].startswith("Consumer")

    # Every mode and back, each with a reason.
    for mode in ("buffer_charging", "bypass", "safe_degrade", "normal"):
        out = d.ok("mode", mode, "--reason", f"commissioning: step through {mode}")
        assert out.startswith("accepted:")
        assert d.status()["mode"]["mode"] == mode
    d.ok("release", "--reason", "commissioning done")
    assert d.status()["mode"]["held"] is False

    # An override that expires on its own.
    d.ok("override", "d1_fan", "35", "--for", "1s", "--reason", "fan bearing check")
    assert d.status()["outputs"]["d1_fan"]["source"] == "override"
    wait_for(lambda: d.status()["outputs"]["d1_fan"]["source"] != "override", 5, "the override to expire")
    assert d.events("override_expired")

    # A trip test shows the actions taken that tick; acknowledged, it resets.
    out = d.ok("trip-test", "it_overtemp", "--reason", "annual proof test")
    assert "actions taken that tick" in out and "p1_speed" in out and "boiler_enable" in out
    d.ok("ack", "it_overtemp", "--reason", "proof test passed")
    wait_for(lambda: "it_overtemp" not in d.status()["trips"], 5, "it_overtemp to reset")

    # A real condition: a leak. The trip holds through a refused `mode normal`...
    assert sim.request("inject", kind="leak", target="rack")["ok"]
    wait_for(lambda: d.status()["trips"].get("leak", {}).get("latched"), 5, "the leak trip")
    st = d.status()
    assert st["mode"]["mode"] == "safe_degrade"
    assert st["outputs"]["p1_speed"] == {**st["outputs"]["p1_speed"], "value": 0.0, "source": "trip"}
    code, out, err = d.cli("mode", "normal", "--reason", "want heat back")
    assert code == 1 and "refused: trip latched: leak" in err and err.count("\n") == 1
    # ...is still latched after the condition clears (not yet acknowledged)...
    assert sim.request("clear", kind="leak")["ok"]
    wait_for(lambda: not d.status()["trips"]["leak"]["active"], 5, "the leak condition to clear")
    assert d.status()["trips"]["leak"]["latched"]
    # ...and resets with the ack, then the plant leaves safe_degrade after the exit dwell. With
    # the pumps stopped by the leak trip, low_flow may have tripped too: acknowledge what latched.
    d.ok("ack", "leak", "--reason", "leak found and fixed: loose fitting on rack 2")
    wait_for(lambda: not any(t["active"] for t in d.status()["trips"].values()), 5, "every condition clear")
    for trip in d.status()["trips"]:
        d.ok("ack", trip, "--reason", "consequence of the leak isolation")
    wait_for(lambda: d.status()["mode"]["mode"] == "normal", 10, "normal after the leak")
    kinds = [e["kind"] for e in d.events()]
    for k in ("mode_changed", "request_accepted", "override_set", "override_expired", "trip_test",
              "trip", "trip_acked", "trip_reset", "request_refused"):
        assert k in kinds, k


def test_modbus_silent_goes_to_safe_degrade_and_back(plant):
    sim, d = plant
    d.start()
    t0 = time.monotonic()
    assert sim.request("inject", kind="silent", target="bms_modbus")["ok"]
    st = wait_for(lambda: (s := d.status())["mode"]["mode"] == "safe_degrade" and s, 8, "safe_degrade")
    assert time.monotonic() - t0 < 8
    # In the daemon's own time: safe_degrade within critical_grace_s (1 s) of the reading going bad,
    # plus a tick or two (0.25 s each) of rounding.
    bad = next(e for e in d.events("reading_bad") if e["point"] == "it_supply_temp")
    degraded = next(e for e in d.events("mode_changed") if e["fields"].get("dest") == "safe_degrade")
    assert 1.0 <= degraded["ts"] - bad["ts"] <= 1.0 + 2 * 0.25 + 0.1
    assert not st["readings"]["it_supply_temp"]["good"]
    assert st["drivers"]["bms_modbus"]["state"] == "down"
    assert "critical reading" in st["mode"]["cause"]
    assert sim.request("clear", kind="silent", target="bms_modbus")["ok"]
    wait_for(lambda: d.status()["drivers"]["bms_modbus"]["state"] == "up", 5, "modbus readings again")
    wait_for(lambda: d.status()["mode"]["mode"] == "normal", 8, "normal after the exit dwell")
    outage = d.events("driver_outage")
    recovered = d.events("driver_recovered")
    assert len(outage) == 1 and outage[0]["fields"]["driver"] == "bms_modbus"
    assert len(recovered) == 1
    # Logged once on failure and once on recovery, not every tick.
    lines = (d.workdir / "daemon-1.log").read_text().splitlines()
    logs = [json.loads(line) for line in lines if line.startswith("{")]
    assert sum(1 for e in logs if e.get("event") == "driver_outage") == 1
    assert sum(1 for e in logs if e.get("event") == "driver_recovered") == 1


def test_sighup_bad_and_good_config_then_sigterm_and_restart_keep_energy(plant):
    sim, d = plant
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(d.workdir / "notify")
    notify.bind(notify_path)
    notify.settimeout(10)
    d.notify = notify_path
    d.start()
    assert notify.recv(4096).decode().startswith("READY=1")
    sha0 = d.status()["daemon"]["config_sha256"]
    good = d.config.read_text()

    # A broken config: refused with its problem lines, the old one keeps running.
    d.config.write_text(good.replace("tick_period_s: 0.25", "tick_period_s: 0.25\ntick_period_s: 0.5"))
    d.signal(signal.SIGHUP)
    refused = wait_for(lambda: d.events("config_refused"), 5, "config_refused")
    assert "duplicate key" in refused[0]["fields"]["problems"][0]
    ticks = d.status()["ticks"]["count"]
    wait_for(lambda: d.status()["ticks"]["count"] > ticks + 2, 5, "ticks on the old config")
    assert d.status()["daemon"]["config_sha256"] == sha0

    # A good one: swapped in between ticks.
    data = yaml.safe_load(good)
    data["loops"]["consumer_supply"]["setpoint"] = 41.0
    d.config.write_text(yaml.safe_dump(data, sort_keys=False))
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.status()["daemon"]["config_sha256"] != sha0, 5, "the new config")
    assert d.status()["summary"]["consumer_setpoint_c"] == 41.0
    assert d.status()["mode"]["mode"] == "normal"  # a reload is not a restart: no trip to safe state

    # SIGTERM: exit 0, the safe state written, counters saved.
    wait_for(lambda: d.status()["energy"]["delivered_j"] > 0, 5, "some delivered heat")
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    msgs = []
    with contextlib.suppress(socket.timeout):
        notify.settimeout(0.5)
        while True:
            msgs.append(notify.recv(4096).decode())
    assert any(m.startswith("STOPPING=1") for m in msgs)
    notify.close()
    cmd = sim.state()["commanded"]
    assert cmd["p1_pct"] == 100.0 and cmd["d1_pct"] == 100.0 and cmd["boiler_enable"] is True
    store = AuditStore(d.state_dir, read_only=True)
    saved, _ = store.load_energy()
    last = store.events(kinds=["daemon_stop"])[0][-1]
    store.close()
    assert last.fields["delivered_j"] == saved.delivered_j and saved.delivered_j > 0

    # Restart: the counters continue from exactly what was saved (never lost, never counted twice).
    d.notify = None
    d.start()
    start = d.events("daemon_start")[-1]
    assert start["fields"]["energy_restored"] is True
    assert start["fields"]["delivered_j"] == saved.delivered_j
    assert d.status()["energy"]["delivered_j"] >= saved.delivered_j


def test_sigkill_leaves_the_plant_to_fall_back_on_its_own(plant):
    sim, d = plant
    d.start()
    assert sim.state()["fallback_active"] is False
    hb = sim.state()["commanded"]
    d.signal(signal.SIGKILL)
    d.wait_exit()
    t0 = time.monotonic()
    st = wait_for(lambda: (s := sim.state())["fallback_active"] and s, HEARTBEAT_TIMEOUT_S + 3,
                  "the plant's own fallback")
    assert time.monotonic() - t0 <= HEARTBEAT_TIMEOUT_S + 3
    assert st["effective"]["boiler_enable"] is True and st["effective"]["d1_pct"] > 0
    assert hb  # the commands the daemon left behind are still what the plant was told
