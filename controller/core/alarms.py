"""Operator alarms (ISA-18.2) and sensor status (NAMUR NE 107), distinct from trips.

A trip acts on the plant; an alarm only tells an operator that something needs a response, and
records that somebody did respond. Alarms are evaluated by the daemon after each control step, on the
daemon's clock, by `Alarms.evaluate(state, inputs, requests, now)`: pure and synchronous, state and
inputs in, new state and events out (no clock, no I/O, STYLE.md habit 1).

Alarm states (ISA-18.2 section 11, the alarm state transition diagram):

    normal                    condition clear, nothing to acknowledge
    unacknowledged            active, not yet acknowledged           (annunciated)
    acknowledged              active, acknowledged
    returned_unacknowledged   condition cleared before anyone acknowledged it
    shelved                   suppressed by an operator until `until` (with who and why)
    out_of_service            suppressed by the config, or by an operator until put back in service

    normal --condition (after on_delay_s)--> unacknowledged --ack--> acknowledged
    unacknowledged --return (deadband, off_delay_s)--> returned_unacknowledged --ack--> normal
    acknowledged --return--> normal
    any (but out_of_service) --shelve--> shelved --expiry or unshelve--> what the condition implies
    any --out_of_service--> out_of_service --in_service--> what the condition implies

"What the condition implies" is unacknowledged if the condition is active (it is annunciated again:
nobody has seen it since it was suppressed), else normal. While suppressed, the condition is still
tracked (through its delays and deadband) and counted for chattering, but never annunciated.

Every change of an alarm's state is an Event (audited by the daemon), with the operator and reason
where one asked for it; a request the alarms refuse is a `request_refused` event.

Alarm-system health (EEMUA 191 / ISA-18.2 section 16): the number of alarms annunciated to each
operator position in the last 10 minutes (more than 10 is a flood), and per alarm, going active 3 or
more times within a minute is chattering (counted).

Sensor status per point, one of NAMUR NE 107's four classes or good, in the order NE 107 ranks them:
failure (F: lost, bad, NaN, missing), function check (C: under an operator override or a trip test),
out of specification (S: out of range, rate, frozen, stale), maintenance required (M: uncertain
within the last hour, or its driver reconnected more than `MAINTENANCE_RECONNECTS` times in it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from controller.site.models import AlarmConfig, SiteConfig
from controller.site.alarm_signals import DRIVER_DOWN, SIGNALS, signal_spec  # noqa: F401 - re-exported
from controller.site.checks import point_kind
from controller.core.events import Event
from controller.core.requests import Request
from controller.site.roles import PointKind, Role
from controller.core.validation import Checked

PRIORITIES: tuple[str, ...] = ("high", "medium", "low")
OWNERS: tuple[str, ...] = ("facilities", "it_operations", "both")
# The operator positions alarms are annunciated to; an alarm owned by "both" reaches each of them.
OPERATORS: tuple[str, ...] = ("facilities", "it_operations")
NORMAL, UNACK, ACKED, RTN_UNACK, SHELVED, OUT_OF_SERVICE = (
    "normal", "unacknowledged", "acknowledged", "returned_unacknowledged", "shelved", "out_of_service")
STATES: tuple[str, ...] = (NORMAL, UNACK, ACKED, RTN_UNACK, SHELVED, OUT_OF_SERVICE)

# NE 107 classes, most severe first (NE 107 ranks F > C > S > M), then good.
FAILURE, FUNCTION_CHECK, OUT_OF_SPEC, MAINTENANCE, GOOD = (
    "failure", "function_check", "out_of_specification", "maintenance_required", "good")
NE107_CLASSES: tuple[str, ...] = (FAILURE, FUNCTION_CHECK, OUT_OF_SPEC, MAINTENANCE, GOOD)
NE107_LETTER = {FAILURE: "F", FUNCTION_CHECK: "C", OUT_OF_SPEC: "S", MAINTENANCE: "M", GOOD: "-"}
# validation.py's reason prefixes that mean "a value, but outside what it may be": S, not F.
_OUT_OF_SPEC_PREFIXES = ("out_of_range", "stale", "frozen", "rate")

# EEMUA 191 (and ISA-18.2's performance figures): more than 10 alarms in 10 minutes for one
# operator is a flood; an operator cannot take in more than one a minute.
FLOOD_WINDOW_S = 600.0
FLOOD_LIMIT = 10
# ISA-18.2 TR5 / EEMUA 191: an alarm that goes active 3 or more times in one minute is chattering.
CHATTER_WINDOW_S = 60.0
CHATTER_COUNT = 3
# A driver that reconnected more than this many times in the last hour needs looking at (a loose
# cable, a BMC that resets): its points are "maintenance required" though their values are good.
MAINTENANCE_WINDOW_S = 3600.0
MAINTENANCE_RECONNECTS = 3

# Point role -> area, for alarms on points that name no area.
_ROLE_AREAS = {Role.SERVER_POWER.value: "compute", Role.POWER_CAP.value: "compute",
               Role.LEAK.value: "safety", Role.HEARTBEAT.value: "controller"}


# --- requests ----------------------------------------------------------------------------------

ALARM_OPS: dict[str, str] = {
    # op -> the event kind that accepts it
    "alarm_ack": "alarm_acked",
    "shelve": "alarm_shelved",
    "unshelve": "alarm_unshelved",
    "out_of_service": "alarm_out_of_service",
    "in_service": "alarm_in_service",
}


@dataclass(frozen=True)
class AlarmRequest(Request):
    """An operator's request on one alarm: op is one of ALARM_OPS; duration_s for shelve."""

    op: str = "alarm_ack"
    alarm: str = ""
    duration_s: float | None = None

    def describe(self) -> str:
        return f"{self.op.replace('_', '-')} {self.alarm}"


