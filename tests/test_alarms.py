"""Alarms (ISA-18.2) and NE 107 sensor status: per-tick tables on a fake clock for the pure module,
config errors one line each, and the daemon through its API and CLI (fake drivers, fake clock)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import structlog
from structlog.testing import capture_logs

from tests.runtime_fakes import flushed
from controller.core.alarms import (ACKED, FAILURE, FLOOD_LIMIT, FUNCTION_CHECK, GOOD, MAINTENANCE, NORMAL,
                               OUT_OF_SERVICE, OUT_OF_SPEC, RTN_UNACK, SHELVED, UNACK, AlarmInputs,
                               AlarmRequest, Alarms)
from controller.ops.api_client import call
from controller.daemon.api_server import Authorizer
from controller.site.loader import ConfigError, parse_config_text
from controller.core.requests import OverrideRequest, TripTestRequest
from controller.core.validation import Checked
from tests.step_helpers import REFERENCE, make_controller, reference_site, snap
from tests.api_harness import heatctl, start_daemon

BASE = REFERENCE.read_text(encoding="utf-8")


def good(value: float) -> Checked:
    return Checked(value, True, "", 0.0)


def bad(reason: str) -> Checked:
    return Checked(None, False, reason, 1.0)


class Bench:
    """The alarms of a site config, ticked by hand: `tick(t, point=value | Checked, ..., requests=...)`."""

    def __init__(self, site=None):
        self.alarms = Alarms(site or reference_site())
        self.state = self.alarms.initial_state(0.0)
        self.events: list = []

    def tick(self, t: float, requests=(), down=(), reconnects=None, function_check=(), safe_degrade=False,
             **values) -> dict[str, str]:
        checked = {n: good(20.0) for n in self.alarms.readings}
        checked["it_supply_temp"] = good(35.0)
        checked["consumer_supply_temp"] = good(40.0)
        for k, v in values.items():
            checked[k] = v if isinstance(v, Checked) else good(float(v))
        inputs = AlarmInputs(checked=checked, mode_safe_degrade=safe_degrade, drivers_down=frozenset(down),
                             driver_reconnects=reconnects or {}, function_check=frozenset(function_check))
        self.state, events = self.alarms.evaluate(self.state, inputs, list(requests), float(t))
        self.events += events
        return {n: s.status for n, s in self.state.alarms.items()}

    def kinds(self, alarm: str) -> list[str]:
        return [e.kind for e in self.events if e.fields.get("alarm") == alarm]


def req(op: str, alarm: str, reason: str = "seen", user: str = "ops", duration_s=None) -> AlarmRequest:
    return AlarmRequest(reason=reason, user=user, op=op, alarm=alarm, duration_s=duration_s)


# --- state transitions, per tick ------------------------------------------------------------------

# it_supply_high: high at 54.5, deadband 1.0 (returns below 53.5), on_delay_s 30, off_delay_s 0.
@pytest.mark.parametrize("table", [[
    # (t, it_supply_temp, request, expected state)
    (0, 54.0, None, NORMAL),
    (10, 55.0, None, NORMAL),          # on-delay starts
    (20, 54.0, None, NORMAL),          # condition gone: the delay starts over
    (30, 55.0, None, NORMAL),
    (59, 55.0, None, NORMAL),          # 29 s: not yet
    (60, 55.0, None, UNACK),           # 30 s: raised
    (61, 54.0, None, UNACK),           # below the limit but inside the deadband
    (62, 53.6, None, UNACK),
    (63, 53.4, None, RTN_UNACK),       # past the deadband: returned, nobody acknowledged
    (64, 53.4, "alarm_ack", NORMAL),   # ack of a returned alarm: normal
]])
def test_high_alarm_on_delay_deadband_return_and_ack(table):
    b = Bench()
    for t, v, op, expected in table:
        states = b.tick(t, [req(op, "it_supply_high")] if op else (), it_supply_temp=v)
        assert states["it_supply_high"] == expected, (t, v)
    assert b.kinds("it_supply_high") == ["alarm_raised", "alarm_returned", "alarm_acked"]
    raised = b.events[0]
    assert raised.fields["owner"] == "both" and raised.fields["priority"] == "high"
    assert raised.fields["from"] == NORMAL and raised.fields["to"] == UNACK


def test_ack_while_active_then_return_to_normal():
    b = Bench()
    assert b.tick(0, it_supply_temp=56)["it_supply_high"] == NORMAL
    assert b.tick(30, it_supply_temp=56)["it_supply_high"] == UNACK
    assert b.tick(31, [req("alarm_ack", "it_supply_high")], it_supply_temp=56)["it_supply_high"] == ACKED
    assert b.tick(32, it_supply_temp=50)["it_supply_high"] == NORMAL
    acked = [e for e in b.events if e.kind == "alarm_acked"][0]
    assert acked.fields["user"] == "ops" and acked.fields["reason"] == "seen"


# tank_top_sensor_bad: bad_reading, on_delay_s 30, off_delay_s 30.
@pytest.mark.parametrize("table", [[
    (0, True, NORMAL),
    (29, False, NORMAL),
    (30, False, NORMAL),   # bad since 29: the on-delay runs
    (59, False, UNACK),
    (60, True, UNACK),     # good again: the off-delay runs
    (70, False, UNACK),    # bad again: the off-delay starts over
    (71, True, UNACK),
    (100, True, UNACK),    # 29 s good
    (101, True, RTN_UNACK),
]])
def test_bad_reading_alarm_on_and_off_delays(table):
    b = Bench()
    for t, ok, expected in table:
        v = good(40.0) if ok else bad("timeout")
        assert b.tick(t, tank_top_temp=v)["tank_top_sensor_bad"] == expected, t


def test_low_alarm_with_deadband():
    site = parse_config_text(_with_alarm(
        "pool_cold: {kind: low, point: consumer_supply_temp, limit: 35.0, deadband: 1.0}"), "site.yaml").site
    b = Bench(site)
    for t, v, expected in [(0, 36, NORMAL), (1, 35, UNACK), (2, 35.9, UNACK), (3, 36.1, RTN_UNACK)]:
        assert b.tick(t, consumer_supply_temp=v)["pool_cold"] == expected, t


def test_condition_signals_numeric_and_boolean():
    b = Bench()
    # consumer 2 K under its 40 degC setpoint for 10 minutes (on_delay 600, deadband 0.5).
    assert b.tick(0, consumer_supply_temp=37.9)["consumer_supply_low"] == NORMAL
    assert b.tick(599, consumer_supply_temp=37.9)["consumer_supply_low"] == NORMAL
    assert b.tick(600, consumer_supply_temp=37.9)["consumer_supply_low"] == UNACK
    assert b.tick(601, consumer_supply_temp=38.4)["consumer_supply_low"] == UNACK     # 1.6 K: deadband
    # An unusable reading neither raises nor returns the alarm (tank_top_sensor_bad covers the sensor).
    assert b.tick(602, consumer_supply_temp=bad("timeout"))["consumer_supply_low"] == UNACK
    assert b.tick(603, consumer_supply_temp=38.6)["consumer_supply_low"] == RTN_UNACK
    # driver_down:<name>, no delays; safe_degrade after 60 s.
    assert b.tick(700, down={"bms_opcua"})["bms_opcua_down"] == UNACK
    assert b.tick(700, down={"bms_opcua"})["bmc_link_down"] == NORMAL
    assert b.tick(701, safe_degrade=True)["safe_degrade_active"] == NORMAL
    assert b.tick(761, safe_degrade=True)["safe_degrade_active"] == UNACK


# --- shelving and out of service ------------------------------------------------------------------

def test_shelving_suppresses_and_expires_to_what_the_condition_implies():
    b = Bench()
    down = {"bms_opcua"}
    assert b.tick(0, down=down)["bms_opcua_down"] == UNACK
    shelve = req("shelve", "bms_opcua_down", reason="BMS vendor on site", duration_s=60)
    assert b.tick(1, [shelve], down=down)["bms_opcua_down"] == SHELVED
    sh = b.state.alarms["bms_opcua_down"].shelved
    assert (sh.user, sh.reason, sh.until) == ("ops", "BMS vendor on site", 61.0)
    assert b.tick(30, down=())["bms_opcua_down"] == SHELVED   # returns while shelved: no annunciation
    assert b.tick(40, down=down)["bms_opcua_down"] == SHELVED
    assert b.tick(60, down=down)["bms_opcua_down"] == SHELVED
    # Expired while the condition holds: back to unacknowledged (annunciated again).
    assert b.tick(61, down=down)["bms_opcua_down"] == UNACK
    assert b.kinds("bms_opcua_down") == ["alarm_raised", "alarm_shelved", "alarm_shelve_expired"]
    assert b.events[-1].fields["to"] == UNACK and b.events[-1].fields["shelved_by"] == "ops"
    # Shelved again, the condition goes away, and the shelving expires: normal, nothing to ack.
    b.tick(62, [req("shelve", "bms_opcua_down", duration_s=10)], down=down)
    b.tick(65, down=())
    assert b.tick(72, down=())["bms_opcua_down"] == NORMAL
    # Unshelve ends it early.
    b.tick(80, [req("shelve", "bms_opcua_down", duration_s=100)], down=down)
    assert b.tick(81, [req("unshelve", "bms_opcua_down")], down=down)["bms_opcua_down"] == UNACK


def test_out_of_service_by_command_and_by_config():
    b = Bench()
    assert b.tick(0, [req("out_of_service", "bmc_link_down", reason="BMC firmware update")],
                  down={"bmcs"})["bmc_link_down"] == OUT_OF_SERVICE
    assert b.tick(1, down={"bmcs"})["bmc_link_down"] == OUT_OF_SERVICE
    assert b.tick(2, [req("in_service", "bmc_link_down")], down={"bmcs"})["bmc_link_down"] == UNACK
    # The condition is evaluated before the tick's requests: raised, then taken out of service.
    assert b.kinds("bmc_link_down") == ["alarm_raised", "alarm_out_of_service", "alarm_in_service"]
    site = parse_config_text(BASE.replace(
        'signal: "driver_down:bmcs", priority: medium,',
        'signal: "driver_down:bmcs", priority: medium, out_of_service: true,'), "site.yaml").site
    b = Bench(site)
    assert b.tick(0, down={"bmcs"})["bmc_link_down"] == OUT_OF_SERVICE
    b.tick(1, [req("in_service", "bmc_link_down")], down={"bmcs"})
    refused = [e for e in b.events if e.kind == "request_refused"]
    assert "out of service by the site config" in refused[0].fields["refusal"]


@pytest.mark.parametrize("request_,refusal", [
    (req("alarm_ack", "it_supply_high"), "is normal; nothing to acknowledge"),
    (req("alarm_ack", "nope"), "unknown alarm 'nope'"),
    (req("alarm_ack", "it_supply_high", reason="  "), "a reason is required"),
    (req("shelve", "it_supply_high", duration_s=9 * 3600), "<= 28800 s"),
    (req("shelve", "it_supply_high", duration_s=0), "every shelving expires"),
    (req("unshelve", "it_supply_high"), "is not shelved"),
    (req("in_service", "it_supply_high"), "is in service"),
])
def test_refusals_are_events_with_one_line(request_, refusal):
    b = Bench()
    assert b.tick(0, [request_])["it_supply_high"] == NORMAL
    (e,) = b.events
    assert e.kind == "request_refused" and refusal in e.fields["refusal"]
    assert "\n" not in e.message and e.fields["user"] == "ops"


# --- flood and chatter ----------------------------------------------------------------------------

def test_flood_counts_per_operator_over_ten_minutes():
    b = Bench()
    # bms_opcua_down (facilities) raised 11 times within 10 minutes; acked each time.
    for i in range(11):
        t = i * 50.0
        b.tick(t, down={"bms_opcua"})
        b.tick(t + 1, [req("alarm_ack", "bms_opcua_down")], down=())
    flood = b.alarms.flood_counts(b.state, 501.0)
    assert flood == {"facilities": 11, "it_operations": 0}
    assert b.alarms.view(b.state, 501.0)["in_flood"] == ["facilities"] and 11 > FLOOD_LIMIT
    # An alarm owned by both reaches both operators.
    b.tick(502, safe_degrade=True)
    b.tick(562, safe_degrade=True)
    assert b.alarms.flood_counts(b.state, 562.0) == {"facilities": 12, "it_operations": 1}
    # Ten minutes on, the window has moved past them.
    assert b.alarms.flood_counts(b.state, 1100.0) == {"facilities": 1, "it_operations": 1}


def test_chattering_alarm_counted_at_three_activations_a_minute():
    b = Bench()
    totals = []
    for t in range(0, 12, 2):   # active at 0, 4, 8 (three in 8 s), then 12 would be the fourth
        b.tick(t, down={"bms_opcua"})
        b.tick(t + 1, down=())
        totals.append(b.state.alarms["bms_opcua_down"].chatter_total)
    assert totals == [0, 0, 1, 2, 3, 4]
    assert b.state.alarms["bms_opcua_down"].chattering
    b.tick(100, down={"bms_opcua"})
    assert not b.state.alarms["bms_opcua_down"].chattering   # one activation in the last minute
    raised = [e for e in b.events if e.kind == "alarm_raised"]
    assert [e.fields["chattering"] for e in raised[:4]] == [False, False, True, True]


# --- NE 107 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("checked,expected", [
    (good(40.0), GOOD),
    (None, FAILURE),                                          # missing
    (bad("timeout (fake silent device)"), FAILURE),           # LOST: the driver's reason
    (bad("bad: sensor fault"), FAILURE),
    (bad("nan"), FAILURE),
    (bad("out_of_range (120 not in [0, 95])"), OUT_OF_SPEC),
    (bad("stale (12.0 s old, max 10 s)"), OUT_OF_SPEC),
    (bad("frozen (unchanged for 600 s)"), OUT_OF_SPEC),
    (bad("rate (5.00/s > 2/s)"), OUT_OF_SPEC),
    (bad("uncertain: sensor in check"), MAINTENANCE),
])
def test_ne107_class_of_a_reading(checked, expected):
    b = Bench()
    values = {"tank_top_temp": checked} if checked is not None else {}
    b.tick(0, **values)
    if checked is None:
        b = Bench()
        inputs = AlarmInputs(checked={})
        b.state, _ = b.alarms.evaluate(b.state, inputs, [], 0.0)
    assert b.state.ne107["tank_top_temp"] == expected


def test_ne107_maintenance_lasts_an_hour_and_function_check_and_reconnects():
    b = Bench()
    b.tick(0, tank_top_temp=bad("uncertain: in check"))
    b.tick(10)
    assert b.state.ne107["tank_top_temp"] == MAINTENANCE      # good again, but uncertain within the hour
    b.tick(3601)
    assert b.state.ne107["tank_top_temp"] == GOOD
    # Under an override (an actuator) or a trip test (its trip's point): function check.
    b.tick(3602, function_check={"v1_position", "it_supply_temp"})
    assert b.state.ne107["v1_position"] == FUNCTION_CHECK and b.state.ne107["it_supply_temp"] == FUNCTION_CHECK
    # A failure outranks a function check (NE 107's order F > C > S > M).
    b.tick(3603, function_check={"it_supply_temp"}, it_supply_temp=bad("timeout"))
    assert b.state.ne107["it_supply_temp"] == FAILURE
    # BMC driver reconnecting: 4 in the hour (> 3) -> its points need maintenance; an hour on, not.
    for i, total in enumerate([10, 11, 12, 13, 14]):
        b.tick(4000 + i, reconnects={"bmcs": total})
    assert b.state.ne107["srv1_power"] == MAINTENANCE and b.state.ne107["power_cap"] == MAINTENANCE
    assert b.state.ne107["it_supply_temp"] == GOOD
    b.tick(7700, reconnects={"bmcs": 14})
    assert b.state.ne107["srv1_power"] == GOOD
    # An actuator whose driver is down: failure.
    b.tick(7701, down={"bms_modbus"})
    assert b.state.ne107["v1_position"] == FAILURE


def test_inputs_from_a_step_result_mark_overrides_and_trip_tests_as_function_check():
    ctrl = make_controller()
    alarms = Alarms(ctrl.site)
    state = ctrl.initial_state(0.0)
    res = None
    for t, reqs in enumerate([[], [OverrideRequest(reason="r", point="v1_position", value=30, duration_s=60)],
                              [TripTestRequest(reason="r", trip="it_overtemp")]]):
        res = ctrl.step(state, snap(ctrl.site, float(t)), reqs, float(t))
        state = res.state
    inputs = alarms.inputs_from(res, {"bmcs"}, {"bmcs": 2})
    assert inputs.function_check == {"v1_position", "it_supply_temp"}
    assert inputs.drivers_down == {"bmcs"} and inputs.mode_safe_degrade   # the trip test latched it_overtemp


def test_carry_over_keeps_states_and_follows_out_of_service_by_config():
    b = Bench()
    b.tick(0, down={"bmcs"})
    assert b.state.alarms["bmc_link_down"].status == UNACK
    site = parse_config_text(BASE.replace(
        'signal: "driver_down:bmcs", priority: medium,',
        'signal: "driver_down:bmcs", priority: medium, out_of_service: true,'), "site.yaml").site
    new = Alarms(site)
    state = new.carry_over(b.state, 1.0)
    assert state.alarms["bmc_link_down"].status == OUT_OF_SERVICE
    back = Alarms(reference_site()).carry_over(state, 2.0)
    assert back.alarms["bmc_link_down"].status == UNACK   # still down: annunciated again


def test_view_is_json_and_owners_come_from_raci():
    b = Bench()
    b.tick(0, down={"bmcs"})
    v = b.alarms.view(b.state, 5.0)
    json.dumps(v)
    rows = {a["name"]: a for a in v["alarms"]}
    assert rows["bmc_link_down"]["owner"] == "it_operations" and rows["bmc_link_down"]["area"] == "compute"
    assert rows["bms_opcua_down"]["owner"] == "facilities"
    assert rows["it_supply_high"]["owner"] == "both"                 # named in the alarm
    assert rows["safe_degrade_active"]["owner"] == "both"            # safety -> both
    assert v["counts"][UNACK]["medium"] == 1
    # A raci table that gives compute to facilities routes the BMC alarm there.
    site = parse_config_text(BASE.replace("compute: it_operations", "compute: facilities"), "site.yaml").site
    assert Alarms(site).specs["bmc_link_down"].owner == "facilities"


# --- config errors, one line each -----------------------------------------------------------------

def _with_alarm(line: str, text: str = BASE) -> str:
    anchor = "\n# Who owns each area"
    assert text.count(anchor) == 1
    return text.replace(anchor, f"\n  {line}\n" + anchor, 1)


@pytest.mark.parametrize("alarm,expected", [
    ("x: {kind: condition, signal: pool_on_fire}", "alarms.x.signal: unknown signal 'pool_on_fire'; expected one of:"),
    ("x: {kind: condition, signal: \"driver_down:plc9\"}", "alarms.x.signal: names driver 'plc9', which is not under drivers"),
    ("x: {kind: condition, signal: consumer_supply_below_setpoint_k}", "alarms.x: missing required key 'limit'"),
    ("x: {kind: condition, signal: boiler_on, limit: 1}", "alarms.x.limit: signal boiler_on is true or false; expected no limit"),
    ("x: {kind: condition}", "alarms.x: missing required key 'signal'"),
    ("x: {kind: condition, signal: boiler_on, point: it_flow}", "alarms.x.point: a condition alarm watches a signal"),
    ("x: {kind: high, point: it_flow}", "alarms.x: missing required key 'limit'"),
    ("x: {kind: high, limit: 3}", "alarms.x: missing required key 'point'"),
    ("x: {kind: high, point: it_flw, limit: 3}", "alarms.x.point: names point 'it_flw', which is not under points"),
    ("x: {kind: high, point: d1_fan, limit: 3}", "alarms.x.point: point 'd1_fan' is an actuator"),
    ("x: {kind: high, point: it_flow, limit: 30}", "alarms.x.limit: expected a limit within the valid range [0.0, 20.0]"),
    ("x: {kind: high, point: it_supply_temp, limit: 60}", "alarms.x.limit: a high alarm must come before trip it_overtemp: expected a limit below its limit 60, got 60"),
    ("x: {kind: low, point: it_flow, limit: 0.5}", "alarms.x.limit: a low alarm must come before trip low_flow: expected a limit above its limit 0.8, got 0.5"),
    ("x: {kind: bad_reading, point: it_flow, limit: 3}", "alarms.x.limit: a bad_reading alarm has no limit"),
    ("x: {kind: high, point: it_flow, limit: 3, signal: boiler_on}", "alarms.x.signal: a high alarm watches a point; expected no signal"),
    ("leak: {kind: bad_reading, point: leak_cdu}", "alarms.leak: alarm 'leak' has a trip's name"),
    ("x: {kind: hgh, point: it_flow, limit: 3}", "alarms.x.kind: expected 'high', 'low', 'bad_reading' or 'condition', got 'hgh'"),
    ("x: {kind: bad_reading, point: it_flow, priority: urgent}", "alarms.x.priority: expected 'high', 'medium' or 'low', got 'urgent'"),
    ("x: {kind: bad_reading, point: it_flow, owner: nobody}", "alarms.x.owner: expected 'facilities', 'it_operations' or 'both'"),
    ("x: {kind: bad_reading, point: it_flow, on_delay_s: -1}", "alarms.x.on_delay_s: expected a value >= 0"),
    ("x: {kind: bad_reading, point: it_flow, delay: 5}", "alarms.x.delay: unknown key"),
])
def test_alarm_config_errors_are_one_line_with_file_and_line(alarm, expected):
    text = _with_alarm(alarm)
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, "site.yaml")
    lines = exc.value.problems
    assert len(lines) == 1, lines
    line_no = text[:text.index("  " + alarm)].count("\n") + 1
    assert lines[0].startswith(f"site.yaml:{line_no}: "), lines[0]
    assert expected in lines[0], lines[0]


def test_raci_errors_and_defaults():
    with pytest.raises(ConfigError) as exc:
        parse_config_text(BASE.replace("safety: both}", "safety: everyone}"), "site.yaml")
    (line,) = exc.value.problems
    assert "raci.safety: expected 'facilities', 'it_operations' or 'both', got 'everyone'" in line
    # Both sections are optional: a config without them has no alarms and the default RACI.
    bare = BASE[:BASE.index("\n# Operator alarms")] + "\n"
    site = parse_config_text(bare, "site.yaml").site
    assert site.alarms == {} and site.raci.compute == "it_operations" and site.raci.safety == "both"


# --- the daemon, through the API and the CLI ------------------------------------------------------

@pytest.fixture(autouse=True)
def quiet_logs():
    structlog.reset_defaults()
    with capture_logs() as logs:
        yield logs


async def wait_for(pred, what: str, tries: int = 400):
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_daemon_alarm_raised_listed_acked_shelved_expired(tmp_path, sockdir, capsys):
    d, task, drivers = await start_daemon(tmp_path, sockdir)
    try:
        s = d.options.socket_path
        status = lambda: d.alarm_state.alarms["it_supply_high"].status  # noqa: E731
        drivers.plant.values["it_supply_temp"] = 56.0   # above the 54.5 alarm, below the 59 safe_degrade band
        await wait_for(lambda: status() == UNACK, "it_supply_high raised (30 s on-delay)")
        assert await heatctl("alarms", "--wide", "--socket", s) == 0  # every column (OWNER too)
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "Alarms       1 unacked (1 high)"
        assert out[2].split()[:4] == ["it_supply_high", "unacknowledged", "high", "both"]
        assert await heatctl("alarms", "--json", "--socket", s) == 0
        listed = json.loads(capsys.readouterr().out)
        row = {a["name"]: a for a in listed["alarms"]}["it_supply_high"]
        assert row["state"] == UNACK and row["value"] == 56.0 and listed["ne107"]["it_supply_temp"] == GOOD
        assert await heatctl("status", "--socket", s) == 0
        assert "Alarms       1 unacked (1 high)" in [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")][:6]

        # Refused without a reason: by the CLI (exit 2) and by the API.
        assert await heatctl("ack", "it_supply_high", "--reason", " ", "--socket", s) == 2
        r = await asyncio.to_thread(call, s, {"op": "alarm_ack", "alarm": "it_supply_high"})
        assert not r["ok"] and "reason" in r["error"]
        r = await asyncio.to_thread(call, s, {"op": "shelve", "alarm": "it_supply_high", "duration_s": 60})
        assert not r["ok"] and "reason" in r["error"]
        capsys.readouterr()

        # ack NAME resolves to the alarm; trip acks still work (below).
        assert await heatctl("ack", "it_supply_high", "--reason", "cap loop working on it", "--socket", s) == 0
        assert "accepted: alarm it_supply_high: acknowledged by" in capsys.readouterr().out
        assert status() == ACKED
        assert await heatctl("ack", "it_supply_high", "--reason", "again", "--socket", s) == 1
        assert "nothing to acknowledge" in capsys.readouterr().err

        assert await heatctl("shelve", "it_supply_high", "--for", "20s", "--reason", "dump fan repair",
                             "--socket", s) == 0
        assert status() == SHELVED
        assert await heatctl("shelve", "it_supply_high", "--for", "9h", "--reason", "x", "--socket", s) == 1
        assert "every shelving expires" in capsys.readouterr().err
        # Expires on its own with the condition still there: unacknowledged again.
        await wait_for(lambda: status() == UNACK, "the shelving to expire")
        assert await heatctl("shelve", "it_supply_high", "--for", "1h", "--reason", "r", "--socket", s) == 0
        assert await heatctl("unshelve", "it_supply_high", "--reason", "repair done", "--socket", s) == 0
        assert status() == UNACK

        # A trip ack still goes to the trip.
        capsys.readouterr()
        assert await heatctl("ack", "leak", "--reason", "x", "--socket", s) == 1
        assert "trip leak is not latched" in capsys.readouterr().err

        # Out of service and back, through the API.
        r = await asyncio.to_thread(call, s, {"op": "out_of_service", "alarm": "it_supply_high", "reason": "sensor swap"})
        assert r["ok"] and status() == OUT_OF_SERVICE
        r = await asyncio.to_thread(call, s, {"op": "in_service", "alarm": "it_supply_high", "reason": "swapped"})
        assert r["ok"] and status() == UNACK

        # Every change audited with the caller.
        events, _ = flushed(d).events(kinds=["alarm_raised", "alarm_acked", "alarm_shelved", "alarm_shelve_expired",
                                          "alarm_unshelved", "alarm_out_of_service", "alarm_in_service"])
        kinds = [e.kind for e in events]
        assert kinds == ["alarm_raised", "alarm_acked", "alarm_shelved", "alarm_shelve_expired", "alarm_shelved",
                         "alarm_unshelved", "alarm_out_of_service", "alarm_in_service"]
        acked = events[1]
        assert acked.user and acked.uid == os.getuid() and acked.reason == "cap loop working on it"
        assert acked.fields["alarm"] == "it_supply_high" and acked.fields["to"] == ACKED
        refused, _ = flushed(d).events(kinds=["request_refused"])
        assert any(e.fields.get("request") == "shelve it_supply_high" for e in refused)
    finally:
        d.request_stop("test over")
        await asyncio.wait_for(task, 10)


async def test_daemon_read_only_caller_may_list_but_not_change_alarms(tmp_path, sockdir, capsys):
    d, task, drivers = await start_daemon(tmp_path, sockdir, Authorizer(writer_uids=frozenset(), operator_group=None))
    try:
        s = d.options.socket_path
        drivers.plant.values["it_supply_temp"] = 56.0
        await wait_for(lambda: d.alarm_state.alarms["it_supply_high"].status == UNACK, "the alarm")
        assert await heatctl("alarms", "--socket", s) == 0
        capsys.readouterr()
        for argv in (["ack", "it_supply_high"], ["shelve", "it_supply_high", "--for", "1h"],
                     ["unshelve", "it_supply_high"]):
            assert await heatctl(*argv, "--reason", "let me", "--socket", s) == 1
            err = capsys.readouterr().err
            assert "not authorized" in err and err.count("\n") == 1
        assert d.alarm_state.alarms["it_supply_high"].status == UNACK
        events, _ = flushed(d).events(kinds=["request_refused"])
        assert [e.fields["request"] for e in events[-3:]] == ["alarm_ack", "shelve", "unshelve"]
        assert all(e.uid == os.getuid() and e.reason == "let me" for e in events[-3:])
    finally:
        d.request_stop("test over")
        await asyncio.wait_for(task, 10)
