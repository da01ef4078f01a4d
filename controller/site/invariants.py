"""Safety invariants of a site config (issue 13): configs that load but could not protect the plant.

Each check yields one Problem naming the key and what was expected, with its rule id
(controller.site.rules). These need only the validated SiteConfig; the checks that need each point's
parsed source (registers, nodes, BMCs) are in controller.site.source_checks.
"""

from __future__ import annotations

from typing import Iterator

from controller.site.checks import Problem
from controller.site.models import LoopConfig, PointConfig, SiteConfig
from controller.site.roles import ROLE_SPECS, Role
from controller.site.rules import (MAX_CRITICAL_AGE_S, MAX_FROZEN_S, MAX_GRACE_S, MAX_LOOP_SLEW_S,
                                   MAX_SAFETY_SLEW_S)

# Units of the readings that must move under load: a stuck one of these is a fault to be seen.
_MOVING_UNITS = frozenset({"degC", "m3/h"})
# Each loop's protective direction: the way its output moves to keep the IT loop safe.
_SAFETY_DIRECTION = {"power_cap": "rate_down_per_s", "it_delta_t": "rate_up_per_s", "dump": "rate_up_per_s"}


def check_invariants(site: SiteConfig) -> Iterator[Problem]:
    yield from _safety_roles(site)
    yield from _safety_trips(site)
    yield from _trips_can_fire(site)
    yield from _min_max(site)
    yield from _setpoints(site)
    yield from _loop_slews(site)


def _safety_roles(site: SiteConfig) -> Iterator[Problem]:
    for role in (Role.IT_SUPPLY_TEMP, Role.IT_FLOW, Role.LEAK):
        for name in site.points_with_role(role):
            if not site.points[name].critical:
                yield Problem(("points", name, "critical"),
                              f"point {name!r} (role {role.value}) guards the IT loop: expected critical: true",
                              "safety_role")
    for name, p in site.points.items():
        base = ("points", name)
        if p.critical and p.max_age_s > MAX_CRITICAL_AGE_S:
            yield Problem(base + ("max_age_s",), f"expected max_age_s <= {MAX_CRITICAL_AGE_S:g} on a critical "
                                                 f"point (a stale reading must be seen), got {p.max_age_s:g}",
                          "staleness_bound")
        if p.critical and _unit_of(p) in _MOVING_UNITS:
            if p.frozen_after_s is None:
                yield Problem(base + ("frozen_after_s",),
                              f"expected frozen_after_s on critical point {name!r} (a stuck {_unit_of(p)} sensor "
                              f"goes unseen without it), at most {MAX_FROZEN_S:g} s", "frozen_required")
            elif p.frozen_after_s > MAX_FROZEN_S:
                yield Problem(base + ("frozen_after_s",), f"expected frozen_after_s <= {MAX_FROZEN_S:g} on a "
                                                          f"critical point, got {p.frozen_after_s:g}", "frozen_bound")
    bmc_max = _bmc_max_power(site)
    for name in site.points_with_role(Role.SERVER_POWER):
        p = site.points[name]
        src = p.source or {}
        limit = bmc_max.get((src.get("driver"), src.get("bmc")))
        if limit is not None and p.range[1] < limit:
            yield Problem(("points", name, "range"),
                          f"expected a range up to at least the BMC's max_power_w ({limit:g} W), got "
                          f"{list(p.range)}: a server at its limit would read as bad", "safety_role")


def _unit_of(p: PointConfig) -> str:
    """The unit a point's role is measured in (the point's own unit when it has no known role): a
    wrong unit is reported on its own and must not also change which rules apply."""
    try:
        return ROLE_SPECS[Role(p.role)].unit if p.role else p.unit
    except ValueError:
        return p.unit


def _bmc_max_power(site: SiteConfig) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for dname, d in site.drivers.items():
        for bmc in getattr(d, "bmcs", ()) or ():
            out[(dname, bmc.name)] = bmc.max_power_w
    return out


def _caps_it_power(site: SiteConfig, actions: dict[str, float]) -> bool:
    caps = site.points_with_role(Role.POWER_CAP)
    return any(c in actions and actions[c] <= site.power.safe_degrade_w for c in caps)