# --- state -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Suppression:
    """Who suppressed an alarm, why, since when and (shelving only) until when."""

    user: str
    reason: str
    at: float
    until: float | None = None


@dataclass(frozen=True)
class AlarmState:
    # The condition after its on/off delays and deadband (tracked while suppressed too).
    active: bool = False
    # Annunciated and not yet acknowledged.
    unacked: bool = False
    # Since when the raw condition has disagreed with `active` (the delay running), else None.
    pending_since: float | None = None
    active_since: float | None = None
    value: float | None = None
    shelved: Suppression | None = None
    out_of_service: Suppression | None = None
    # Times it went active within the last CHATTER_WINDOW_S.
    activations: tuple[float, ...] = ()
    chatter_total: int = 0

    @property
    def status(self) -> str:
        if self.out_of_service is not None:
            return OUT_OF_SERVICE
        if self.shelved is not None:
            return SHELVED
        if self.active:
            return UNACK if self.unacked else ACKED
        return RTN_UNACK if self.unacked else NORMAL

    @property
    def chattering(self) -> bool:
        return len(self.activations) >= CHATTER_COUNT


@dataclass(frozen=True)
class AlarmsState:
    alarms: Mapping[str, AlarmState] = field(default_factory=dict)
    # Operator position -> times alarms were annunciated to it within FLOOD_WINDOW_S.
    annunciated: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    # Point -> the last time its reading was uncertain (for NE 107 M, within MAINTENANCE_WINDOW_S).
    uncertain_at: Mapping[str, float] = field(default_factory=dict)
    # Driver -> (time, reconnects added) within MAINTENANCE_WINDOW_S, and the last total seen.
    reconnects: Mapping[str, tuple[tuple[float, int], ...]] = field(default_factory=dict)
    reconnects_seen: Mapping[str, int] = field(default_factory=dict)
    # Point -> NE 107 class, this tick.
    ne107: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlarmInputs:
    """What the alarms see of one tick: validated readings and a few facts the daemon knows."""

    checked: Mapping[str, Checked]
    mode_safe_degrade: bool = False
    held: bool = False
    boiler_on: bool = False
    drivers_down: frozenset[str] = frozenset()
    # Driver -> its reconnect total (DriverHealth.reconnects_total).
    driver_reconnects: Mapping[str, int] = field(default_factory=dict)
    # Points under an operator override or a trip test this tick (NE 107 function check).
    function_check: frozenset[str] = frozenset()
    # The BMS says it runs on its own fallback; the heartbeat does not read back counting.
    bms_fallback: bool = False
    heartbeat_fault: bool = False


