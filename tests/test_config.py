"""The site config fails closed, one line per problem: file:line: yaml.path: what was expected.

Every broken config here is the shipped example (config/reference-plant.yaml) with one targeted
edit. Line numbers are not hard-coded: each is found in the edited text by a snippet that must
occur exactly once, then the whole line is asserted exactly. A change to the example that moves
or removes a snippet fails the test that uses it, not silently some other assertion.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import yaml

from controller.site.models import SiteConfig
from controller.site.loader import ConfigError, LoadedConfig, load_config, parse_config_text
from controller.site.roles import KNOWN_UNITS, Role

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "reference-plant.yaml"
SCHEMA = ROOT / "config" / "site-config.schema.json"
BASE = EXAMPLE.read_text(encoding="utf-8")
# Counted, not written down: the example grows (meters, points) without these tests changing.
N_POINTS = len(yaml.safe_load(BASE)["points"])
F = "site.yaml"  # the file name parse_config_text is given; every line must start with it

ALL_ROLES = sorted(r.value for r in Role)
SERVERS = [f"srv{i}" for i in range(1, 9)]


# --- fixture helpers -------------------------------------------------------------------------------


def edit(old: str, new: str, text: str = BASE) -> str:
    """Replace `old`, which must occur exactly once, by `new`."""
    assert text.count(old) == 1, f"edit anchor must occur once, found {text.count(old)}: {old!r}"
    return text.replace(old, new)


def sub1(pattern: str, repl: str, text: str = BASE) -> str:
    """re.sub that must match exactly once: pins a value whatever the example currently says."""
    out, n = re.subn(pattern, repl, text)
    assert n == 1, f"pattern must match once, matched {n}: {pattern!r}"
    return out


def ln(text: str, snippet: str, at: str | None = None) -> int:
    """1-based line of `snippet` (exactly once in `text`), or of `at` inside it."""
    assert text.count(snippet) == 1, f"line anchor must occur once, found {text.count(snippet)}: {snippet!r}"
    idx = text.index(snippet) + (snippet.index(at) if at is not None else 0)
    return text.count("\n", 0, idx) + 1


def line_is(text: str, whole_line: str) -> int:
    """1-based number of the one line that is exactly `whole_line`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if line == whole_line]
    assert len(hits) == 1, f"expected one line {whole_line!r}, found {len(hits)}"
    return hits[0]


def problems(text: str) -> list[str]:
    """The problem lines for a broken config; each checked to be one line, with file and line."""
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, F)
    lines = exc.value.problems
    assert lines, "a ConfigError must carry at least one problem"
    for line in lines:
        assert "\n" not in line
        assert re.match(rf"^{re.escape(F)}:\d+: ", line), line
        assert "pydantic" not in line.lower() and "http" not in line, line
        assert "Traceback" not in line
    assert str(exc.value) == "\n".join(lines)
    return lines


def ok(text: str = BASE) -> LoadedConfig:
    return parse_config_text(text, F)


# Snippets of the example, used as edit anchors.
DUMP_KP = "    kp: 10.0\n"  # loops.dump.kp
IT_SUPPLY_UNIT = "    unit: degC\n    range: [0, 90]\n"
AMBIENT_SOURCE = "source: {driver: bms_modbus, table: input, address: 12, data_type: float32}"
LOW_FLOW_ACTIONS = "actions: {power_cap: 5000, boiler_enable: 1}"
# The low_flow actions with a dump action added, which the cases below then break.
LOW_FLOW_D1 = "actions: {power_cap: 5000, d1_fan: 100, boiler_enable: 1}"
IT_FLOW_BLOCK = """  it_flow:
    role: it_flow
    unit: m3/h
    range: [0, 20]
    critical: true            # the low_flow trip depends on it
    max_age_s: 3
    source: {driver: bms_modbus, table: input, address: 4, data_type: float32}
"""


# The dump loop's setpoint pinned to 36 degC, so that the trips added below sit where the case
# needs them whatever the example's own tuning is.
DUMP_AT_36 = sub1(r"(    output: d1_fan\n    setpoint: )[^\n]*", r"\g<1>36.0", BASE)
DUMP_SETPOINT = "    output: d1_fan\n    setpoint: 36.0"


def _extra_trip(yaml_lines: str, text: str = BASE) -> str:
    """Insert a trip before sensor_lost (trips are otherwise the example's)."""
    return edit("  sensor_lost:\n", yaml_lines + "  sensor_lost:\n", text)


# --- the example ----------------------------------------------------------------------------------


def test_example_config_is_accepted():
    loaded = load_config(EXAMPLE)
    site = loaded.site
    assert loaded.path == str(EXAMPLE)
    assert site.site.name == "reference-pool"
    assert len(site.points) == N_POINTS and set(site.drivers) == {"bms_modbus", "bms_opcua", "bmcs"}
    assert site.point_for(Role.IT_FLOW) == "it_flow"
    # Every source was parsed by its driver's own schema.
    assert set(loaded.sources) == {n for n, p in site.points.items() if p.source is not None}
    assert loaded.sources["srv3_power"].bmc == "srv3"