def _safety_trips(site: SiteConfig) -> Iterator[Problem]:
    """The IT loop's three hazards each have their trip, and each trip takes IT power down."""
    flows = site.points_with_role(Role.IT_FLOW)
    supplies = site.points_with_role(Role.IT_SUPPLY_TEMP)
    guards: dict[str, list[str]] = {"leak": [], "low_flow": [], "high": []}
    for name, trip in site.trips.items():
        if trip.kind == "leak":
            guards["leak"].append(name)
        elif trip.kind == "low_flow" and trip.point in flows:
            guards["low_flow"].append(name)
        elif trip.kind == "high" and trip.point in supplies:
            guards["high"].append(name)
    if site.points_with_role(Role.LEAK) and not guards["leak"]:
        yield Problem(("trips",), f"missing a leak trip (kind: leak) while leak points exist "
                                  f"({', '.join(site.points_with_role(Role.LEAK))})", "safety_trip")
    if flows and not guards["low_flow"]:
        yield Problem(("trips",), f"missing a low_flow trip on the IT flow point {flows[0]!r}", "safety_trip")
    if site.points_with_role(Role.POWER_CAP):
        for names in guards.values():
            for name in names:
                if not _caps_it_power(site, site.trips[name].actions):
                    cap = site.points_with_role(Role.POWER_CAP)[0]
                    yield Problem(("trips", name, "actions"),
                                  f"trip {name!r} guards the IT loop: expected an action {cap}: <= "
                                  f"power.safe_degrade_w ({site.power.safe_degrade_w:g} W)", "safety_trip")
    if not any(t.kind == "sensor_lost" for t in site.trips.values()):
        yield Problem(("trips",), "missing a sensor_lost trip (a critical reading lost beyond its grace "
                                  "period drives the plant to a safe state)", "sensor_lost_trip")
    for name, trip in site.trips.items():
        if trip.kind == "sensor_lost" and trip.grace_s > MAX_GRACE_S:
            yield Problem(("trips", name, "grace_s"), f"expected grace_s <= {MAX_GRACE_S:g}, got {trip.grace_s:g}",
                          "grace_bound")
    if site.modes.critical_grace_s > MAX_GRACE_S:
        yield Problem(("modes", "critical_grace_s"),
                      f"expected critical_grace_s <= {MAX_GRACE_S:g}, got {site.modes.critical_grace_s:g}",
                      "grace_bound")


def _trips_can_fire(site: SiteConfig) -> Iterator[Problem]:
    for name, trip in site.trips.items():
        if trip.kind == "low_flow" and trip.it_idle_w is not None and trip.it_idle_w >= site.power.max_w:
            yield Problem(("trips", name, "it_idle_w"),
                          f"expected it_idle_w below power.max_w ({site.power.max_w:g} W): IT power never "
                          f"exceeds {trip.it_idle_w:g} W, so the trip could never fire", "trip_can_fire")


def _min_max(site: SiteConfig) -> Iterator[Problem]:
    for dname, d in site.drivers.items():
        base = ("drivers", dname)
        lo, hi = getattr(d, "reconnect_min_s", None), getattr(d, "reconnect_max_s", None)
        if lo is not None and hi is not None and lo > hi:
            yield Problem(base + ("reconnect_min_s",),
                          f"expected reconnect_min_s <= reconnect_max_s ({hi:g}), got {lo:g}", "min_max")
        for i, bmc in enumerate(getattr(d, "bmcs", ()) or ()):
            if not bmc.min_power_w < bmc.max_power_w:
                yield Problem(base + ("bmcs", i, "min_power_w"),
                              f"expected min_power_w < max_power_w ({bmc.max_power_w:g}) for BMC {bmc.name!r}, "
                              f"got {bmc.min_power_w:g}: every limit would be pinned", "min_max")
    pw = site.power
    if not pw.floor_w < pw.max_w:
        yield Problem(("power", "floor_w"), f"expected floor_w < max_w ({pw.max_w:g}), got {pw.floor_w:g}", "min_max")
    w = site.workload
    if w is not None:
        # Equal is allowed (no hysteresis: shed whenever at or above); above would shed and undo at once.
        if not w.resume_below_soc <= w.shed_above_soc:
            yield Problem(("workload", "resume_below_soc"),
                          f"expected resume_below_soc <= shed_above_soc ({w.shed_above_soc:g}), "
                          f"got {w.resume_below_soc:g}", "min_max")
        if not w.shed_above_soc <= w.requeue_above_soc:
            yield Problem(("workload", "requeue_above_soc"),
                          f"expected requeue_above_soc >= shed_above_soc ({w.shed_above_soc:g}), "
                          f"got {w.requeue_above_soc:g}", "min_max")
    # planning: solve_time_limit_s < kill_after_s is checked with the plan's other limits (checks.py).


