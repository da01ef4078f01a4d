"""Parts the baselines share: reading a role, a PI loop with anti-windup, an on/off switch with minimum
on and off times, and the commands and mode event a baseline step ends with.

Pure: every function takes its state and returns the new one; time comes in as `now` (s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from controller.core.commands import Output, OutputSource
from controller.core.events import Event
from controller.core.modes import Mode
from controller.core.readings import Snapshot
from controller.core.step import StepResult
from controller.site.models import SiteConfig
from controller.site.roles import Role


def single_points(site: SiteConfig) -> dict[Role, str]:
    """Role -> point name for every role that has exactly one point."""
    return {role: names[0] for role, names in site.role_index().items() if len(names) == 1}


def value(snapshot: Snapshot, points: dict[Role, str], role: Role) -> float | None:
    """The reading of `role` if it is good, else None (the caller decides what a bad reading means)."""
    name = points.get(role)
    rd = snapshot.get(name) if name is not None else None
    if rd is None or not rd.good:
        return None
    return rd.value


def it_supply_alarm_c(site: SiteConfig) -> float:
    """The IT supply's high alarm (its high trip's alarm, else its limit, else 55 degC)."""
    point = site.point_for(Role.IT_SUPPLY_TEMP)
    for t in site.trips.values():
        if t.kind == "high" and t.point == point:
            return t.alarm if t.alarm is not None else t.limit
    return 55.0


def pi_step(integral: float, error: float, dt: float, kp: float, ti_s: float,
            lo: float = 0.0, hi: float = 100.0) -> tuple[float, float]:
    """One PI step, output = kp (e + integral / ti), clamped to [lo, hi]. Returns (output, integral).

    Anti-windup by conditional integration, and the integral term itself clamped to the output
    range (as simple-pid's output_limits do): far from setpoint the output is the P term alone.
    """
    trial = integral + error * dt
    out = kp * (error + trial / ti_s)
    if lo < out < hi or (out >= hi and error < 0) or (out <= lo and error > 0):
        integral = trial
    integral = min(max(integral, lo * ti_s / kp), hi * ti_s / kp)
    if not math.isfinite(integral):
        integral = 0.0
    out = min(max(kp * (error + integral / ti_s), lo), hi)
    return out, integral


@dataclass(frozen=True)
class Switch:
    """An on/off output with minimum on and off times (s): `since` is when it last changed."""

    on: bool = False
    since: float = -math.inf
    switches: int = 0

    def want(self, on: bool, now: float, min_on_s: float, min_off_s: float) -> "Switch":
        """Move toward `on` unless the current state has not yet run its minimum time."""
        if on == self.on:
            return self
        held = now - self.since
        if (self.on and held < min_on_s) or (not self.on and held < min_off_s):
            return self
        return Switch(on, now, self.switches + 1)


def commands(site: SiteConfig, points: dict[Role, str], p1: float, p3: float, v1: float, d1: float,
             boiler: bool, heartbeat: int, reason: str) -> dict[str, Output]:
    """The full command set of a baseline tick: fixed P2, no power capping, a live heartbeat."""
    values = {
        points[Role.P1_SPEED]: p1, points[Role.P2_SPEED]: site.outputs.p2_auto_pct,
        points[Role.P3_SPEED]: p3, points[Role.V1_POSITION]: v1, points[Role.D1_FAN]: d1,
        points[Role.BOILER_ENABLE]: 1.0 if boiler else 0.0, points[Role.POWER_CAP]: site.power.max_w,
        points[Role.HEARTBEAT]: float(heartbeat),
    }
    return {p: Output(v, OutputSource.AUTO, reason) for p, v in values.items()}


def mode_events(old: Mode, new: Mode, now: float, cause: str) -> list[Event]:
    """A mode_changed event when the reported mode moves (the KPIs count the baselines' dump time)."""
    if new is old:
        return []
    return [Event(now, "mode_changed", f"{old.value} -> {new.value}: {cause}",
                  {"source": old.value, "dest": new.value, "cause": cause})]


class DryCoolerBaseline:
    """What the good-practice and G36 baselines share: the site's single points, the consumer
    setpoint, the dry cooler's setpoint `fan_below_alarm_k` under the IT supply alarm, and the tick's
    end (heartbeat, full command set, bypass while the dry cooler runs). Subclasses set `name` and
    write `step`; their State dataclasses carry `mode` and `heartbeat`."""

    name = "baseline"
    p1_pct = 80.0

    def __init__(self, site: SiteConfig, fan_below_alarm_k: float):
        self.site = site
        self.r = single_points(site)
        self.sp = site.loops.consumer_supply.setpoint
        self.fan_sp = it_supply_alarm_c(site) - fan_below_alarm_k
        self.hb_max = int(site.points[self.r[Role.HEARTBEAT]].range[1])

    def finish(self, state, now: float, p3: float, v1: float, fan_pct: float, boiler: bool, cooler_on: bool,
               fields: dict) -> StepResult:
        """The tick's commands (P3, V1 and fan in %, boiler on/off) and mode event (bypass while the
        dry cooler runs), and `state` replaced with `fields` and the new mode, time and heartbeat."""
        hb = (state.heartbeat + 1) % (self.hb_max + 1)
        cmds = commands(self.site, self.r, self.p1_pct, p3, v1, fan_pct, boiler, hb, self.name)
        mode = Mode.BYPASS if cooler_on else Mode.NORMAL
        events = mode_events(state.mode, mode, now, "dry cooler on" if cooler_on else "dry cooler off")
        return StepResult(replace(state, mode=mode, last_now=now, heartbeat=hb, **fields), cmds, events)