def test_loaded_config_is_immutable():
    loaded = ok()
    site = loaded.site
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        site.tick_period_s = 0.5
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        site.loops.dump.kp = 99.0
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        site.points["it_supply_temp"].unit = "degF"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        site.trips["it_overtemp"].limit = 99.0
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        site.drivers["bms_modbus"].timeout_s = 3.0
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        loaded.sources["it_flow"].address = 99
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.site = site  # type: ignore[misc]
    with pytest.raises(TypeError):
        site.points["it_supply_temp"].range[0] = -10  # type: ignore[index]


# --- one broken config per case -------------------------------------------------------------------
# Each case: (id, edited text, function of that text -> the exact expected lines).

CASES: list[tuple[str, str, object]] = []


def case(case_id: str, text: str):
    def register(expect):
        CASES.append((case_id, text, expect))
        return expect

    return register


# Unknown keys


@case("unknown-key-top-level", edit("tick_period_s: 1.0\n", "tick_period_s: 1.0\ntick_perod_s: 2.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'tick_perod_s')}: tick_perod_s: unknown key (not part of the schema; check its spelling)"]


@case("unknown-key-nested", edit(DUMP_KP, "    kp: 10.0\n    kpp: 10.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'kpp:')}: loops.dump.kpp: unknown key (not part of the schema; check its spelling)"]


@case("misspelt-key-nested-also-missing", edit(DUMP_KP, "    kpp: 10.0\n"))
def _(t):
    # The misspelling leaves kp missing: both are said, the missing one at its mapping's line.
    return [
        f"{F}:{ln(t, '  dump:  ')}: loops.dump.kp: missing required key 'kp'",
        f"{F}:{ln(t, 'kpp:')}: loops.dump.kpp: unknown key (not part of the schema; check its spelling)",
    ]


@case("unknown-key-in-source", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("address: 12", "adress: 12")))
def _(t):
    n = ln(t, "adress")
    return [
        f"{F}:{n}: points.ambient_temp.source.address: missing required key 'address'",
        f"{F}:{n}: points.ambient_temp.source.adress: unknown key (not part of the schema; check its spelling)",
    ]


# Duplicate keys


@case("duplicate-point", edit("  it_return_temp:\n    role: it_return_temp\n",
                              "  it_supply_temp:\n    role: it_return_temp\n"))
def _(t):
    # The second it_supply_temp is reported; nothing else, since the rest would follow from YAML
    # having kept the last of the two.
    return [f"{F}:{ln(t, '  it_supply_temp:' + chr(10) + '    role: it_return_temp')}: points.it_supply_temp: "
            "duplicate key (YAML would silently keep the last one)"]


@case("duplicate-key-in-mapping", edit(DUMP_KP, "    kp: 10.0\n    kp: 11.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'kp: 11.0')}: loops.dump.kp: duplicate key (YAML would silently keep the last one)"]


@case("duplicate-key-in-flow-mapping", edit("{role: p2_speed, unit: pct,", "{role: p2_speed, unit: pct, role: p3_speed,"))
def _(t):
    return [f"{F}:{ln(t, 'pct, role: p3_speed')}: points.p2_speed.role: duplicate key (YAML would silently keep the last one)"]


# Wrong types


@case("wrong-type-word-for-number", edit(DUMP_KP, "    kp: fast\n"))
def _(t):
    return [f"{F}:{ln(t, 'kp: fast')}: loops.dump.kp: expected a number, got 'fast'"]


@case("wrong-type-quoted-number", edit(DUMP_KP, '    kp: "5"\n'))
def _(t):
    return [f"{F}:{ln(t, 'kp: ' + chr(34))}: loops.dump.kp: expected a number, got the text '5' "
            "(a quoted value is text; remove the quotes)"]


@case("wrong-type-list-for-number", edit(DUMP_KP, "    kp: [1, 2]\n"))
def _(t):
    return [f"{F}:{ln(t, 'kp: [1, 2]')}: loops.dump.kp: expected a number, got [1, 2]"]


@case("wrong-type-bool-for-number", edit(DUMP_KP, "    kp: true\n"))
def _(t):
    return [f"{F}:{ln(t, 'kp: true')}: loops.dump.kp: expected a number, got true"]


@case("wrong-type-empty-value", edit(DUMP_KP, "    kp:\n"))
def _(t):
    return [f"{F}:{ln(t, '    kp:' + chr(10))}: loops.dump.kp: expected a number, got null (no value)"]


@case("wrong-type-float-for-integer", edit("    port: 15020\n", "    port: 15020.5\n"))
def _(t):
    return [f"{F}:{ln(t, 'port: 15020.5')}: drivers.bms_modbus.port: expected an integer, got 15020.5"]


@case("wrong-type-text-for-bool", edit("critical: true            # the low_flow", "critical: yes please      # the low_flow"))
def _(t):
    return [f"{F}:{ln(t, 'yes please')}: points.it_flow.critical: expected true or false, got 'yes please'"]


@case("wrong-type-text-for-mapping", edit(AMBIENT_SOURCE, "source: bms_modbus"))
def _(t):
    return [f"{F}:{ln(t, 'source: bms_modbus')}: points.ambient_temp.source: expected a mapping (key: value), got 'bms_modbus'"]


@case("wrong-enum-value", edit("  policy: compute_first\n", "  policy: computer_first\n"))
def _(t):
    return [f"{F}:{ln(t, 'computer_first')}: site.policy: expected 'compute_first' or 'heat_first', got 'computer_first'"]


@case("nan-for-number", edit(DUMP_KP, "    kp: .nan\n"))
def _(t):
    return [f"{F}:{ln(t, 'kp: .nan')}: loops.dump.kp: expected a number (finite), got .nan"]


@case("inf-for-number", edit("    limit: 60.0\n", "    limit: .inf\n"))
def _(t):
    return [f"{F}:{ln(t, 'limit: .inf')}: trips.it_overtemp.limit: expected a number (finite), got .inf"]


# Units and roles


@case("unknown-unit", edit(IT_SUPPLY_UNIT, IT_SUPPLY_UNIT.replace("degC", "degF")))
def _(t):
    n = ln(t, "degF")
    return [
        f"{F}:{n}: points.it_supply_temp.unit: unknown unit 'degF'; expected one of {sorted(KNOWN_UNITS)}",
        f"{F}:{n}: points.it_supply_temp.unit: role it_supply_temp is measured in 'degC', got 'degF'",
    ]


@case("wrong-unit-for-role", edit(IT_SUPPLY_UNIT, IT_SUPPLY_UNIT.replace("degC", "W")))
def _(t):
    return [f"{F}:{ln(t, '    unit: W' + chr(10) + '    range: [0, 90]')}: points.it_supply_temp.unit: role it_supply_temp is measured in 'degC', got 'W'"]


@case("unknown-role", edit("    role: ambient_temp\n", "    role: outdoor_temp\n"))
def _(t):
    return [f"{F}:{ln(t, 'outdoor_temp')}: points.ambient_temp.role: unknown role 'outdoor_temp'; expected one of {ALL_ROLES}"]


@case("unknown-role-on-point-a-trip-drives", edit("{role: d1_fan,", "{role: d1_fna,"))
def _(t):
    # Once crashed (ValueError from Role()); the role is reported once and the rest follows from it.
    n = ln(t, "d1_fna")
    return [
        f"{F}:{n}: points.d1_fan.role: unknown role 'd1_fna'; expected one of {ALL_ROLES}",
        f"{F}:{line_is(t, 'points:')}: points: "
        "missing point with role d1_fan (dump cooler D1 fan, in pct)",
        f"{F}:{ln(t, '    output: d1_fan')}: loops.dump.output: point 'd1_fan' has role d1_fna; "
        "expected a point with role d1_fan",
    ]


@case("missing-required-role", edit(IT_FLOW_BLOCK, ""))
def _(t):
    return [
        f"{F}:{line_is(t, 'points:')}: points: missing point with role it_flow (IT loop flow F1, in m3/h)",
        f"{F}:{ln(t, '    point: it_flow')}: trips.low_flow.point: names point 'it_flow', which is not under points",
        # The config's waiver of frozen detection on it_flow now waives nothing: fail closed.
        f"{F}:{ln(t, '    key: points.it_flow.frozen_after_s')}: waive[3].key: no frozen_required problem at "
        "'points.it_flow.frozen_after_s' to waive; expected a key check-config reports (remove the entry once fixed)",
    ]


@case("role-taken-twice", edit("    role: b_supply_temp\n", "    role: b_return_temp\n"))
def _(t):
    return [
        f"{F}:{line_is(t, 'points:')}: points: missing point with role b_supply_temp "
        "(building loop supply, HX outlet, in degC)",
        f"{F}:{ln(t, '  b_return_temp:' + chr(10) + '    role: b_return_temp', at='    role')}: "
        "points.b_return_temp.role: role b_return_temp is already taken by point 'b_supply_temp'; expected one",
    ]


@case("actuator-marked-critical", edit("{role: p3_speed, unit: pct,", "{role: p3_speed, unit: pct, critical: true,"))
def _(t):
    return [f"{F}:{ln(t, 'critical: true,')}: points.p3_speed.critical: an actuator cannot be critical; criticality is for readings"]


@case("range-min-equals-max", edit("    range: [-40, 60]\n", "    range: [60, 60]\n"))
def _(t):
    return [f"{F}:{ln(t, '[60, 60]')}: points.ambient_temp.range: expected [min, max] with min < max, got [60.0, 60.0]"]


@case("range-min-above-max", edit("    range: [-40, 60]\n", "    range: [60, -40]\n"))
def _(t):
    return [f"{F}:{ln(t, '[60, -40]')}: points.ambient_temp.range: expected [min, max] with min < max, got [60.0, -40.0]"]


@case("range-one-number", edit("    range: [-40, 60]\n", "    range: [-40]\n"))
def _(t):
    return [f"{F}:{ln(t, '[-40]')}: points.ambient_temp.range: expected [min, max] (two numbers), got [-40]"]


@case("range-three-numbers", edit("    range: [-40, 60]\n", "    range: [-40, 60, 80]\n"))
def _(t):
    return [f"{F}:{ln(t, '[-40, 60, 80]')}: points.ambient_temp.range: expected [min, max] (two numbers), got [-40, 60, 80]"]


@case("tick-below-floor", edit("tick_period_s: 1.0\n", "tick_period_s: 0.05\n"))
def _(t):
    return [f"{F}:{ln(t, 'tick_period_s: 0.05')}: tick_period_s: expected a value >= 0.1, got 0.05"]


@case("negative-max-age", edit("    max_age_s: 30\n    source: {driver: bms_modbus", "    max_age_s: -1\n    source: {driver: bms_modbus"))
def _(t):
    return [f"{F}:{ln(t, 'max_age_s: -1')}: points.ambient_temp.max_age_s: expected a value > 0.0, got -1"]


@case("missing-section", edit("\nmodes:\n  min_dwell_s: 300", "\nmodez:\n  min_dwell_s: 300"))
def _(t):
    return [
        f"{F}:{line_is(t, 'site:')}: modes: missing required key 'modes'",
        f"{F}:{ln(t, 'modez:')}: modez: unknown key (not part of the schema; check its spelling)",
    ]


# Loops


@case("loop-names-missing-point", edit("    measurement: b_return_temp\n", "    measurement: b_retrun_temp\n"))
def _(t):
    return [f"{F}:{ln(t, 'b_retrun_temp')}: loops.dump.measurement: names point 'b_retrun_temp', which is not under points"]


@case("loop-output-is-a-reading", edit("    output: d1_fan\n", "    output: b_flow\n"))
def _(t):
    return [f"{F}:{ln(t, 'output: b_flow')}: loops.dump.output: point 'b_flow' is a reading (role b_flow); "
            "expected the actuator with role d1_fan"]


@case("loop-output-wrong-actuator", edit("    output: d1_fan\n", "    output: p2_speed\n"))
def _(t):
    return [f"{F}:{ln(t, 'output: p2_speed')}: loops.dump.output: point 'p2_speed' has role p2_speed; "
            "expected a point with role d1_fan"]


@case("loop-output-limits-outside-point-range", edit("    output_min: 5000\n    output_max: 40000\n",
                                                      "    output_min: 5000\n    output_max: 50000\n"))
def _(t):
    n = ln(t, "output_max: 50000")
    return [
        f"{F}:{n}: loops.power_cap.output_max: expected output limits [5000.0, 50000.0] within the range "
        "[0.0, 40000.0] of point 'power_cap'",
        f"{F}:{ln(t, 'output_min: 5000')}: loops.power_cap.output_min: expected the cap loop's limits to be "
        "power.floor_w and power.max_w (5000.0, 40000.0), got (5000.0, 50000.0)",
    ]


@case("loop-negative-kp", edit(DUMP_KP, "    kp: -10.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'kp: -10.0')}: loops.dump.kp: expected kp >= 0 (direction is built into each loop), got -10.0"]


@case("loop-setpoint-at-high-trip-alarm", _extra_trip(
    "  b_return_high:\n    kind: high\n    point: b_return_temp\n    alarm: 36.0\n    limit: 45.0\n"
    "    actions: {d1_fan: 100}\n", DUMP_AT_36))
def _(t):
    return [f"{F}:{ln(t, DUMP_SETPOINT, at='    setpoint')}: loops.dump.setpoint: setpoint 36.0 is at or above trip "
            "b_return_high's alarm 36.0; expected below it",
            # the reference's building_return_high alarm (50 degC) is now above this trip: also reported
            f"{F}:{ln(t, 'building_return_high: {kind')}: alarms.building_return_high.limit: a high alarm must "
            "come before trip b_return_high: expected a limit below its limit 45, got 50"]


@case("loop-setpoint-above-high-trip-limit", _extra_trip(
    "  b_return_high:\n    kind: high\n    point: b_return_temp\n    limit: 35.0\n    actions: {d1_fan: 100}\n",
    DUMP_AT_36))
def _(t):
    return [f"{F}:{ln(t, DUMP_SETPOINT, at='    setpoint')}: loops.dump.setpoint: setpoint 36.0 is at or above trip "
            "b_return_high's limit 35.0; expected below it",
            # the reference's building_return_high alarm (50 degC) is now above this trip: also reported
            f"{F}:{ln(t, 'building_return_high: {kind')}: alarms.building_return_high.limit: a high alarm must "
            "come before trip b_return_high: expected a limit below its limit 35, got 50"]


@case("loop-setpoint-below-low-trip-alarm", _extra_trip(
    "  pool_cold:\n    kind: low\n    point: consumer_supply_temp\n    alarm: 42.0\n    limit: 30.0\n"
    "    actions: {boiler_enable: 1}\n"))
def _(t):
    return [f"{F}:{ln(t, 'setpoint: 40.0')}: loops.consumer_supply.setpoint: setpoint 40.0 is at or below trip "
            "pool_cold's alarm 42.0; expected above it"]


# Trips


@case("high-trip-alarm-above-limit", edit("    alarm: 55.0\n", "    alarm: 62.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'alarm: 62.0')}: trips.it_overtemp.alarm: a high trip's alarm must be below its limit (60.0), got 62.0"]


@case("high-trip-alarm-equals-limit", edit("    alarm: 55.0\n", "    alarm: 60.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'alarm: 60.0')}: trips.it_overtemp.alarm: a high trip's alarm must be below its limit (60.0), got 60.0"]


@case("low-trip-alarm-below-limit", edit("    alarm: 1.5\n", "    alarm: 0.5\n"))
def _(t):
    return [f"{F}:{ln(t, 'alarm: 0.5')}: trips.low_flow.alarm: a low trip's alarm must be above its limit (0.8), got 0.5"]


@case("high-trip-limit-outside-point-range", edit(IT_SUPPLY_UNIT, IT_SUPPLY_UNIT.replace("[0, 90]", "[0, 58]")))
def _(t):
    return [f"{F}:{ln(t, 'limit: 60.0')}: trips.it_overtemp.limit: expected a limit strictly inside the valid "
            "range [0.0, 58.0] of point 'it_supply_temp', where it can fire; got 60"]


@case("low-trip-limit-outside-point-range", edit("    limit: 0.8\n", "    limit: -3\n"))
def _(t):
    return [
        f"{F}:{ln(t, 'limit: -3')}: trips.low_flow.limit: expected a limit strictly inside the valid range "
        "[0.0, 20.0] of point 'it_flow', where it can fire; got -3",
    ]


@case("trip-watches-an-actuator", edit("    point: it_flow\n", "    point: p1_speed\n"))
def _(t):
    return [f"{F}:{ln(t, 'point: p1_speed')}: trips.low_flow.point: point 'p1_speed' is an actuator; a trip watches a reading",
            f"{F}:{line_is(t, 'trips:')}: trips: missing a low_flow trip on the IT flow point 'it_flow'"]


@case("trip-unknown-kind", edit("    kind: high\n", "    kind: hgh\n"))
def _(t):
    return [f"{F}:{ln(t, 'kind: hgh')}: trips.it_overtemp.kind: expected 'high', 'low', 'leak', 'low_flow' "
            "or 'sensor_lost', got 'hgh'"]


@case("cap-margin-puts-cap-target-above-alarm", edit("    cap_margin_k: 6.0 ", "    cap_margin_k: 4.0 "))
def _(t):
    return [f"{F}:{ln(t, 'cap_margin_k: 4.0')}: policy.heat_first.cap_margin_k: the power cap loop would hold "
            "56.0 degC, at or above trip it_overtemp's alarm 55.0; expected cap_margin_k > 5.0"]


@case("cap-margin-inside-limit-near-band", edit("  limit_near_k: 1.0\n", "  limit_near_k: 6.0\n"))
def _(t):
    return [f"{F}:{ln(t, 'cap_margin_k: 6.0')}: policy.heat_first.cap_margin_k: expected cap_margin_k > "
            "modes.limit_near_k (6.0), or the cap loop would regulate inside the safe_degrade band"]


@case("trip-action-missing-point", edit(LOW_FLOW_ACTIONS, LOW_FLOW_D1.replace("d1_fan", "d2_fan")))
def _(t):
    return [f"{F}:{ln(t, 'd2_fan')}: trips.low_flow.actions.d2_fan: names point 'd2_fan', which is not under points"]


@case("trip-action-on-a-reading", edit(LOW_FLOW_ACTIONS, LOW_FLOW_D1.replace("d1_fan", "b_flow")))
def _(t):
    return [f"{F}:{ln(t, 'b_flow: 100')}: trips.low_flow.actions.b_flow: point 'b_flow' is a reading; trip actions drive actuators"]


@case("trip-action-out-of-range", edit(LOW_FLOW_ACTIONS, LOW_FLOW_D1.replace("d1_fan: 100", "d1_fan: 150")))
def _(t):
    return [f"{F}:{ln(t, 'd1_fan: 150')}: trips.low_flow.actions.d1_fan: value 150.0 lies outside the point's range [0.0, 100.0]"]


@case("missing-it-overtemp-trip", edit("    kind: high\n", "    kind: low\n"))
def _(t):
    # it_overtemp turned into a low trip: its alarm/limit order is now wrong too, and the cap loop
    # has no high trip to work under.
    return [
        f"{F}:{ln(t, 'alarm: 55.0')}: trips.it_overtemp.alarm: a low trip's alarm must be above its limit (60.0), got 55.0",
        f"{F}:{line_is(t, 'trips:')}: trips: missing a high trip on the IT supply temperature point "
        "'it_supply_temp' (the power cap loop works under it)",
    ]


# Modes and power


@case("surplus-hysteresis-inverted", edit("  surplus_exit_w: -2000 ", "  surplus_exit_w: 3000 "))
def _(t):
    return [f"{F}:{ln(t, 'surplus_exit_w: 3000')}: modes.surplus_exit_w: expected surplus_exit_w < surplus_enter_w "
            "(3000.0) for hysteresis, got 3000.0"]


@case("tank-hysteresis-inverted", edit("  tank_resume_soc: 0.80\n", "  tank_resume_soc: 0.95\n"))
def _(t):
    return [f"{F}:{ln(t, 'tank_resume_soc: 0.95')}: modes.tank_resume_soc: expected tank_resume_soc < tank_full_soc "
            "(0.95), got 0.95"]


@case("safe-degrade-cap-above-max", edit("  safe_degrade_w: 16000\n", "  safe_degrade_w: 41000\n"))
def _(t):
    return [f"{F}:{ln(t, 'safe_degrade_w: 41000')}: power.safe_degrade_w: expected floor_w <= safe_degrade_w <= max_w "
            "(5000.0 .. 40000.0), got 41000.0"]


# Drivers and sources


@case("source-names-missing-driver", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("bms_modbus", "bms_modbsu")))
def _(t):
    return [f"{F}:{ln(t, 'bms_modbsu')}: points.ambient_temp.source.driver: names driver 'bms_modbsu', which is not "
            "under drivers (have: bmcs, bms_modbus, bms_opcua)"]


@case("source-without-driver", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("driver: bms_modbus, ", "")))
def _(t):
    return [f"{F}:{ln(t, 'source: {table: input, address: 12')}: points.ambient_temp.source: missing required key "
            "'driver' (one of: bmcs, bms_modbus, bms_opcua)"]


@case("modbus-bad-table", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("table: input", "table: inputs")))
def _(t):
    return [f"{F}:{ln(t, 'table: inputs')}: points.ambient_temp.source.table: expected 'holding', 'input', 'coil' or "
            "'discrete_input', got 'inputs'"]


@case("modbus-bad-data-type", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("data_type: float32", "data_type: float")))
def _(t):
    return [f"{F}:{ln(t, 'data_type: float}')}: points.ambient_temp.source.data_type: expected 'int16', 'uint16', "
            "'int32', 'uint32', 'float32', 'float64' or 'bool', got 'float'"]


@case("modbus-missing-address", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("address: 12, ", "")))
def _(t):
    return [f"{F}:{ln(t, 'source: {driver: bms_modbus, table: input, data_type')}: points.ambient_temp.source.address: "
            "missing required key 'address'"]


