"""Checks across config sections, each returning the YAML path and what was expected.

Pydantic checks each value on its own; these check that values agree with each other: that a loop's
points exist and play the right roles, that a trip limit is on the right side of its alarm and of the
loop setpoint that works under it, that hysteresis bands are not inverted. Never auto-correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from controller.site.alarm_signals import DRIVER_DOWN, SIGNALS, signal_spec
from controller.site.models import SiteConfig
from controller.site.roles import KNOWN_UNITS, ROLE_SPECS, PointKind, Role

# Roles whose absence leaves a hazard unwatched (issue 13): a missing one is a safety_role problem.
SAFETY_ROLES = frozenset({Role.IT_SUPPLY_TEMP, Role.IT_FLOW, Role.LEAK, Role.SERVER_POWER})


@dataclass(frozen=True)
class Problem:
    path: tuple[str | int, ...]
    message: str
    # The rule broken (controller.site.rules.RULES): what `check-config --json` reports and what a
    # `waive:` entry names.
    rule: str = "consistency"


@dataclass(frozen=True)
class ProblemRecord:
    """A problem placed in its file, for operators (`line_text`) and scripts (`as_dict`)."""

    file: str
    line: int
    key: str
    rule: str
    message: str
    severity: str = "error"
    waived: bool = False
    # The waive: entry's reason, for a waived problem.
    reason: str = ""

    def line_text(self) -> str:
        if self.waived:
            return f"{self.file}:{self.line}: {self.key}: waived {self.rule}: {self.reason}"
        return f"{self.file}:{self.line}: {self.key}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"file": self.file, "line": self.line, "key": self.key, "rule": self.rule,
                                "message": self.message, "severity": self.severity, "waived": self.waived}
        if self.waived:
            d["reason"] = self.reason
        return d


# Each loop's measurement and output roles.
LOOP_ROLES: dict[str, tuple[Role, Role]] = {
    "it_delta_t": (Role.IT_RETURN_TEMP, Role.P1_SPEED),
    "consumer_supply": (Role.CONSUMER_SUPPLY_TEMP, Role.V1_POSITION),
    "dump": (Role.B_RETURN_TEMP, Role.D1_FAN),
    "power_cap": (Role.IT_SUPPLY_TEMP, Role.POWER_CAP),
}


# Loops whose setpoint is in their measurement's unit and is used as written. it_delta_t holds a
# temperature difference (K, from policy.*.it_delta_t_k), power_cap's target is the trip limit minus
# policy.*.cap_margin_k (checked with the trip): comparing either with a trip's alarm means nothing.
SETPOINT_LOOPS = ("consumer_supply", "dump")


def point_kind(site: SiteConfig, name: str) -> PointKind | None:
    """Reading or actuator, by the point's role; None for an unknown role (reported on its own)."""
    role = site.points[name].role
    if not role:
        return PointKind.READING
    try:
        return ROLE_SPECS[Role(role)].kind
    except ValueError:
        return None


def check_site(site: SiteConfig) -> Iterator[Problem]:
    yield from _check_points(site)
    yield from _check_loops(site)
    yield from _check_trips(site)
    yield from _check_modes_and_power(site)
    yield from _check_alarms(site)
    yield from _check_planning(site)
    # Imported here: invariants builds on this module's Problem and helpers.
    from controller.site.invariants import check_invariants
    yield from check_invariants(site)


def _check_points(site: SiteConfig) -> Iterator[Problem]:
    valid_roles = {r.value for r in Role}
    for name, p in site.points.items():
        base = ("points", name)
        if p.unit not in KNOWN_UNITS:
            yield Problem(base + ("unit",), f"unknown unit {p.unit!r}; expected one of {sorted(KNOWN_UNITS)}")
        if p.range[0] >= p.range[1]:
            yield Problem(base + ("range",), f"expected [min, max] with min < max, got {list(p.range)}")
        if p.role is None:
            continue
        if p.role not in valid_roles:
            yield Problem(base + ("role",), f"unknown role {p.role!r}; expected one of {sorted(valid_roles)}")
            continue
        spec = ROLE_SPECS[Role(p.role)]
        if p.unit != spec.unit:
            yield Problem(base + ("unit",), f"role {p.role} is measured in {spec.unit!r}, got {p.unit!r}")
        if spec.kind is PointKind.ACTUATOR and p.critical:
            yield Problem(base + ("critical",), "an actuator cannot be critical; criticality is for readings")
    for role, spec in ROLE_SPECS.items():
        holders = site.points_with_role(role)
        if spec.required and not holders:
            yield Problem(("points",), f"missing point with role {role.value} ({spec.description}, in {spec.unit})",
                          "safety_role" if role in SAFETY_ROLES else "consistency")
        if not spec.many and len(holders) > 1:
            yield Problem(("points", holders[1], "role"),
                          f"role {role.value} is already taken by point {holders[0]!r}; expected one")


