"""Configs that load but could not protect the plant (issue 13): each accepted-but-unsafe mutant of the
reference config now gives exactly one problem, naming the key and the rule it breaks.

Every mutant is the shipped reference config with one edit, checked through `heatctl check-config
--json` (the real CLI's entry point, in-process); a few go through the installed command line too.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from controller.cli import main
from controller.site import source_checks
from controller.site.loader import load_config, parse_config_text
from controller.site.rules import RULES, WAIVABLE

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "config" / "reference-plant.yaml"
BASE: dict[str, Any] = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))


def P(name: str) -> Callable[[dict], dict]:
    return lambda d: d["points"][name]


def setp(path: str, value: Any) -> Callable[[dict], None]:
    """Set a dotted path (list indices as numbers); the value None deletes the key."""
    def apply(d: dict) -> None:
        parts = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = d
        for part in parts[:-1]:
            node = node[part]
        if value is None:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value
    return apply


def unwaive(key: str) -> Callable[[dict], None]:
    """Drop the reference's waiver of `key`: a waiver whose problem is gone is itself a problem."""
    def apply(d: dict) -> None:
        d["waive"] = [w for w in d["waive"] if w["key"] != key]
    return apply


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def apply(d: dict) -> None:
        for e in edits:
            e(d)
    return apply