@case("modbus-address-out-of-range", edit(AMBIENT_SOURCE, AMBIENT_SOURCE.replace("address: 12", "address: 70000")))
def _(t):
    return [f"{F}:{ln(t, 'address: 70000')}: points.ambient_temp.source.address: expected a value <= 65535, got 70000"]


@case("modbus-coil-not-bool", edit("table: coil, address: 0, data_type: bool", "table: coil, address: 0"))
def _(t):
    return [f"{F}:{ln(t, 'table: coil')}: points.boiler_enable.source: a coil holds one bit: expected data_type: bool, got uint16"]


@case("modbus-actuator-on-read-only-table", edit("table: holding, address: 4,", "table: input, address: 40,"))
def _(t):
    return [f"{F}:{ln(t, '  d1_fan:')}: points.d1_fan.source.table: point 'd1_fan' is an actuator; "
            "expected a writable table (holding or coil), got input"]


@case("opcua-source-with-modbus-keys", edit("{driver: bms_opcua, node_id: \"ns=2;s=Tank.TopTemp\"}",
                                            "{driver: bms_opcua, table: input, address: 20}"))
def _(t):
    n = ln(t, "{driver: bms_opcua, table")
    return [
        f"{F}:{n}: points.tank_top_temp.source.node_id: missing required key 'node_id'",
        f"{F}:{n}: points.tank_top_temp.source.table: unknown key (not part of the schema; check its spelling)",
        f"{F}:{n}: points.tank_top_temp.source.address: unknown key (not part of the schema; check its spelling)",
    ]