def _check_loops(site: SiteConfig) -> Iterator[Problem]:
    for loop_name, (m_role, o_role) in LOOP_ROLES.items():
        loop = getattr(site.loops, loop_name)
        base = ("loops", loop_name)
        for key, role in (("measurement", m_role), ("output", o_role)):
            pname = getattr(loop, key)
            point = site.points.get(pname)
            if point is None:
                yield Problem(base + (key,), f"names point {pname!r}, which is not under points")
            elif key == "output" and point_kind(site, pname) is PointKind.READING:
                yield Problem(base + (key,), f"point {pname!r} is a reading (role {point.role}); expected the "
                                             f"actuator with role {role.value}")
            elif point.role != role.value:
                yield Problem(base + (key,), f"point {pname!r} has role {point.role}; expected a point with role {role.value}")
        if loop.output_min >= loop.output_max:
            yield Problem(base + ("output_min",), f"expected output_min < output_max, got {loop.output_min} >= {loop.output_max}")
        out = site.points.get(loop.output)
        # Only against the right point: the range of a wrong one would add a second, misleading line.
        if out is not None and out.role == o_role.value and (
            loop.output_min < out.range[0] or loop.output_max > out.range[1]
        ):
            yield Problem(base + ("output_max",),
                          f"expected output limits [{loop.output_min}, {loop.output_max}] within the range "
                          f"{list(out.range)} of point {loop.output!r}")
        if loop.kp < 0:
            yield Problem(base + ("kp",), f"expected kp >= 0 (direction is built into each loop), got {loop.kp}")


def _check_trips(site: SiteConfig) -> Iterator[Problem]:
    has_it_overtemp = False
    cap_point = site.loops.power_cap.measurement
    for name, trip in site.trips.items():
        base = ("trips", name)
        needs_point = trip.kind in ("high", "low", "low_flow")
        if needs_point:
            if trip.point is None:
                yield Problem(base + ("point",), f"a {trip.kind} trip needs the point it watches")
            elif trip.point not in site.points:
                yield Problem(base + ("point",), f"names point {trip.point!r}, which is not under points")
            elif point_kind(site, trip.point) is PointKind.ACTUATOR:
                yield Problem(base + ("point",), f"point {trip.point!r} is an actuator; a trip watches a reading")
            if trip.limit is None:
                yield Problem(base + ("limit",), f"a {trip.kind} trip needs a limit")
        if trip.kind == "low_flow" and trip.it_idle_w is None:
            yield Problem(base + ("it_idle_w",), "a low_flow trip needs it_idle_w (IT power above which flow must exist)")
        if trip.kind == "leak" and not site.points_with_role(Role.LEAK):
            yield Problem(base + ("kind",), "a leak trip needs at least one point with role leak")
        if trip.limit is not None and trip.alarm is not None:
            if trip.kind == "high" and not trip.alarm < trip.limit:
                yield Problem(base + ("alarm",), f"a high trip's alarm must be below its limit ({trip.limit}), got {trip.alarm}")
            if trip.kind in ("low", "low_flow") and not trip.alarm > trip.limit:
                yield Problem(base + ("alarm",), f"a low trip's alarm must be above its limit ({trip.limit}), got {trip.alarm}")
        if trip.kind in ("low", "low_flow") and trip.point in site.points and trip.limit is not None:
            lo, hi = site.points[trip.point].range
            if not lo < trip.limit < hi:
                # low_flow fires below its limit: at the range minimum it never can.
                yield Problem(base + ("limit",), f"expected a limit strictly inside the valid range {[lo, hi]} "
                                                 f"of point {trip.point!r}, where it can fire; got {trip.limit:g}",
                              "trip_can_fire")
            for loop_name in SETPOINT_LOOPS:
                loop = getattr(site.loops, loop_name)
                bound = trip.alarm if trip.alarm is not None else trip.limit
                if loop.measurement == trip.point and loop.setpoint <= bound:
                    yield Problem(("loops", loop_name, "setpoint"),
                                  f"setpoint {loop.setpoint} is at or below trip {name}'s "
                                  f"{'alarm' if trip.alarm is not None else 'limit'} {bound}; expected above it")
        if trip.kind == "high" and trip.point in site.points and trip.limit is not None:
            lo, hi = site.points[trip.point].range
            if not lo < trip.limit < hi:
                yield Problem(base + ("limit",), f"expected a limit strictly inside the valid range {[lo, hi]} "
                                                 f"of point {trip.point!r}, where it can fire; got {trip.limit:g}",
                              "trip_can_fire")
            if trip.point == cap_point:
                has_it_overtemp = True
                for pol_name in ("compute_first", "heat_first"):
                    settings = getattr(site.policy, pol_name)
                    target = trip.limit - settings.cap_margin_k
                    if trip.alarm is not None and target >= trip.alarm:
                        yield Problem(("policy", pol_name, "cap_margin_k"),
                                      f"the power cap loop would hold {target} degC, at or above trip {name}'s alarm "
                                      f"{trip.alarm}; expected cap_margin_k > {trip.limit - trip.alarm}")
                    if settings.cap_margin_k <= site.modes.limit_near_k:
                        yield Problem(("policy", pol_name, "cap_margin_k"),
                                      f"expected cap_margin_k > modes.limit_near_k ({site.modes.limit_near_k}), "
                                      "or the cap loop would regulate inside the safe_degrade band")
            # A loop that holds this point must hold it below the alarm (or the limit).
            for loop_name in SETPOINT_LOOPS:
                loop = getattr(site.loops, loop_name)
                bound = trip.alarm if trip.alarm is not None else trip.limit
                if loop.measurement == trip.point and loop.setpoint >= bound:
                    yield Problem(("loops", loop_name, "setpoint"),
                                  f"setpoint {loop.setpoint} is at or above trip {name}'s "
                                  f"{'alarm' if trip.alarm is not None else 'limit'} {bound}; expected below it")
        if not trip.actions:
            yield Problem(base + ("actions",), "a trip needs at least one action (actuator point: value)")
        for pname, value in trip.actions.items():
            point = site.points.get(pname)
            if point is None:
                yield Problem(base + ("actions", pname), f"names point {pname!r}, which is not under points")
            elif point_kind(site, pname) is PointKind.READING:
                yield Problem(base + ("actions", pname), f"point {pname!r} is a reading; trip actions drive actuators")
            elif not point.range[0] <= value <= point.range[1]:
                yield Problem(base + ("actions", pname), f"value {value} lies outside the point's range {list(point.range)}")
    if not has_it_overtemp:
        yield Problem(("trips",), f"missing a high trip on the IT supply temperature point {cap_point!r} "
                                  "(the power cap loop works under it)", "safety_trip")