# (id, edit, the key the one problem names, its rule)
MUTANTS: list[tuple[str, Callable[[dict], None], str, str]] = [
    # every value the site can send, representable by its register
    ("heartbeat-always-zero", setp("points.heartbeat.range", [0, 0.5]), "points.heartbeat.range", "heartbeat"),
    ("heartbeat-overflows-uint16", setp("points.heartbeat.range", [0, 100000]), "points.heartbeat.range", "heartbeat"),
    ("heartbeat-not-from-zero", setp("points.heartbeat.range", [1, 65535]), "points.heartbeat.range", "heartbeat"),
    ("heartbeat-scaled", setp("points.heartbeat.source.scale", 0.1), "points.heartbeat.source.scale", "heartbeat"),
    ("heartbeat-on-a-coil", both(setp("points.heartbeat.source.table", "coil"),
                                 setp("points.heartbeat.source.data_type", "bool"),
                                 setp("points.heartbeat.source.address", 5)),
     "points.heartbeat.range", "heartbeat"),
    ("scale-rounds-every-command-to-0", setp("points.p1_speed.source.scale", 1e30),
     "points.p1_speed.source.scale", "register_resolution"),
    ("actuator-range-above-uint16", setp("points.p1_speed.range", [0, 10000]), "points.p1_speed.range", "register_fit"),
    ("actuator-negative-on-uint16", setp("points.v1_position.range", [-10, 100]),
     "points.v1_position.range", "register_fit"),
    ("actuator-overflows-int16", both(setp("points.d1_fan.source.data_type", "int16"),
                                      setp("points.d1_fan.source.scale", 0.001)),
     "points.d1_fan.range", "register_fit"),
    ("actuator-offset-out-of-register", setp("points.p2_speed.source.offset", 1000),
     "points.p2_speed.range", "register_fit"),
    ("actuator-scale-zero", setp("points.p2_speed.source.scale", 0), "points.p2_speed.source.scale", "register_fit"),
    ("reading-scale-zero", both(setp("points.loop_pressure.source.data_type", "uint16"),
                                setp("points.loop_pressure.source.scale", 0)),
     "points.loop_pressure.source.scale", "register_fit"),
    ("actuator-beyond-float32", both(setp("points.p3_speed.source.data_type", "float32"),
                                     setp("points.p3_speed.source.address", 40),
                                     setp("points.p3_speed.range", [0, 1e39])),
     "points.p3_speed.range", "register_fit"),
    ("bool-actuator-range-2", setp("points.boiler_enable.range", [0, 2]), "points.boiler_enable.range", "register_fit"),
    # trip limits strictly inside the range where they can fire
    ("low-flow-limit-at-range-min", setp("trips.low_flow.limit", 0), "trips.low_flow.limit", "trip_can_fire"),
    ("low-flow-limit-below-range", setp("trips.low_flow.limit", -1), "trips.low_flow.limit", "trip_can_fire"),
    ("high-trip-at-range-max", both(setp("trips.it_overtemp.limit", 90), setp("trips.it_overtemp.alarm", 89)),
     "trips.it_overtemp.limit", "trip_can_fire"),
    ("high-trip-beyond-register", both(setp("points.it_supply_temp.source.data_type", "int16"),
                                       setp("points.it_supply_temp.source.scale", 0.001)),
     "trips.it_overtemp.limit", "trip_can_fire"),
    ("low-flow-idle-above-site-power", setp("trips.low_flow.it_idle_w", 40000),
     "trips.low_flow.it_idle_w", "trip_can_fire"),
    # min below max everywhere
    ("bmc-min-above-max", setp("drivers.bmcs.bmcs.0.min_power_w", 6000),
     "drivers.bmcs.bmcs[0].min_power_w", "min_max"),
    ("bmc-min-equals-max", setp("drivers.bmcs.bmcs.2.min_power_w", 5000),
     "drivers.bmcs.bmcs[2].min_power_w", "min_max"),
    ("modbus-reconnect-min-above-max", setp("drivers.bms_modbus.reconnect_min_s", 10),
     "drivers.bms_modbus.reconnect_min_s", "min_max"),
    ("opcua-reconnect-min-above-max", setp("drivers.bms_opcua.reconnect_min_s", 10),
     "drivers.bms_opcua.reconnect_min_s", "min_max"),
    ("workload-resumes-above-its-shed-threshold",
     setp("workload", {"nodes": ["n1"], "shed_above_soc": 0.8, "resume_below_soc": 0.9}),
     "workload.resume_below_soc", "min_max"),
    ("planner-killed-before-its-limit", setp("planning", {"solve_time_limit_s": 5, "kill_after_s": 1}),
     "planning.kill_after_s", "min_max"),
    # setpoints inside their measurement's range
    ("dump-setpoint-minus-1e9", setp("loops.dump.setpoint", -1e9), "loops.dump.setpoint", "setpoint_range"),
    ("consumer-setpoint-1e9", setp("loops.consumer_supply.setpoint", 1e9),
     "loops.consumer_supply.setpoint", "setpoint_range"),
    ("dump-offset-above-range", setp("policy.heat_first.dump_offset_k", 100),
     "policy.heat_first.dump_offset_k", "setpoint_range"),
    ("it-delta-t-beyond-span", setp("policy.compute_first.it_delta_t_k", 500),
     "policy.compute_first.it_delta_t_k", "setpoint_range"),
    ("cap-target-below-range", setp("policy.compute_first.cap_margin_k", 100),
     "policy.compute_first.cap_margin_k", "setpoint_range"),
    ("tank-full-above-range", setp("modes.tank_full_temp_c", 200), "modes.tank_full_temp_c", "setpoint_range"),
    # no register shared by two points, no overlapping multi-register points
    ("two-points-one-input-register", setp("points.ambient_temp.source.address", 10),
     "points.ambient_temp.source.address", "register_shared"),
    ("float32-at-1-overlaps-0", setp("points.it_return_temp.source.address", 1),
     "points.it_return_temp.source.address", "register_overlap"),
    ("two-actuators-one-holding-register", setp("points.p2_speed.source.address", 0),
     "points.p2_speed.source.address", "register_shared"),
    ("two-leaks-one-discrete-input", setp("points.leak_rack.source.address", 0),
     "points.leak_rack.source.address", "register_shared"),
    ("two-points-one-opcua-node", setp("points.tank_bottom_temp.source.node_id", "ns=2;s=Tank.TopTemp"),
     "points.tank_bottom_temp.source.node_id", "register_shared"),
    ("two-servers-one-bmc", setp("points.srv2_power.source.bmc", "srv1"), "points.srv2_power.source.bmc",
     "register_shared"),
    # the safety roles present, critical and guarded by their trips
    ("it-supply-not-critical", both(setp("points.it_supply_temp.critical", False),
                                    unwaive("points.it_supply_temp.frozen_after_s")),
     "points.it_supply_temp.critical", "safety_role"),
    # (the reference waives frozen detection on the IT flow: that waiver goes with its problem)
    ("it-flow-not-critical", both(setp("points.it_flow.critical", False), unwaive("points.it_flow.frozen_after_s")),
     "points.it_flow.critical", "safety_role"),
    ("leak-not-critical", setp("points.leak_rack.critical", False), "points.leak_rack.critical", "safety_role"),
    ("leak-trip-deleted", setp("trips.leak", None), "trips", "safety_trip"),
    ("low-flow-trip-deleted", setp("trips.low_flow", None), "trips", "safety_trip"),
    ("low-flow-trip-on-building-flow", setp("trips.low_flow.point", "b_flow"), "trips", "safety_trip"),
    ("overtemp-trip-deleted", setp("trips.it_overtemp", None), "trips", "safety_trip"),
    ("overtemp-trip-does-not-cap", setp("trips.it_overtemp.actions.power_cap", None),
     "trips.it_overtemp.actions", "safety_trip"),
    ("leak-trip-caps-at-full-power", setp("trips.leak.actions.power_cap", 40000), "trips.leak.actions",
     "safety_trip"),
    ("server-power-range-below-bmc-max", setp("points.srv3_power.range", [0, 3000]),
     "points.srv3_power.range", "safety_role"),
    ("sensor-lost-trip-deleted", setp("trips.sensor_lost", None), "trips", "sensor_lost_trip"),
    # staleness and frozen detection bounded on critical points
    ("max-age-1e30-on-critical", setp("points.it_supply_temp.max_age_s", 1e30),
     "points.it_supply_temp.max_age_s", "staleness_bound"),
    ("frozen-after-1e30-on-critical", both(setp("points.it_return_temp.frozen_after_s", 1e30),
                                           unwaive("points.it_return_temp.frozen_after_s")),
     "points.it_return_temp.frozen_after_s", "frozen_bound"),
    ("frozen-detection-waiver-removed", unwaive("points.it_return_temp.frozen_after_s"),
     "points.it_return_temp.frozen_after_s", "frozen_required"),
    ("critical-grace-1e30", setp("modes.critical_grace_s", 1e30), "modes.critical_grace_s", "grace_bound"),
    ("sensor-lost-grace-1e30", setp("trips.sensor_lost.grace_s", 1e30), "trips.sensor_lost.grace_s", "grace_bound"),
    # loop rates sane
    ("power-cap-rate-down-1e-300", setp("loops.power_cap.rate_down_per_s", 1e-300),
     "loops.power_cap.rate_down_per_s", "safety_slew"),
    ("dump-rate-up-1e-300", setp("loops.dump.rate_up_per_s", 1e-300), "loops.dump.rate_up_per_s", "safety_slew"),
    ("p1-rate-up-too-slow", setp("loops.it_delta_t.rate_up_per_s", 0.001),
     "loops.it_delta_t.rate_up_per_s", "safety_slew"),
    ("valve-rate-down-1e-300", setp("loops.consumer_supply.rate_down_per_s", 1e-300),
     "loops.consumer_supply.rate_down_per_s", "loop_slew"),
    # Modicon-style addresses (issue 15)
    ("modicon-holding-40001", setp("points.p1_speed.source.address", 40001),
     "points.p1_speed.source.address", "modicon_address"),
    ("modicon-input-30015", setp("points.loop_pressure.source.address", 30015),
     "points.loop_pressure.source.address", "modicon_address"),
]