@case("ipmi-unknown-bmc", edit("bmc: srv8}", "bmc: srv9}"))
def _(t):
    return [f"{F}:{ln(t, 'srv9')}: points.srv8_power.source.bmc: names BMC 'srv9', not one of {SERVERS}"]


@case("ipmi-server-power-without-bmc", edit("source: {driver: bmcs, bmc: srv8}", "source: {driver: bmcs}"))
def _(t):
    return [f"{F}:{ln(t, 'srv8_power')}: points.srv8_power.source: missing required key 'bmc': a server_power reading "
            f"comes from one BMC, one of {SERVERS}"]


@case("unknown-driver-kind", edit("    kind: opcua\n", "    kind: opcuaa\n"))
def _(t):
    return [f"{F}:{ln(t, '  bms_opcua:  ')}: drivers.bms_opcua: unknown driver kind 'opcuaa'; expected modbus, opcua or ipmi"]


@case("driver-without-kind", edit("    kind: opcua\n", ""))
def _(t):
    return [f"{F}:{ln(t, '  bms_opcua:  ')}: drivers.bms_opcua: missing required key 'kind' (modbus, opcua or ipmi)"]


@case("driver-field-wrong", edit("    timeout_s: 0.3 ", "    timeout_s: 30  "))
def _(t):
    return [f"{F}:{ln(t, 'timeout_s: 30 ')}: drivers.bms_modbus.timeout_s: expected a value <= 10.0, got 30"]