@dataclass(frozen=True)
class _Spec:
    name: str
    kind: str
    point: str | None
    signal: str | None
    numeric: bool
    limit: float | None
    deadband: float
    priority: str
    owner: str
    area: str
    on_delay_s: float
    off_delay_s: float
    oos_by_config: bool
    max_shelve_s: float
    description: str


# --- the engine --------------------------------------------------------------------------------

class Alarms:
    """Everything derived from one site config's `alarms:` and `raci:`; `evaluate` is pure."""

    def __init__(self, site: SiteConfig):
        self.site = site
        self.specs: dict[str, _Spec] = {n: self._spec(n, a) for n, a in site.alarms.items()}
        self.readings = tuple(n for n in site.points if point_kind(site, n) is PointKind.READING)
        self.points = tuple(site.points)
        self.point_driver = {n: p.source.get("driver") for n, p in site.points.items()
                             if p.source is not None and isinstance(p.source.get("driver"), str)}
        reading_set = frozenset(self.readings)
        # (point, is a reading, its driver or None), in the config's order, for the NE 107 pass.
        self._point_info = tuple((n, n in reading_set, self.point_driver.get(n)) for n in self.points)
        self._consumer_point = site.loops.consumer_supply.measurement
        self._consumer_sp = site.loops.consumer_supply.setpoint
        # Trip -> the points a trip test on it exercises (NE 107 function check).
        leaks = tuple(site.points_with_role(Role.LEAK))
        critical = tuple(n for n in self.readings if site.points[n].critical)
        self.trip_points: dict[str, tuple[str, ...]] = {
            name: ((t.point,) if t.point else leaks if t.kind == "leak" else critical if t.kind == "sensor_lost" else ())
            for name, t in site.trips.items()}

    def _spec(self, name: str, a: AlarmConfig) -> _Spec:
        site = self.site
        numeric = a.kind in ("high", "low")
        area = a.area
        if a.kind == "condition":
            sig = signal_spec(a.signal or "")
            numeric = bool(sig and sig[0])
            if area is None and sig is not None:
                area = sig[1]
                if (a.signal or "").startswith(DRIVER_DOWN):
                    drv = site.drivers.get((a.signal or "")[len(DRIVER_DOWN):])
                    # A BMC link is IT's; a BMS link (Modbus, OPC-UA) is the plant room's.
                    area = "compute" if drv is not None and drv.kind == "ipmi" else "thermal"
        elif area is None and a.point in site.points:
            area = _ROLE_AREAS.get(site.points[a.point].role or "", "thermal")
        area = area or "controller"
        owner = a.owner or getattr(site.raci, area)
        return _Spec(name, a.kind, a.point, a.signal, numeric, a.limit, a.deadband, a.priority, owner, area,
                     a.on_delay_s, a.off_delay_s, a.out_of_service, a.max_shelve_s, a.description)

    def initial_state(self, now: float) -> AlarmsState:
        return AlarmsState(alarms={n: self._initial(s, now) for n, s in self.specs.items()})

    @staticmethod
    def _initial(spec: _Spec, now: float) -> AlarmState:
        oos = Suppression("config", spec.description or "out of service by config", now) if spec.oos_by_config else None
        return AlarmState(out_of_service=oos)

    def carry_over(self, old: AlarmsState, now: float) -> AlarmsState:
        """The alarms' state under a reloaded config: alarms still configured keep theirs; out of
        service by config follows the new config (an alarm the config no longer holds out of service
        comes back as its condition implies: unacknowledged if active)."""
        alarms = {}
        for name, spec in self.specs.items():
            st = old.alarms.get(name)
            if st is None:
                alarms[name] = self._initial(spec, now)
                continue
            by_config = st.out_of_service is not None and st.out_of_service.user == "config"
            if spec.oos_by_config and st.out_of_service is None:
                st = replace(st, out_of_service=Suppression("config", spec.description or "out of service by config", now),
                             shelved=None, unacked=False)
            elif by_config and not spec.oos_by_config:
                st = replace(st, out_of_service=None, unacked=st.active)
            alarms[name] = st
        return replace(old, alarms=alarms)

    # --- signals ----------------------------------------------------------------------------------

    def _raw(self, spec: _Spec, st: AlarmState, inp: AlarmInputs) -> tuple[bool | None, float | None]:
        """The undelayed condition (None: cannot be told this tick; keep what was) and its value."""
        if spec.kind == "bad_reading":
            c = inp.checked.get(spec.point or "")
            return (c is None or not c.good), (None if c is None else c.value)
        if spec.kind in ("high", "low"):
            c = inp.checked.get(spec.point or "")
            value = None if c is None or not c.good else c.value
        else:
            sig = spec.signal or ""
            if sig.startswith(DRIVER_DOWN):
                value = 1.0 if sig[len(DRIVER_DOWN):] in inp.drivers_down else 0.0
            elif sig == "mode_safe_degrade":
                value = 1.0 if inp.mode_safe_degrade else 0.0
            elif sig == "boiler_on":
                value = 1.0 if inp.boiler_on else 0.0
            elif sig == "operator_hold":
                value = 1.0 if inp.held else 0.0
            elif sig == "bms_fallback_active":
                value = 1.0 if inp.bms_fallback else 0.0
            elif sig == "heartbeat_not_verified":
                value = 1.0 if inp.heartbeat_fault else 0.0
            elif sig == "consumer_supply_below_setpoint_k":
                c = inp.checked.get(self._consumer_point)
                value = None if c is None or not c.good else self._consumer_sp - c.value  # type: ignore[operator]
            else:
                value = None
            if not spec.numeric:
                return (None if value is None else value >= 0.5), value
        if value is None or spec.limit is None:
            return None, value
        # The deadband applies on the way back: active until the value is `deadband` past the limit.
        if spec.kind == "low":
            return (value <= spec.limit if not st.active else value < spec.limit + spec.deadband), value
        return (value >= spec.limit if not st.active else value > spec.limit - spec.deadband), value

    # --- the pure evaluation ----------------------------------------------------------------------

    def evaluate(self, state: AlarmsState, inputs: AlarmInputs, requests: Iterable[AlarmRequest],
                 now: float) -> tuple[AlarmsState, list[Event]]:
        """One tick: delays and deadbands, shelving expiry, then operator requests, in that order."""
        events: list[Event] = []
        alarms = dict(state.alarms)
        annunciated = {op: tuple(t for t in state.annunciated.get(op, ()) if t > now - FLOOD_WINDOW_S)
                       for op in OPERATORS}

        def annunciate(spec: _Spec) -> None:
            for op in (OPERATORS if spec.owner == "both" else (spec.owner,)):
                annunciated[op] = annunciated[op] + (now,)

        def ev(spec: _Spec, kind: str, before: str, st: AlarmState, msg: str, **f: Any) -> None:
            events.append(Event(now, kind, f"alarm {spec.name}: {msg}", {
                "alarm": spec.name, "from": before, "to": st.status, "priority": spec.priority,
                "owner": spec.owner, "value": st.value, **f}))

        for name, spec in self.specs.items():
            st = alarms.get(name) or self._initial(spec, now)
            before = st.status
            raw, value = self._raw(spec, st, inputs)
            st = replace(st, value=value)
            pending = st.pending_since
            if raw is None or raw == st.active:
                pending = None
            else:
                pending = now if pending is None else pending
                delay = spec.on_delay_s if raw else spec.off_delay_s
                if now - pending >= delay:
                    suppressed = st.shelved is not None or st.out_of_service is not None
                    if raw:
                        acts = tuple(t for t in st.activations if t > now - CHATTER_WINDOW_S) + (now,)
                        chatter = st.chatter_total + (1 if len(acts) >= CHATTER_COUNT else 0)
                        st = replace(st, active=True, active_since=now, activations=acts, chatter_total=chatter,
                                     unacked=st.unacked or not suppressed)
                        if not suppressed:
                            annunciate(spec)
                            ev(spec, "alarm_raised", before, st, f"{self._what(spec, value)} ({spec.priority})",
                               chattering=len(acts) >= CHATTER_COUNT)
                    else:
                        st = replace(st, active=False)
                        if not suppressed:
                            ev(spec, "alarm_returned", before, st,
                               "returned" + (", not yet acknowledged" if st.unacked else " to normal"))
                    pending = None
            st = replace(st, pending_since=pending)
            if st.shelved is not None and st.shelved.until is not None and now >= st.shelved.until:
                was = st.status
                shelf = st.shelved
                st = self._unsuppress(replace(st, shelved=None), spec, annunciate)
                ev(spec, "alarm_shelve_expired", was, st, f"shelving by {shelf.user} expired: {st.status}",
                   shelved_by=shelf.user, shelved_reason=shelf.reason)
            alarms[name] = st

        for req in requests:
            spec = self.specs.get(req.alarm)
            refusal = self._refusal(req, spec, alarms.get(req.alarm))
            if refusal is not None:
                events.append(Event(now, "request_refused", f"{req.describe()} refused: {refusal}", {
                    "request": req.describe(), "alarm": req.alarm, "refusal": refusal,
                    "reason": req.reason, "user": req.user, "request_id": req.request_id}))
                continue
            assert spec is not None
            st = alarms[req.alarm]
            before = st.status
            who = {"user": req.user, "reason": req.reason, "request_id": req.request_id}
            if req.op == "alarm_ack":
                st = replace(st, unacked=False)
                ev(spec, "alarm_acked", before, st, f"acknowledged by {req.user}", **who)
            elif req.op == "shelve":
                until = now + (req.duration_s or 0.0)
                st = replace(st, shelved=Suppression(req.user, req.reason, now, until), unacked=False)
                ev(spec, "alarm_shelved", before, st, f"shelved by {req.user} for {req.duration_s:g} s",
                   until=until, **who)
            elif req.op == "unshelve":
                st = self._unsuppress(replace(st, shelved=None), spec, annunciate)
                ev(spec, "alarm_unshelved", before, st, f"unshelved by {req.user}: {st.status}", **who)
            elif req.op == "out_of_service":
                st = replace(st, out_of_service=Suppression(req.user, req.reason, now), shelved=None,
                             unacked=False)
                ev(spec, "alarm_out_of_service", before, st, f"taken out of service by {req.user}", **who)
            elif req.op == "in_service":
                st = self._unsuppress(replace(st, out_of_service=None), spec, annunciate)
                ev(spec, "alarm_in_service", before, st, f"returned to service by {req.user}: {st.status}", **who)
            alarms[req.alarm] = st

        ne107, uncertain_at, reconnects, seen = self._ne107(state, inputs, now)
        return AlarmsState(alarms=alarms, annunciated=annunciated, uncertain_at=uncertain_at,
                           reconnects=reconnects, reconnects_seen=seen, ne107=ne107), events

    @staticmethod
    def _unsuppress(st: AlarmState, spec: _Spec, annunciate) -> AlarmState:
        """Back from shelving or out of service, to the state the condition implies."""
        if st.shelved is not None or st.out_of_service is not None:
            return st  # still suppressed the other way
        if st.active:
            annunciate(spec)
            return replace(st, unacked=True)
        return replace(st, unacked=False)

    def _refusal(self, req: AlarmRequest, spec: _Spec | None, st: AlarmState | None) -> str | None:
        if not req.reason.strip():
            return "a reason is required for every change"
        if spec is None or st is None:
            return f"unknown alarm {req.alarm!r}; expected one of {sorted(self.specs)}"
        status = st.status
        if req.op == "alarm_ack":
            if status not in (UNACK, RTN_UNACK):
                return f"alarm {req.alarm} is {status}; nothing to acknowledge"
        elif req.op == "shelve":
            if status == OUT_OF_SERVICE:
                return f"alarm {req.alarm} is out of service; it cannot be shelved"
            d = req.duration_s
            if d is None or not 0 < d <= spec.max_shelve_s:
                return f"duration must be > 0 and <= {spec.max_shelve_s:g} s (every shelving expires)"
        elif req.op == "unshelve":
            if st.shelved is None:
                return f"alarm {req.alarm} is not shelved"
        elif req.op == "out_of_service":
            if st.out_of_service is not None:
                return f"alarm {req.alarm} is already out of service"
        elif req.op == "in_service":
            if st.out_of_service is None:
                return f"alarm {req.alarm} is in service"
            if st.out_of_service.user == "config":
                return f"alarm {req.alarm} is out of service by the site config; change the config to return it"
        else:
            return f"unknown alarm operation {req.op!r}"
        return None

    def _what(self, spec: _Spec, value: float | None) -> str:
        v = "?" if value is None else f"{value:.2f}"
        if spec.kind == "high":
            return f"{spec.point} = {v} >= {spec.limit:g}"
        if spec.kind == "low":
            return f"{spec.point} = {v} <= {spec.limit:g}"
        if spec.kind == "bad_reading":
            return f"{spec.point} reading bad"
        if spec.numeric:
            return f"{spec.signal} = {v} >= {spec.limit:g}"
        return f"{spec.signal}"

    # --- NE 107 -----------------------------------------------------------------------------------

    def _ne107(self, state: AlarmsState, inp: AlarmInputs, now: float):
        horizon = now - MAINTENANCE_WINDOW_S
        reconnects: dict[str, tuple[tuple[float, int], ...]] = {}
        seen = dict(state.reconnects_seen)
        for drv, total in inp.driver_reconnects.items():
            hist = tuple(x for x in state.reconnects.get(drv, ()) if x[0] > horizon)
            last = seen.get(drv)
            if last is not None and total > last:
                hist += ((now, total - last),)
            seen[drv] = total
            reconnects[drv] = hist
        flaky = {d for d, h in reconnects.items() if sum(n for _, n in h) > MAINTENANCE_RECONNECTS}
        uncertain_at = {p: t for p, t in state.uncertain_at.items() if t > horizon}
        ne107: dict[str, str] = {}
        get = inp.checked.get
        check, down = inp.function_check, inp.drivers_down
        # The fast path: a good reading (or an actuator on a live driver) under no function check, not
        # recently uncertain and not on a flaky driver is GOOD, as ne107_class says; every other point
        # takes ne107_class (tests/test_core_fast_paths.py holds the two together). At 1,000 points
        # per 100 ms tick this loop is most of the alarms' cost.
        for name, is_reading, drv in self._point_info:
            if name not in check and name not in uncertain_at and drv not in flaky:
                if is_reading:
                    c = get(name)
                    if c is not None and c.good:
                        ne107[name] = GOOD
                        continue
                elif drv is None or drv not in down:
                    ne107[name] = GOOD
                    continue
            ne107[name] = ne107_class(name, is_reading, drv, get(name), inp, uncertain_at, flaky, now)
        return ne107, uncertain_at, reconnects, seen

    # --- views --------------------------------------------------------------------------------------

    def inputs_from(self, result: Any, drivers_down: Iterable[str] = (),
                    driver_reconnects: Mapping[str, int] | None = None) -> AlarmInputs:
        """The alarms' inputs from a StepResult and the daemon's driver facts."""
        st = result.state
        tested = {str(e.fields.get("trip")) for e in result.events if e.kind == "trip_test"}
        check = set(st.overrides)
        for t in tested:
            check.update(self.trip_points.get(t, ()))
        return AlarmInputs(checked=result.checked, mode_safe_degrade=st.mode.value == "safe_degrade",
                           held=st.held, boiler_on=bool(st.boiler_on), drivers_down=frozenset(drivers_down),
                           driver_reconnects=dict(driver_reconnects or {}), function_check=frozenset(check),
                           bms_fallback=st.bms_fallback, heartbeat_fault=bool(st.heartbeat_check.fault))

    def flood_counts(self, state: AlarmsState, now: float) -> dict[str, int]:
        """Operator position -> alarms annunciated to it within FLOOD_WINDOW_S."""
        return {op: sum(1 for t in state.annunciated.get(op, ()) if t > now - FLOOD_WINDOW_S) for op in OPERATORS}

    def view(self, state: AlarmsState, now: float) -> dict[str, Any]:
        """Plain JSON-able values for the API, `heatctl alarms`, status and metrics."""
        rows = []
        for name, spec in self.specs.items():
            st = state.alarms.get(name) or AlarmState()
            sup = st.shelved or st.out_of_service
            rows.append({
                "name": name, "state": st.status, "active": st.active, "priority": spec.priority,
                "owner": spec.owner, "area": spec.area, "kind": spec.kind, "point": spec.point,
                "signal": spec.signal, "limit": spec.limit, "value": st.value,
                "for_s": None if st.active_since is None or not st.active else now - st.active_since,
                "suppressed_by": None if sup is None else {
                    "user": sup.user, "reason": sup.reason, "since_s": now - sup.at,
                    "remaining_s": None if sup.until is None else sup.until - now},
                "chattering": st.chattering, "chatter_total": st.chatter_total,
                "description": spec.description,
            })
        counts = {s: {p: 0 for p in PRIORITIES} for s in STATES}
        for r in rows:
            counts[r["state"]][r["priority"]] += 1
        flood = self.flood_counts(state, now)
        return {"alarms": rows, "counts": counts, "flood": flood, "flood_limit": FLOOD_LIMIT,
                "flood_window_s": FLOOD_WINDOW_S, "in_flood": sorted(o for o, n in flood.items() if n > FLOOD_LIMIT),
                "ne107": dict(state.ne107), "trips": list(self.site.trips)}