def write(tmp_path: Path, data: dict, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def check_json(path: Path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["check-config", "--config", str(path), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_the_reference_config_is_clean(tmp_path, capsys):
    rc, out = check_json(write(tmp_path, copy.deepcopy(BASE)), capsys)
    # Clean but for its waivers (frozen detection on the simulated plant's noiseless sensors, and on
    # the IT flow: see the config's comments).
    assert rc == 0 and out["ok"], out
    assert [(p["key"], p["waived"]) for p in out["problems"]] == [
        (f"points.{n}.frozen_after_s", True) for n in ("it_supply_temp", "it_return_temp", "it_flow", "b_return_temp")]


def test_enough_mutant_classes():
    # issue 13: 48 accepted-but-unsafe mutant classes; each rule of the list has its mutants.
    assert len(MUTANTS) >= 48
    assert len({m[0] for m in MUTANTS}) == len(MUTANTS)
    tested = {m[3] for m in MUTANTS}
    assert tested >= set(RULES) - {"schema", "consistency", "file", "waiver"}


@pytest.mark.parametrize("name,mutate,key,rule", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_unsafe_mutant_gives_one_line_naming_its_key(tmp_path, capsys, name, mutate, key, rule):
    data = copy.deepcopy(BASE)
    mutate(data)
    path = write(tmp_path, data)
    rc, out = check_json(path, capsys)
    errors = [p for p in out["problems"] if p["severity"] == "error" and not p["waived"]]
    assert rc == 1 and not out["ok"]
    assert [(p["key"], p["rule"]) for p in errors] == [(key, rule)], errors
    [p] = errors
    assert p["file"] == str(path) and p["line"] >= 1 and p["message"]
    # The operator's line (stderr) is the same problem, on one line, with the file and line.
    capsys.readouterr()
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{path}:{p['line']}: {key}: {p['message']}"]
    if rule in WAIVABLE:
        assert f"waivable as rule {rule}" in p["message"]


def test_one_mutant_through_the_installed_command_line(tmp_path):
    data = copy.deepcopy(BASE)
    data["points"]["heartbeat"]["range"] = [0, 0.5]
    path = write(tmp_path, data)
    run = subprocess.run([sys.executable, "-m", "controller.cli", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 1 and run.stdout == ""
    [line] = run.stderr.splitlines()
    assert "points.heartbeat.range" in line and "always be 0" in line and "Traceback" not in run.stderr


# --- waive: -----------------------------------------------------------------------------------


def waived_config(*entries: dict) -> dict:
    data = copy.deepcopy(BASE)
    del data["trips"]["sensor_lost"]
    data["waive"] = data["waive"] + list(entries)
    return data


REASON = "the BMS PLC trips the plant itself on a lost transmitter (commissioning report 4.2)"


def test_a_waiver_accepts_its_problem_and_check_config_shows_it(tmp_path, capsys):
    path = write(tmp_path, waived_config({"rule": "sensor_lost_trip", "key": "trips", "reason": REASON}))
    capsys.readouterr()
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6 and out[4].endswith(f": trips: waived sensor_lost_trip: {REASON}")
    assert out[2].startswith(f"{path}:") and ": points.it_flow.frozen_after_s: waived frozen_required: " in out[2]
    assert out[5].endswith(", 5 waived")
    rc, js = check_json(path, capsys)
    assert rc == 0 and js["ok"] and js["summary"]["waived"] == 5
    [p] = [p for p in js["problems"] if p["key"] == "trips"]
    assert p["waived"] is True and p["rule"] == "sensor_lost_trip" and p["reason"] == REASON and p["key"] == "trips"
    assert {w.rule for w in load_config(path).waived} == {"sensor_lost_trip", "frozen_required"}


@pytest.mark.parametrize("entry,key,text", [
    ({"rule": "safety_trip", "key": "trips", "reason": REASON}, "waive[4].rule", "cannot be waived"),
    ({"rule": "no_such_rule", "key": "trips", "reason": REASON}, "waive[4].rule", "unknown rule"),
    ({"rule": "frozen_required", "key": "points.tank_top_temp.frozen_after_s", "reason": REASON},
     "waive[4].key", "no frozen_required problem"),
])
def test_a_bad_waiver_is_a_problem_and_waives_nothing(tmp_path, capsys, entry, key, text):
    path = write(tmp_path, waived_config(entry))
    rc, js = check_json(path, capsys)
    errors = {p["key"]: p for p in js["problems"] if not p["waived"]}
    assert rc == 1 and set(errors) == {key, "trips"}
    assert text in errors[key]["message"] and errors[key]["rule"] == "waiver"


def test_a_waiver_needs_a_reason(tmp_path, capsys):
    path = write(tmp_path, waived_config({"rule": "sensor_lost_trip", "key": "trips", "reason": ""}))
    rc, js = check_json(path, capsys)
    assert rc == 1 and [p["key"] for p in js["problems"]] == ["waive[4].reason"]


def test_every_rule_id_is_documented_in_the_schema():
    schema = (ROOT / "config" / "site-config.schema.json").read_text()
    for rule in WAIVABLE:
        assert rule in schema
    assert "0-based register offset" in schema and "40001 is Modicon notation" in schema


# --- files the drivers open (issue 15) ---------------------------------------------------------------


def test_missing_credentials_file_names_file_and_key(tmp_path, capsys):
    data = copy.deepcopy(BASE)
    data["drivers"]["bmcs"]["credentials_file"] = "config/credentials/nope.yaml"
    path = write(tmp_path, data)
    capsys.readouterr()
    assert main(["check-config", str(path)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}:") and "drivers.bmcs.credentials_file: config/credentials/nope.yaml: no such file" in line


def test_malformed_credentials_and_certificates_are_errors(tmp_path, capsys):
    creds = tmp_path / "creds.yaml"
    creds.write_text("user: admin\n")
    cert = tmp_path / "server.der"
    cert.write_text("not a certificate")
    data = copy.deepcopy(BASE)
    data["drivers"]["bmcs"]["credentials_file"] = str(creds)
    data["drivers"]["bms_opcua"]["server_certificate"] = str(cert)
    data["drivers"]["bms_opcua"]["client_certificate"] = str(tmp_path / "missing.pem")
    rc, js = check_json(write(tmp_path, data), capsys)
    keys = {p["key"]: p["message"] for p in js["problems"] if not p["waived"]}
    assert rc == 1 and set(keys) == {"drivers.bmcs.credentials_file", "drivers.bms_opcua.server_certificate",
                                     "drivers.bms_opcua.client_certificate"}
    assert "expected exactly `username:` and `password:`" in keys["drivers.bmcs.credentials_file"]
    assert "neither PEM nor DER" in keys["drivers.bms_opcua.server_certificate"]
    assert "no such file" in keys["drivers.bms_opcua.client_certificate"]
    assert all(p["rule"] == "file" and p["line"] > 1 for p in js["problems"] if not p["waived"])


@pytest.mark.skipif(os.getuid() == 0, reason="root reads any file")
def test_credentials_this_user_may_not_read_are_a_warning(tmp_path, capsys):
    creds = tmp_path / "creds.yaml"
    creds.write_text("username: a\npassword: b\n")
    creds.chmod(0)
    data = copy.deepcopy(BASE)
    data["drivers"]["bmcs"]["credentials_file"] = str(creds)
    path = write(tmp_path, data)
    capsys.readouterr()
    assert main(["check-config", str(path)]) == 0
    assert "warning: " in capsys.readouterr().err


def test_check_config_json_on_a_yaml_error_is_structured(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: [\n")
    rc, js = check_json(bad, capsys)
    [p] = js["problems"]
    assert rc == 1 and p["rule"] == "syntax" and p["line"] >= 1 and p["file"] == str(bad)


# --- the site layer's register arithmetic is the driver's ---------------------------------------------


def test_register_limits_match_the_modbus_codec():
    from drivers.modbus import codec
    assert source_checks.INT_LIMITS == codec._INT_LIMITS
    assert source_checks.FLOAT32_MAX == codec._FLOAT32_MAX
    for dtype, words in source_checks.REGISTERS.items():
        src = codec.ModbusPointSource(driver="d", table="holding", address=0, data_type=dtype)
        assert codec.register_count(src) == words


def test_parse_config_text_keeps_lines_for_later_checks():
    loaded = parse_config_text(REFERENCE.read_text(encoding="utf-8"), "site.yaml")
    assert loaded.line_of(("drivers", "bmcs", "credentials_file")) > 1


# --- the daemon writes each waiver to the audit log when it loads the config -----------------------


async def test_the_daemon_audits_each_waiver_at_start_up_and_on_reload(tmp_path):
    from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
    from tests.runtime_fakes import FakeClock, FakeDrivers, flushed, load, write_config

    clock = FakeClock()
    config = write_config(tmp_path)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"), socket_path=None)
    d = Daemon(options, load(config), clock=clock, wall=clock.wall, sleep=clock.sleep,
               driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}), metrics=None)
    await d.start()
    try:
        assert await d.tick()
        rows, _ = flushed(d).events(kinds=["config_waiver"])
        assert [(r.cause, r.fields["rule"], r.fields["key"]) for r in rows] == [
            ("start-up", "frozen_required", f"points.{n}.frozen_after_s")
            for n in ("it_supply_temp", "it_return_temp", "it_flow", "b_return_temp")]
        assert all(r.reason and r.fields["waived"] is True and "waived frozen_required" in r.message
                   for r in rows)
        assert await d.reload() is True
        rows, _ = flushed(d).events(kinds=["config_waiver"])
        assert [r.cause for r in rows] == ["start-up"] * 4 + ["SIGHUP"] * 4
    finally:
        await d.shutdown()