@case("driver-named-like-a-kind", edit(
    "  bms_modbus:                 # the plant-room PLC", "  modbus:                 # the plant-room PLC",
    edit("    timeout_s: 0.3 ", "    timeout_s: 30  ", BASE.replace("driver: bms_modbus", "driver: modbus"))))
def _(t):
    # The union's tag is dropped from the path, but not a driver's own name that happens to equal it.
    return [f"{F}:{ln(t, 'timeout_s: 30 ')}: drivers.modbus.timeout_s: expected a value <= 10.0, got 30"]


# The YAML itself


@case("empty-file", "")
def _(t):
    return [f"{F}:1: the file is empty; expected a site configuration"]


@case("comments-only", "# nothing here yet\n\n")
def _(t):
    return [f"{F}:1: the file is empty; expected a site configuration"]


@case("yaml-syntax-error", edit(DUMP_KP, "    kp: [10.0\n"))
def _(t):
    # PyYAML notices the unclosed list where the next key starts.
    return [f"{F}:{ln(t, 'kp: [10.0') + 1}: YAML syntax error: expected ',' or ']', but got ':'"]


@case("yaml-tab-indent", edit(DUMP_KP, "\tkp: 10.0\n"))
def _(t):
    return [f"{F}:{ln(t, chr(9) + 'kp')}: YAML syntax error: found character '\\t' that cannot start any token"]