def _range_of(site: SiteConfig, point: str) -> tuple[float, float] | None:
    p = site.points.get(point)
    return None if p is None else p.range


def _setpoints(site: SiteConfig) -> Iterator[Problem]:
    loops = site.loops
    for loop_name in ("consumer_supply", "dump"):
        loop: LoopConfig = getattr(loops, loop_name)
        rng = _range_of(site, loop.measurement)
        if rng is None:
            continue
        lo, hi = rng
        if not lo <= loop.setpoint <= hi:
            yield Problem(("loops", loop_name, "setpoint"),
                          f"expected a setpoint inside the range {list(rng)} of {loop.measurement!r}, "
                          f"got {loop.setpoint:g}", "setpoint_range")
        elif loop_name == "dump":
            for pol in ("compute_first", "heat_first"):
                offset = getattr(site.policy, pol).dump_offset_k
                if loop.setpoint + offset > hi:
                    yield Problem(("policy", pol, "dump_offset_k"),
                                  f"the dump setpoint {loop.setpoint:g} + {offset:g} K lies above the range "
                                  f"{list(rng)} of {loop.measurement!r}; expected it inside", "setpoint_range")
    ret = _range_of(site, loops.it_delta_t.measurement)
    cap_rng = _range_of(site, loops.power_cap.measurement)
    highs = [t for t in site.trips.values()
             if t.kind == "high" and t.point == loops.power_cap.measurement and t.limit is not None]
    for pol in ("compute_first", "heat_first"):
        settings = getattr(site.policy, pol)
        if ret is not None and not settings.it_delta_t_k < ret[1] - ret[0]:
            yield Problem(("policy", pol, "it_delta_t_k"),
                          f"expected an IT loop dT below the span of {loops.it_delta_t.measurement!r} "
                          f"({ret[1] - ret[0]:g} K), got {settings.it_delta_t_k:g}", "setpoint_range")
        if cap_rng is not None:
            for trip in highs:
                target = trip.limit - settings.cap_margin_k  # type: ignore[operator]
                if not cap_rng[0] < target:
                    yield Problem(("policy", pol, "cap_margin_k"),
                                  f"the power cap loop would hold {target:g} degC, outside the range "
                                  f"{list(cap_rng)} of {loops.power_cap.measurement!r}; expected a margin below "
                                  f"{trip.limit - cap_rng[0]:g} K", "setpoint_range")
    tank = _range_of(site, next(iter(site.points_with_role(Role.TANK_TOP_TEMP)), ""))
    if tank is not None:
        m = site.modes
        for key in ("tank_empty_temp_c", "tank_full_temp_c"):
            value = getattr(m, key)
            if not tank[0] <= value <= tank[1]:
                yield Problem(("modes", key), f"expected {key} inside the tank top point's range {list(tank)}, "
                                              f"got {value:g}", "setpoint_range")


def _loop_slews(site: SiteConfig) -> Iterator[Problem]:
    for loop_name in ("it_delta_t", "consumer_supply", "dump", "power_cap"):
        loop: LoopConfig = getattr(site.loops, loop_name)
        span = loop.output_max - loop.output_min
        if span <= 0:
            continue  # reported by the loop checks
        for key in ("rate_up_per_s", "rate_down_per_s"):
            rate = getattr(loop, key)
            seconds = span / rate
            if _SAFETY_DIRECTION.get(loop_name) == key and seconds > MAX_SAFETY_SLEW_S:
                yield Problem(("loops", loop_name, key),
                              f"the loop's protective direction needs {seconds:.3g} s over its range "
                              f"[{loop.output_min:g}, {loop.output_max:g}]; expected {key} >= "
                              f"{span / MAX_SAFETY_SLEW_S:.3g} (within {MAX_SAFETY_SLEW_S:g} s)", "safety_slew")
            elif seconds > MAX_LOOP_SLEW_S:
                yield Problem(("loops", loop_name, key),
                              f"the loop needs {seconds:.3g} s over its range [{loop.output_min:g}, "
                              f"{loop.output_max:g}]; expected {key} >= {span / MAX_LOOP_SLEW_S:.3g} "
                              f"(within {MAX_LOOP_SLEW_S:g} s)", "loop_slew")