def ne107_class(name: str, is_reading: bool, drv: str | None, c: Checked | None, inp: AlarmInputs,
                uncertain_at: dict[str, float], flaky: set[str], now: float) -> str:
    """One point's NE 107 class this tick, plainly written: the definition `Alarms._ne107`'s fast
    path is held to. Notes a reading that is uncertain now in `uncertain_at`."""
    if is_reading:
        if c is not None and not c.good and c.reason.startswith("uncertain"):
            uncertain_at[name] = now
        if c is None or (not c.good and not c.reason.startswith(_OUT_OF_SPEC_PREFIXES)
                         and not c.reason.startswith("uncertain")):
            return FAILURE
        if name in inp.function_check:
            return FUNCTION_CHECK
        if not c.good and c.reason.startswith(_OUT_OF_SPEC_PREFIXES):
            return OUT_OF_SPEC
        if name in uncertain_at or drv in flaky:
            return MAINTENANCE
        return GOOD
    # An actuator: its driver is its only source of trouble.
    if drv is not None and drv in inp.drivers_down:
        return FAILURE
    if name in inp.function_check:
        return FUNCTION_CHECK
    if drv in flaky:
        return MAINTENANCE
    return GOOD


def accepted_kind(req: AlarmRequest) -> str:
    """The event kind that says `req` was applied."""
    return ALARM_OPS.get(req.op, "")