@case("yaml-two-documents", BASE + "---\nsite: {name: other}\n")
def _(t):
    return [f"{F}:{line_is(t, '---')}: YAML syntax error: expected a single document in the stream, "
            "but found another document"]


@case("top-level-list", "- site\n- points\n")
def _(t):
    return [f"{F}:1: expected a mapping of sections (site:, points:, ...) at the top level, got a list"]


@case("top-level-text", "# a comment\nhello\n")
def _(t):
    return [f"{F}:2: expected a mapping of sections (site:, points:, ...) at the top level, got the text 'hello'"]


@case("python-tag", edit(DUMP_KP, "    kp: !!python/object/apply:os.system [echo]\n"))
def _(t):
    return [f"{F}:{ln(t, '!!python')}: loops.dump.kp: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' "
            "is not allowed; expected a plain value"]


@case("list-as-key", edit(DUMP_KP, "    ? [a, b]\n    : 1\n    kp: 10.0\n"))
def _(t):
    return [f"{F}:{ln(t, '? [a, b]')}: loops.dump.?: expected a plain key (a name), got a list or mapping as key"]


# Several problems at once: all of them, one line each, in the order of the file's sections.


@case("several-structural-problems", edit(
    "tick_period_s: 1.0\n", "tick_period_s: 0.05\n",
    edit(DUMP_KP, "    kp: fast\n    kpp: 1\n", edit("  policy: compute_first\n", "  policy: heat_frist\n"))))