def _check_modes_and_power(site: SiteConfig) -> Iterator[Problem]:
    m, pw = site.modes, site.power
    if not m.surplus_exit_w < m.surplus_enter_w:
        yield Problem(("modes", "surplus_exit_w"),
                      f"expected surplus_exit_w < surplus_enter_w ({m.surplus_enter_w}) for hysteresis, got {m.surplus_exit_w}")
    if not m.tank_resume_soc < m.tank_full_soc:
        yield Problem(("modes", "tank_resume_soc"),
                      f"expected tank_resume_soc < tank_full_soc ({m.tank_full_soc}), got {m.tank_resume_soc}")
    if not m.tank_empty_temp_c < m.tank_full_temp_c:
        yield Problem(("modes", "tank_empty_temp_c"),
                      f"expected tank_empty_temp_c < tank_full_temp_c ({m.tank_full_temp_c}), got {m.tank_empty_temp_c}")
    if not pw.floor_w <= pw.safe_degrade_w <= pw.max_w:
        yield Problem(("power", "safe_degrade_w"),
                      f"expected floor_w <= safe_degrade_w <= max_w ({pw.floor_w} .. {pw.max_w}), got {pw.safe_degrade_w}")
    if not pw.idle_w < pw.max_w:
        yield Problem(("power", "idle_w"), f"expected idle_w < max_w ({pw.max_w}), got {pw.idle_w}")
    cap = site.loops.power_cap
    if cap.output_min != pw.floor_w or cap.output_max != pw.max_w:
        yield Problem(("loops", "power_cap", "output_min"),
                      f"expected the cap loop's limits to be power.floor_w and power.max_w "
                      f"({pw.floor_w}, {pw.max_w}), got ({cap.output_min}, {cap.output_max})")


