"""The control step: `Controller.step(state, snapshot, requests, now, applied_outputs) -> StepResult`.

Pure and synchronous: no I/O, no clock (time comes in as `now`, seconds), no global state; the same
inputs give the same outputs. One tick, in order:

1. validate every reading (validation.py); requests that do not need the mode (ack, overrides);
   the BMS's own word on its fallback, and whether the heartbeat reads back counting (heartbeat.py);
2. evaluate the hard trips on the validated readings and latch them (trips.py);
3. collect safe_degrade causes (a latched trip, a critical reading bad, a reading near its trip,
   the BMS on its fallback, a heartbeat fault); apply operator mode requests, then the automatic
   transitions;
4. the control sequences (sequences/: it dT, consumer/tank, dump, power cap, boiler) decide what
   each PID loop works on, the loops run (loops.py), and give the automatic outputs; the tick that
   ends the start-up hold starts the cap loop bumplessly where the IT loop is inside its limits;
5. arbitrate each actuator (sequences/arbitration.py): trip > safe_degrade > override > automatic;
6. fold the commanded outputs back into the loops (bumpless, no wind-up; next tick, the drivers'
   verified `applied_outputs` correct them where known); meter heat (metering.py).

Every event answering a request carries the request's `request_id` in its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterable, Mapping

from controller.core import heartbeat as heartbeat_mod
from controller.core.commands import Output
from controller.site.models import Policy, SiteConfig
from controller.site.checks import point_kind
from controller.core.events import Event
from controller.core.loops import LoopResult, LoopRunner, LoopState, loop_result
from controller.core.metering import EnergyCounters, FlowPlan, HeatFlows, integrate
from controller.core.modes import Mode, ModeContext, ModeMachine, refusal_for_request
from controller.core.plan import PlanAdjust
from controller.core.readings import Snapshot
from controller.core.requests import (AckTripRequest, ClearOverrideRequest, HoldRequest, ModeRequest,
                                 OverrideRequest, ReleaseRequest, Request, TripTestRequest)
from controller.core.sequences import LoopCall
from controller.core.sequences.arbitration import Arbitration
from controller.core.sequences.boiler import Boiler
from controller.core.sequences.consumer_tank import ConsumerTank
from controller.core.sequences.dump import Dump
from controller.core.sequences.it_delta_t import ItDeltaT
from controller.core.sequences.power_cap import PowerCap
from controller.site.roles import PointKind, Role
from controller.core.state import STARTUP_CAUSE, ControllerState, Override
from controller.core import trips as trips_mod
from controller.core.validation import Checked, PointLimits, validate


@dataclass(frozen=True)
class StepResult:
    state: ControllerState
    commands: dict[str, Output]
    events: list[Event]
    checked: dict[str, Checked] = field(default_factory=dict)
    flows: HeatFlows | None = None
    loops: dict[str, LoopResult] = field(default_factory=dict)


# Enum members as module constants for the hot path: in Python 3.11 `Mode.NORMAL` costs a
# descriptor call on the Enum class, ~10x a global lookup, and the step does it many times a tick.
_NORMAL, _BUFFER_CHARGING, _BYPASS, _SAFE_DEGRADE = Mode.NORMAL, Mode.BUFFER_CHARGING, Mode.BYPASS, Mode.SAFE_DEGRADE


class Controller:
    """Everything derived from one site config, built once; `step` is the pure function."""

    def __init__(self, site: SiteConfig):
        self.site = site
        self.machine = ModeMachine()
        self.reading_points = tuple(n for n in site.points if point_kind(site, n) is PointKind.READING)
        self.actuators = tuple(n for n in site.points if point_kind(site, n) is PointKind.ACTUATOR)
        self.limits = {n: PointLimits.of(p) for n, p in site.points.items()}
        self.critical = tuple(n for n in self.reading_points if site.points[n].critical)
        self.idx = site.role_index()
        self.role = {r: names[0] for r, names in self.idx.items() if len(names) == 1}
        self.trip_list = tuple(site.trips.items())
        L = site.loops
        self.runners = {
            "it_delta_t": LoopRunner("it_delta_t", L.it_delta_t, reverse=True),
            "consumer_supply": LoopRunner("consumer_supply", L.consumer_supply, reverse=True),
            "dump": LoopRunner("dump", L.dump, reverse=True),
            "power_cap": LoopRunner("power_cap", L.power_cap, reverse=False),
        }
        self.safe_outputs = self._safe_outputs()
        # Role point names as plain attributes, and the actuators' ranges as tuples: Role members
        # are Enums, whose attribute lookup and hashing are Python code in 3.11, and pydantic
        # attribute access adds up, per tick. Speed only: the same names and values as above.
        r = self.role
        self._p_p1, self._p_p2, self._p_p3 = r[Role.P1_SPEED], r[Role.P2_SPEED], r[Role.P3_SPEED]
        self._p_v1, self._p_d1, self._p_boiler = r[Role.V1_POSITION], r[Role.D1_FAN], r[Role.BOILER_ENABLE]
        self._p_cap, self._p_hb = r[Role.POWER_CAP], r[Role.HEARTBEAT]
        self._p_it_ret, self._p_it_sup = r[Role.IT_RETURN_TEMP], r[Role.IT_SUPPLY_TEMP]
        self._p_b_ret, self._p_top = r[Role.B_RETURN_TEMP], r[Role.TANK_TOP_TEMP]
        self._p_cons_sup = r[Role.CONSUMER_SUPPLY_TEMP]
        self._p_avail, self._p_demand = r[Role.CONSUMER_AVAILABLE], r[Role.CONSUMER_DEMAND]
        self._leak_points = self.idx[Role.LEAK]
        # The BMS's own word on its fallback: an optional point (None: the site has none).
        self._p_fallback = r.get(Role.BMS_FALLBACK_ACTIVE)
        # A heartbeat that does not read back counting for this long is a fault: the grace of a
        # critical reading (a write lost in one tick is no fault), never under three ticks, and
        # inside a BMS's usual heartbeat timeout (10 s on the simulated plant) on the reference.
        self._hb_grace_s = max(site.modes.critical_grace_s, 3.0 * site.tick_period_s)
        self._server_points = self.idx[Role.SERVER_POWER]
        # The control sequences (controller/core/sequences), composed in `_automatic` and `step`.
        self.it_delta_t, self.consumer_tank, self.dump = ItDeltaT(site), ConsumerTank(site), Dump(site)
        self.power_cap, self.boiler = PowerCap(site), Boiler(site)
        # The policy-dependent sequences per policy, for a plan's slot (controller/core/plan.py).
        self._by_policy = {p: (ItDeltaT(s), Dump(s), PowerCap(s), Boiler(s)) for p, s in (
            (p, site.model_copy(update={"site": site.site.model_copy(update={"policy": p})})) for p in Policy)}
        self.arbitrate = Arbitration(self.actuators, {n: tuple(site.points[n].range) for n in self.actuators},
                                     self._p_hb)
        self._flow_plan = FlowPlan(site, self.idx)
        # A gap longer than this is unmetered. Never shorter than three ticks: at a coarse tick
        # (a 60 s year run) every interval would otherwise be counted as a gap.
        self._max_gap_s = max(site.metering.max_gap_s, 3.0 * site.tick_period_s)
        m = site.modes
        self._mode_thresholds = dict(
            surplus_enter_w=m.surplus_enter_w, surplus_exit_w=m.surplus_exit_w,
            tank_full_soc=m.tank_full_soc, tank_resume_soc=m.tank_resume_soc,
            min_dwell_s=m.min_dwell_s, exit_dwell_s=m.safe_degrade_exit_dwell_s,
        )

    # --- set-up --------------------------------------------------------------------------------

    def _safe_outputs(self) -> dict[str, float]:
        """The safe state: full cooling and flow, heat to the dump, boiler on, IT capped."""
        r, pw = self.role, self.site.power
        return {
            r[Role.P1_SPEED]: 100.0, r[Role.P2_SPEED]: 100.0, r[Role.P3_SPEED]: 0.0,
            r[Role.V1_POSITION]: 0.0, r[Role.D1_FAN]: 100.0, r[Role.BOILER_ENABLE]: 1.0,
            r[Role.POWER_CAP]: pw.safe_degrade_w,
        }

    def initial_state(self, now: float, energy: EnergyCounters | None = None) -> ControllerState:
        """The state at start-up: safe_degrade, safe outputs, loops in manual at the safe values."""
        r = self.role
        loops = {
            "it_delta_t": self.runners["it_delta_t"].initial_state(self.safe_outputs[r[Role.P1_SPEED]]),
            "consumer_supply": self.runners["consumer_supply"].initial_state(0.0),
            "dump": self.runners["dump"].initial_state(self.safe_outputs[r[Role.D1_FAN]]),
            "power_cap": self.runners["power_cap"].initial_state(self.site.power.safe_degrade_w),
        }
        return ControllerState(mode_since=now, loops=loops, outputs=dict(self.safe_outputs),
                               energy=energy or EnergyCounters())

    # --- the step ------------------------------------------------------------------------------

    def step(self, state: ControllerState, snapshot: Snapshot, requests: Iterable[Request],
             now: float, applied_outputs: Mapping[str, float] | None = None,
             plan: PlanAdjust | None = None) -> StepResult:
        """One tick. `applied_outputs`: per output point, the value the drivers verified as applied
        by the previous tick's write (a point missing: unknown, the commanded value is assumed).
        The loops track the applied value, so a failed or clamped write does not wind them up.
        `plan`: the current slot of the 24-hour plan (controller.core.plan.adjustments), or None
        for the rules; its policy sets the loops as the site's policy does. Trips, safe_degrade and
        overrides still win in arbitration, and the cap loop runs as ever."""
        site = self.site
        events: list[Event] = []
        ev = lambda kind, msg, **f: events.append(Event(now, kind, msg, f))  # noqa: E731
        dt = 0.0 if state.last_now is None else max(now - state.last_now, 0.0)
        requests = list(requests)

        # 1. validation
        old_history = state.history
        slow: list[str] = []
        checked, history = validate(self.limits, snapshot, old_history, now, self.reading_points, slow)
        was_started = state.started
        for name in slow:  # the rest were good after good: no event (validate's fast path)
            h = old_history.get(name)
            was_bad = h is not None and h.bad_since is not None
            c = checked[name]
            if c.good:
                if was_bad:
                    ev("reading_recovered", f"{name}: good again", point=name)
            elif not was_bad and was_started:
                ev("reading_bad", f"{name}: {c.reason}", point=name, reason=c.reason,
                   critical=site.points[name].critical)
        complete = all(checked[n].good for n in self.critical)
        started = state.started or complete

        # Requests that do not depend on the mode.
        overrides = dict(state.overrides)
        trip_states = dict(state.trips)
        forced: dict[str, str] = {}
        for req in requests:
            refusal = self._basic_refusal(req)
            if refusal is None and isinstance(req, OverrideRequest):
                refusal = self._override_refusal(req)
            if refusal is None and isinstance(req, AckTripRequest) and not (
                    req.trip in trip_states and trip_states[req.trip].latched):
                refusal = f"trip {req.trip} is not latched; nothing to acknowledge"
            if refusal is not None:
                ev("request_refused", f"{_describe(req)} refused: {refusal}", request=_describe(req),
                   reason=req.reason, user=req.user, request_id=req.request_id, refusal=refusal)
                continue
            if isinstance(req, OverrideRequest):
                overrides[req.point] = Override(req.value, now + req.duration_s, req.reason, req.user, now)
                ev("override_set", f"override {req.point} = {req.value:g} for {req.duration_s:g} s",
                   point=req.point, value=req.value, until=now + req.duration_s, reason=req.reason, user=req.user,
                   request_id=req.request_id)
            elif isinstance(req, ClearOverrideRequest):
                overrides.pop(req.point, None)
                ev("override_cleared", f"override {req.point} cleared", point=req.point,
                   reason=req.reason, user=req.user, request_id=req.request_id)
            elif isinstance(req, AckTripRequest):
                st = trip_states[req.trip]
                trip_states[req.trip] = replace(st, acked=True)
                ev("trip_acked", f"trip {req.trip} acknowledged", trip=req.trip, reason=req.reason,
                   user=req.user, request_id=req.request_id, condition_present=st.active)
            elif isinstance(req, TripTestRequest):
                forced[req.trip] = f"trip test by {req.user}: {req.reason}"
                ev("trip_test", f"trip test {req.trip}", trip=req.trip, reason=req.reason, user=req.user,
                   request_id=req.request_id)
        for point, ov in list(overrides.items()):
            if now >= ov.until:
                del overrides[point]
                ev("override_expired", f"override {point} = {ov.value:g} expired", point=point,
                   reason=ov.reason, user=ov.user)

        # The plant's own word on fallback (while its reading is bad, the last word stands: a BMS
        # that said it runs on its fallback has not said otherwise), and whether the heartbeat
        # reads back counting.
        fallback = False
        if self._p_fallback is not None:
            c = checked[self._p_fallback]
            fallback = c.value >= 0.5 if c.good else state.bms_fallback  # type: ignore[operator]
        if fallback != state.bms_fallback:
            if fallback:
                ev("bms_fallback", f"{self._p_fallback}: the BMS runs on its own fallback (it does not see "
                   "the heartbeat move)", point=self._p_fallback)
            else:
                ev("bms_fallback_ended", f"{self._p_fallback}: the BMS left its fallback", point=self._p_fallback)
        hb_old = state.heartbeat_check
        hb = heartbeat_mod.check(hb_old, self._p_hb, state.outputs.get(self._p_hb), applied_outputs, now,
                                 self._hb_grace_s)
        if hb.fault and not hb_old.fault:
            ev("heartbeat_fault", hb.fault, point=self._p_hb, cause=hb.fault)
        elif hb_old.fault and not hb.fault:
            ev("heartbeat_ok", f"heartbeat {self._p_hb}: reads back counting again", point=self._p_hb)

        # 2. trips, on validated readings only
        it_w = self._it_power(checked)
        for name, trip in self.trip_list:
            cause = forced.get(name) or trips_mod.condition(name, trip, self._leak_points, checked, self.critical, it_w)
            if not started and trip.kind == "sensor_lost" and name not in forced:
                cause = None  # at start-up, missing readings are the start-up hold, not a trip
            prev = trip_states.get(name, trips_mod.NOT_TRIPPED)
            if cause is None and not prev.active and not (prev.latched and prev.acked):
                new = prev  # what update() would return: an equal state (speed: no new object)
            else:
                new = trips_mod.update(prev, cause, now)
            if new.latched and not prev.latched:
                ev("trip", f"TRIP {name}: {cause}", trip=name, cause=cause,
                   actions=dict(trip.actions))
            elif prev.latched and not new.latched:
                ev("trip_reset", f"trip {name} reset (condition clear, acknowledged)", trip=name)
            elif prev.active and not new.active and new.latched:
                ev("trip_clear", f"trip {name} condition cleared; acknowledge to reset", trip=name)
            trip_states[name] = new
        latched = tuple(n for n, s in trip_states.items() if s.latched)

        # 3. modes
        causes = self._degrade_causes(checked, latched, started, fallback, hb.fault)
        if causes:
            clear_since = None
        else:
            clear_since = state.causes_clear_since if state.causes_clear_since is not None else now
        # Heat flows over the interval that ends now, with the valve position that was applied in it.
        flows = self._flow_plan.flows(checked, state.outputs.get(self._p_v1), state.tank_soc, dt)
        mode, mode_since, mode_cause, held = state.mode, state.mode_since, state.mode_cause, state.held
        ctx_args = dict(
            surplus_w=self._surplus(checked, flows),
            tank_soc=flows.tank_soc,
            degrade_causes=causes,
            causes_clear_for_s=None if clear_since is None else now - clear_since,
            latched_trips=latched,
            in_mode_for_s=now - state.mode_since,
            **self._mode_thresholds,
            # The first complete, valid snapshot; or, while the start-up hold went on because the
            # BMS still ran on its fallback (the daemon was not there), the first complete, valid
            # one without it.
            starting=started and (not state.started or (complete and state.startup_fallback)),
        )
        ctx = _frozen(ModeContext, ctx_args)
        for req in requests:
            if isinstance(req, ModeRequest) and self._basic_refusal(req) is None:
                refusal = refusal_for_request(req.mode, ctx)
                if refusal is not None:
                    ev("request_refused", f"mode {req.mode.value} refused: {refusal}",
                       request=f"mode {req.mode.value}", reason=req.reason, user=req.user,
                       request_id=req.request_id, refusal=refusal)
                    continue
                if req.mode is not mode:
                    ev("mode_changed", f"{mode.value} -> {req.mode.value}: requested by {req.user}: {req.reason}",
                       source=mode.value, dest=req.mode.value, cause=f"operator: {req.reason}", user=req.user,
                       request_id=req.request_id)
                    mode, mode_since, mode_cause = req.mode, now, f"operator {req.user}: {req.reason}"
                held = True
                ev("request_accepted", f"mode {req.mode.value} (held)", request=f"mode {req.mode.value}",
                   reason=req.reason, user=req.user, request_id=req.request_id)
            elif isinstance(req, HoldRequest) and self._basic_refusal(req) is None:
                held = True
                ev("request_accepted", f"hold in {mode.value}", request="hold", reason=req.reason, user=req.user,
                   request_id=req.request_id)
            elif isinstance(req, ReleaseRequest) and self._basic_refusal(req) is None:
                held = False
                ev("request_accepted", "released to automatic", request="release", reason=req.reason,
                   user=req.user, request_id=req.request_id)
        if mode_since != state.mode_since:
            ctx = _frozen(ModeContext, {**ctx_args, "in_mode_for_s": now - mode_since})
        new_mode, cause = self.machine.next_mode(mode, ctx, held)
        if new_mode is not mode:
            if new_mode is _SAFE_DEGRADE:
                cause = "; ".join(causes)
                if held:
                    held = False  # a fault ends a commissioning hold: the operator's plan no longer applies
            elif ctx.starting:
                cause = "first complete, valid snapshot"
            ev("mode_changed", f"{mode.value} -> {new_mode.value}: {cause}", source=mode.value,
               dest=new_mode.value, cause=cause)
            mode, mode_since, mode_cause = new_mode, now, cause or ""

        # 4. loops and automatic outputs
        applied_internal = self._applied_internal(state.outputs, applied_outputs)
        if ctx.starting and mode is not _SAFE_DEGRADE:
            # Leaving the start-up hold: the cap loop starts bumplessly where the IT loop allows.
            start_cap, why = self._start_cap(snapshot, checked, plan, state.cap_before_start)
            if start_cap is not None:
                applied_internal["power_cap"] = start_cap
            ev("power_cap_start", why, bumpless=start_cap is not None, value=start_cap)
        auto, boiler_on, loop_results, loop_pids = self._automatic(
            state, checked, mode, now, dt, applied_internal, plan)
        safe = self._safe_degrade_values(auto, started, checked[self._p_b_ret].good) \
            if mode is _SAFE_DEGRADE else None

        # 5. arbitration: trip > safe_degrade > override > automatic
        commands = self.arbitrate(trip_out=trips_mod.trip_outputs(site, trip_states), safe=safe, started=started,
                                  mode_cause=mode_cause, overrides=overrides, auto=auto, mode_value=mode.value,
                                  heartbeat=state.heartbeat)

        # 6. fold back into the loops, meter
        applied = {p: o.value for p, o in commands.items()}
        loops = self._settle(loop_pids, applied, loop_results)
        energy = integrate(state.energy, flows, dt, self._max_gap_s) if state.started else state.energy
        new_state = _frozen(ControllerState, dict(
            tick=state.tick + 1, last_now=now, started=started, mode=mode, mode_since=mode_since,
            mode_cause=mode_cause, held=held, trips=trip_states, overrides=overrides,
            history=history, loops=loops, outputs=applied, energy=energy,
            heartbeat=int(applied[self._p_hb]), degrade_causes=causes,
            causes_clear_since=clear_since, tank_soc=flows.tank_soc if flows.tank_soc is not None else state.tank_soc,
            boiler_on=boiler_on,
            boiler_since=now if boiler_on != state.boiler_on else state.boiler_since,
            heartbeat_check=hb, bms_fallback=fallback,
            # Kept only through the start-up hold: it says nothing once the cap loop has run.
            cap_before_start=state.cap_before_start if mode_cause == STARTUP_CAUSE else None,
            startup_fallback=mode_cause == STARTUP_CAUSE and started and (state.startup_fallback or fallback),
            cap_target_c=loop_results["power_cap"].setpoint,
        ))
        return _frozen(StepResult, dict(state=new_state, commands=commands, events=events, checked=checked,
                                        flows=flows, loops=loop_results))

    # --- parts of the step ---------------------------------------------------------------------

    def _basic_refusal(self, req: Request) -> str | None:
        if not req.reason.strip():
            return "a reason is required for every change to the plant"
        if isinstance(req, (AckTripRequest, TripTestRequest)) and req.trip not in self.site.trips:
            return f"unknown trip {req.trip!r}; expected one of {sorted(self.site.trips)}"
        if isinstance(req, (OverrideRequest, ClearOverrideRequest)):
            if req.point not in self.actuators:
                return f"unknown actuator {req.point!r}; expected one of {sorted(self.actuators)}"
            if req.point == self.role[Role.HEARTBEAT]:
                return "the heartbeat cannot be overridden (the BMS fallback depends on it)"
        return None

    def _override_refusal(self, req: OverrideRequest) -> str | None:
        lo, hi = self.site.points[req.point].range
        if not lo <= req.value <= hi:
            return f"value {req.value:g} outside {req.point}'s range [{lo:g}, {hi:g}]"
        if not 0 < req.duration_s <= self.site.outputs.max_override_s:
            return f"duration must be > 0 and <= {self.site.outputs.max_override_s:g} s (every override expires)"
        return None

    def _it_power(self, checked: Mapping[str, Checked]) -> float | None:
        vals = [checked[n] for n in self._server_points]
        if not vals or not all(c.good for c in vals):
            good = [c.value for c in vals if c.good]
            # For low_flow, a partial sum is a lower bound on IT power: still usable.
            return sum(good) if good else None  # type: ignore[arg-type]
        return sum(c.value for c in vals)  # type: ignore[misc]

    def _degrade_causes(self, checked: Mapping[str, Checked], latched: tuple[str, ...],
                        started: bool, fallback: bool = False, heartbeat_fault: str = "") -> tuple[str, ...]:
        if not started:
            return ()
        site = self.site
        causes = [f"trip {t} latched" for t in latched]
        if fallback:
            causes.append(f"{self._p_fallback}: the BMS runs on its own fallback, not on heatctl's outputs")
        if heartbeat_fault:
            causes.append(heartbeat_fault)
        for n in self.critical:
            c = checked[n]
            if not c.good and c.bad_for_s >= site.modes.critical_grace_s:
                causes.append(f"critical reading {n} bad for {c.bad_for_s:.0f} s ({c.reason})")
        near = site.modes.limit_near_k
        for name, trip in self.trip_list:
            c = checked.get(trip.point or "")
            if c is None or not c.good or trip.limit is None:
                continue
            if trip.kind == "high" and c.value >= trip.limit - near:  # type: ignore[operator]
                causes.append(f"{trip.point} {c.value:.1f} within {near:g} K of trip {name} ({trip.limit:g})")
        return tuple(causes)

    def _surplus(self, checked: Mapping[str, Checked], flows: HeatFlows) -> float | None:
        avail = checked[self._p_avail]
        demand = checked[self._p_demand]
        heat = flows.captured_w
        if heat is None:
            return None
        if avail.good and avail.value < 0.5:  # type: ignore[operator]
            return heat  # consumer offline: every watt is surplus
        if not (avail.good and demand.good):
            return None
        return heat - demand.value  # type: ignore[operator]

    def _start_cap(self, snapshot: Snapshot, checked: Mapping[str, Checked],
                   plan: PlanAdjust | None, before_start: float | None) -> tuple[float | None, str]:
        """Where the cap loop starts when the start-up hold ends (None: from the safe_degrade cap,
        as it was held), and why, for the event.

        Only with the IT supply good and below the cap loop's target (the loop would hand power
        back anyway): from the largest of the cap the BMCs held before the start-up safe state
        (`before_start`, read by the daemon), their read-back cap now and the measured IT power as
        the BMCs share a cap, never below the safe_degrade cap. The driver shares a cap in proportion
        to the BMCs' max_power_w, so a cap at the sum of the measured power would throttle the
        busiest server of an uneven load; the servers times the busiest one's power does not
        (for BMCs of one size, as on the reference plant)."""
        pw = self.site.power
        seq = self._by_policy[plan.policy][2] if plan is not None else self.power_cap
        t_sup = checked[self._p_it_sup]
        if not t_sup.good or t_sup.value >= seq.setpoint:  # type: ignore[operator]
            what = "unknown" if not t_sup.good else f"{t_sup.value:.1f} degC"
            return None, (f"power cap loop starts at the safe_degrade cap {pw.safe_degrade_w:g} W: IT supply "
                          f"{what}, not below the cap target {seq.setpoint:g} degC")
        found = []
        if before_start is not None and 0.0 <= before_start <= self.limits[self._p_cap].hi:
            found.append((before_start, f"the BMCs' {before_start:.0f} W before the start-up safe state"))
        rb = snapshot.get(self._p_cap)
        if rb is not None and rb.good and 0.0 <= rb.value <= self.limits[self._p_cap].hi:  # type: ignore[operator]
            found.append((rb.value, f"BMC read-back {rb.value:.0f} W"))
        srv = [checked[n] for n in self._server_points]
        if srv and all(c.good for c in srv):
            busiest = max(c.value for c in srv)  # type: ignore[type-var]
            found.append((len(srv) * busiest, f"{len(srv)} servers x the busiest one's {busiest:.0f} W"))
        if not found:
            return None, (f"power cap loop starts at the safe_degrade cap {pw.safe_degrade_w:g} W: neither the "
                          "BMCs' read-back cap nor every server's power is known")
        value, source = max(found)
        start = min(max(value, pw.safe_degrade_w, pw.floor_w), pw.max_w)
        return start, (f"bumpless start: the power cap loop starts at {start:.0f} W ({source}), "
                       f"not at the safe_degrade cap {pw.safe_degrade_w:g} W")

    def _consumer_online(self, checked: Mapping[str, Checked]) -> bool:
        c = checked[self._p_avail]
        return c.good and c.value >= 0.5  # type: ignore[operator]

    def _applied_internal(self, commanded: Mapping[str, float],
                          applied: Mapping[str, float] | None) -> dict[str, float]:
        """Per loop, the output the plant verifiably got from the last write, in the loop's internal
        range; a loop none of whose points the drivers verified is left out (commanded stands)."""
        if not applied:
            return {}
        out = {}
        for loop, point in (("it_delta_t", self._p_p1), ("dump", self._p_d1), ("power_cap", self._p_cap)):
            if point in applied:
                out[loop] = applied[point]
        v1, p3 = self._p_v1, self._p_p3
        if v1 in applied or p3 in applied:
            out["consumer_supply"] = ConsumerTank.internal(applied.get(v1, commanded.get(v1, 0.0)),
                                                           applied.get(p3, commanded.get(p3, 0.0)))
        return out

    def _automatic(self, state: ControllerState, checked: Mapping[str, Checked], mode: Mode,
                   now: float, dt: float, applied: Mapping[str, float] | None = None,
                   plan: PlanAdjust | None = None) -> tuple[dict[str, float], bool, dict[str, LoopResult], dict]:
        """The automatic outputs (actuator point -> value), the boiler decision, the loop results
        and the loops' PID copies to settle after arbitration: the sequences, composed."""
        def val(point: str) -> float | None:
            c = checked[point]
            return c.value if c.good else None
        results: dict[str, LoopResult] = {}
        pids: dict[str, tuple] = {}

        def run(name: str, call: LoopCall) -> float:
            meas, sp, lo, hi, forced = call
            a = applied.get(name) if applied else None
            if forced is not None:
                pid, out, held = self.runners[name].run(state.loops[name], None, sp, lo, hi, now, dt, a)
                out = min(max(forced, lo), hi)
            else:
                pid, out, held = self.runners[name].run(state.loops[name], meas, sp, lo, hi, now, dt, a)
            p, i, d = pid.components if not held else (0.0, 0.0, 0.0)
            results[name] = loop_result(out, p, i, d, sp, meas, held)
            pids[name] = (pid, held)
            return out

        t_sup, t_c = val(self._p_it_sup), val(self._p_cons_sup)
        online = self._consumer_online(checked)
        it_delta_t, dump, power_cap, boiler_seq = self._by_policy[plan.policy] if plan is not None else (
            self.it_delta_t, self.dump, self.power_cap, self.boiler)
        p1 = run("it_delta_t", it_delta_t(val(self._p_it_ret), t_sup))
        u = run("consumer_supply", self.consumer_tank(mode, t_c, val(self._p_top), online, state.tank_soc))
        v1, p3 = self.consumer_tank.split(u, online)
        d1 = run("dump", dump(mode, val(self._p_b_ret)))
        cap_target = power_cap.target(mode, state.cap_target_c, dt)
        cap = power_cap.output(run("power_cap", power_cap(mode, t_sup, cap_target)), t_sup)
        boiler = boiler_seq(checked[self._p_avail].good, online, t_c, state.boiler_on, state.boiler_since, now)
        out = {
            self._p_p1: p1, self._p_p2: self.site.outputs.p2_auto_pct, self._p_v1: v1, self._p_p3: p3,
            self._p_d1: d1, self._p_boiler: 1.0 if boiler else 0.0, self._p_cap: cap,
        }
        return out, boiler, results, pids

    def _safe_degrade_values(self, auto: Mapping[str, float], started: bool,
                             return_seen: bool) -> dict[str, float]:
        """What safe_degrade drives: the fixed safe state, except two loops that keep working once
        running. The cap loop (limited to `power.safe_degrade_w` in this mode) may cap lower still;
        the dump loop, at its lower safe_degrade setpoint, replaces a flat-out fan while the
        building return is seen: full fan in a frost cools the loops toward freezing."""
        safe = dict(self.safe_outputs)
        if started:
            safe[self._p_cap] = auto[self._p_cap]
            if return_seen:
                safe[self._p_d1] = auto[self._p_d1]
        return safe

    def _settle(self, pids: dict, applied: Mapping[str, float],
                results: Mapping[str, LoopResult]) -> dict[str, LoopState]:
        applied_internal = {
            "it_delta_t": applied[self._p_p1],
            "consumer_supply": ConsumerTank.internal(applied[self._p_v1], applied[self._p_p3]),
            "dump": applied[self._p_d1],
            "power_cap": applied[self._p_cap],
        }
        out = {}
        for name, (pid, held) in pids.items():
            # The cap loop at its maximum with the IT supply at or below its target keeps its
            # integral there: the servers are not capped on the way to the target, nor when a
            # plan's slot lowers the target to one the supply is still below (LoopRunner.settle).
            out[name] = LoopRunner.settle(pid, applied_internal[name], held, name == "power_cap")
        return out


_new = object.__new__
_N_FIELDS = {cls: len(fields(cls)) for cls in (ModeContext, ControllerState, StepResult)}


def _frozen(cls, values: dict):
    """cls(**values) for a frozen dataclass without slots, given every field (else the real __init__)."""
    if len(values) != _N_FIELDS[cls]:
        return cls(**values)
    o = _new(cls)
    o.__dict__.update(values)
    return o


def _describe(req: Request) -> str:
    if isinstance(req, OverrideRequest):
        return f"override {req.point} = {req.value:g} for {req.duration_s:g} s"
    if isinstance(req, ClearOverrideRequest):
        return f"override clear {req.point}"
    if isinstance(req, AckTripRequest):
        return f"ack {req.trip}"
    if isinstance(req, TripTestRequest):
        return f"trip-test {req.trip}"
    if isinstance(req, ModeRequest):
        return f"mode {req.mode.value}"
    return type(req).__name__.replace("Request", "").lower()