def _(t):
    return [
        f"{F}:{ln(t, 'heat_frist')}: site.policy: expected 'compute_first' or 'heat_first', got 'heat_frist'",
        f"{F}:{ln(t, 'tick_period_s: 0.05')}: tick_period_s: expected a value >= 0.1, got 0.05",
        f"{F}:{ln(t, 'kp: fast')}: loops.dump.kp: expected a number, got 'fast'",
        f"{F}:{ln(t, 'kpp: 1')}: loops.dump.kpp: unknown key (not part of the schema; check its spelling)",
    ]


@case("several-cross-section-problems", edit(
    "    alarm: 55.0\n", "    alarm: 62.0\n",
    edit("  surplus_exit_w: -2000 ", "  surplus_exit_w: 4000  ",
         edit("bmc: srv8}", "bmc: srv9}", edit(LOW_FLOW_ACTIONS, LOW_FLOW_D1.replace("d1_fan", "b_flow"))))))
def _(t):
    return [
        f"{F}:{ln(t, 'alarm: 62.0')}: trips.it_overtemp.alarm: a high trip's alarm must be below its limit (60.0), got 62.0",
        f"{F}:{ln(t, 'b_flow: 100')}: trips.low_flow.actions.b_flow: point 'b_flow' is a reading; trip actions drive actuators",
        f"{F}:{ln(t, 'surplus_exit_w: 4000')}: modes.surplus_exit_w: expected surplus_exit_w < surplus_enter_w (3000.0) "
        "for hysteresis, got 4000.0",
        f"{F}:{ln(t, 'srv9')}: points.srv8_power.source.bmc: names BMC 'srv9', not one of {SERVERS}",
    ]