def _check_alarms(site: SiteConfig) -> Iterator[Problem]:
    """Each alarm watches something that exists, with the keys its kind needs and no others, and a
    high (low) alarm comes before the trip on the same point: below (above) the trip's limit."""
    for name, a in site.alarms.items():
        base = ("alarms", name)
        if name in site.trips:
            yield Problem(base, f"alarm {name!r} has a trip's name; `heatctl ack {name}` could not tell "
                                "them apart: expected a different name")
        if a.kind == "condition":
            if a.point is not None:
                yield Problem(base + ("point",), "a condition alarm watches a signal, not a point; expected no point")
            sig = signal_spec(a.signal or "")
            known = ", ".join(sorted(SIGNALS))
            if a.signal is None:
                yield Problem(base, f"missing required key 'signal' (one of: {known})")
                continue
            if sig is None:
                yield Problem(base + ("signal",), f"unknown signal {a.signal!r}; expected one of: {known}")
                continue
            # driver_down:slurm is the workload driver's (workload: section), not a field driver's.
            if a.signal.startswith(DRIVER_DOWN) and a.signal[len(DRIVER_DOWN):] not in site.drivers \
                    and not (a.signal == DRIVER_DOWN + "slurm" and site.workload is not None):
                yield Problem(base + ("signal",), f"names driver {a.signal[len(DRIVER_DOWN):]!r}, which is not "
                                                  f"under drivers (have: {', '.join(sorted(site.drivers)) or 'none'})")
            if sig[0] and a.limit is None:
                yield Problem(base, f"missing required key 'limit': signal {a.signal} is a number ({sig[2]})")
            if not sig[0] and a.limit is not None:
                yield Problem(base + ("limit",), f"signal {a.signal} is true or false; expected no limit")
            if not sig[0] and a.deadband:
                yield Problem(base + ("deadband",), f"signal {a.signal} is true or false; expected no deadband")
            continue
        if a.signal is not None:
            yield Problem(base + ("signal",), f"a {a.kind} alarm watches a point; expected no signal")
        if a.point is None:
            yield Problem(base, f"missing required key 'point': a {a.kind} alarm watches a reading")
            continue
        if a.point not in site.points:
            yield Problem(base + ("point",), f"names point {a.point!r}, which is not under points")
            continue
        if point_kind(site, a.point) is not PointKind.READING:
            yield Problem(base + ("point",), f"point {a.point!r} is an actuator; an alarm watches a reading")
            continue
        if a.kind == "bad_reading":
            if a.limit is not None:
                yield Problem(base + ("limit",), "a bad_reading alarm has no limit (it is the reading's quality)")
            if a.deadband:
                yield Problem(base + ("deadband",), "a bad_reading alarm has no deadband")
            continue
        if a.limit is None:
            yield Problem(base, f"missing required key 'limit': a {a.kind} alarm needs its limit")
            continue
        lo, hi = site.points[a.point].range
        if not lo <= a.limit <= hi:
            yield Problem(base + ("limit",), f"expected a limit within the valid range {[lo, hi]} of point "
                                             f"{a.point!r}, got {a.limit}")
        if a.deadband >= hi - lo:
            yield Problem(base + ("deadband",), f"expected a deadband smaller than the point's range "
                                                f"{[lo, hi]}, got {a.deadband}")
        for tname, trip in site.trips.items():
            if trip.point != a.point or trip.limit is None:
                continue
            if a.kind == "high" and trip.kind == "high" and not a.limit < trip.limit:
                yield Problem(base + ("limit",), f"a high alarm must come before trip {tname}: expected a limit "
                                                 f"below its limit {trip.limit:g}, got {a.limit:g}")
            if a.kind == "low" and trip.kind in ("low", "low_flow") and not a.limit > trip.limit:
                yield Problem(base + ("limit",), f"a low alarm must come before trip {tname}: expected a limit "
                                                 f"above its limit {trip.limit:g}, got {a.limit:g}")


def _check_planning(site: SiteConfig) -> Iterator[Problem]:
    """The plan's time box: HiGHS's limit inside the kill, the kill well inside the re-plan period."""
    p = site.planning
    if not p.solve_time_limit_s < p.kill_after_s:
        yield Problem(("planning", "kill_after_s"), f"expected more than solve_time_limit_s ({p.solve_time_limit_s} s: "
                      f"the solver's own limit comes first), got {p.kill_after_s}", "min_max")
    if not p.kill_after_s <= p.replan_every_s / 2:
        yield Problem(("planning", "kill_after_s"), f"expected at most half of replan_every_s ({p.replan_every_s} s: "
                      f"a solve ends well before the next is due), got {p.kill_after_s}")
    if p.enabled == "on" and site.plant is None:
        yield Problem(("planning", "enabled"), "the plan needs the site's plant: section (its thermal limits); "
                      "add it, or set enabled: auto or off")