@pytest.mark.parametrize(("text", "expect"), [(t, e) for _, t, e in CASES], ids=[c for c, _, _ in CASES])
def test_broken_config_is_rejected_with_exact_lines(text, expect):
    assert problems(text) == expect(text)


def test_case_ids_are_unique():
    ids = [c for c, _, _ in CASES]
    assert len(ids) == len(set(ids))


# --- files ----------------------------------------------------------------------------------------


def test_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as exc:
        load_config(missing)
    assert exc.value.problems == [f"{missing}: no such file; expected a site configuration (YAML)"]


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    [line] = exc.value.problems
    assert line.startswith(f"{tmp_path}: is a directory") and "\n" not in line


def test_not_utf8(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("site: {name: K\xf8benhavn}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    [line] = exc.value.problems
    assert line.startswith(f"{bad}:1:15: byte 0xf8 is not UTF-8")


def test_load_config_names_the_file(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(edit(DUMP_KP, "    kp: fast\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(site)
    assert exc.value.problems == [f"{site}:{ln(site.read_text(), 'kp: fast')}: loops.dump.kp: expected a number, got 'fast'"]


# --- heatctl check-config and heatctl schema, as an operator runs them -----------------------------


def heatctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )


def test_check_config_accepts_the_example():
    run = heatctl("check-config", "config/reference-plant.yaml")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    *waived, line = run.stdout.splitlines()
    sha = ok().sha256[:12]
    # Its waivers first, one line each (the simulated plant's noiseless sensors, see its comments).
    assert [w.split(": waived ")[0] for w in waived] == [
        f"config/reference-plant.yaml:{ln(BASE, f'  {n}:')}: points.{n}.frozen_after_s"
        for n in ("it_supply_temp", "it_return_temp", "it_flow", "b_return_temp")]
    assert line == (f"config/reference-plant.yaml: OK: site 'reference-pool', policy compute_first, {N_POINTS} points, "
                    f"3 drivers, 4 trips, tick 1 s, sha256 {sha}, 4 waived")


def test_check_config_rejects_a_broken_file_with_the_lines(tmp_path):
    text = edit("    alarm: 55.0\n", "    alarm: 62.0\n", edit(DUMP_KP, "    kp: !!python/name:os.system\n"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    run = heatctl("check-config", str(broken))
    assert run.returncode == 1
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        f"{broken}:{ln(text, '!!python')}: loops.dump.kp: YAML tag 'tag:yaml.org,2002:python/name:os.system' "
        "is not allowed; expected a plain value",
    ]
    broken.write_text(edit("    alarm: 55.0\n", "    alarm: 62.0\n"), encoding="utf-8")
    run = heatctl("check-config", str(broken))
    assert (run.returncode, run.stdout) == (1, "")
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        f"{broken}:{ln(broken.read_text(), 'alarm: 62.0')}: trips.it_overtemp.alarm: "
        "a high trip's alarm must be below its limit (60.0), got 62.0",
    ]


def test_check_config_missing_file_exits_1_without_traceback(tmp_path):
    run = heatctl("check-config", str(tmp_path / "nope.yaml"))
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"{tmp_path / 'nope.yaml'}: no such file; expected a site configuration (YAML)\n"


def test_check_config_with_two_different_files_exits_with_one_line():
    # Without a file, check-config checks the default config (as every verb resolves it).
    run = heatctl("check-config", "config/reference-plant.yaml", "--config", "other.yaml")
    assert run.returncode not in (0, None)
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1


def test_shipped_schema_is_the_generated_one():
    run = heatctl("schema")
    assert run.returncode == 0, run.stderr
    shipped = SCHEMA.read_text(encoding="utf-8")
    # Byte for byte what `heatctl schema > config/site-config.schema.json` writes: it cannot drift.
    assert run.stdout == shipped, "regenerate with: .venv/bin/heatctl schema > config/site-config.schema.json"
    assert json.loads(shipped) == SiteConfig.model_json_schema(mode="validation")
