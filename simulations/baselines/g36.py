"""`g36`: heat sources and heat rejection staged the way ASHRAE Guideline 36 stages a hot-water plant.

Source of the sequence: ASHRAE Guideline 36-2021, "High-Performance Sequences of Operation for HVAC
Systems", section 5.21 (hot-water plants), boiler staging in 5.21.3.9: a stage-up or stage-down
condition must hold for a delay before the stage changes, and each stage is held for a minimum
runtime; the lead source is the cheapest. (Section numbers as cited by LBNL's Modelica Buildings
Library, which implements the guideline: Buildings.Controls.OBC.ASHRAE.G36.Plants.Boilers.Staging,
whose defaults are a 600 s efficiency-condition delay and a 900 s failsafe delay for staging up and
300-600 s for staging down.) Recovered heat and the tank are treated as the cheapest stages, the
boiler as the last:

heating stages (cumulative), each held at least STAGE_MIN_RUNTIME_S:
  0  recovered heat only: V1 on a PI of the consumer supply (surplus diverted into the tank);
  1  + tank discharge (P3 at full speed), while the tank top is at least the consumer supply + 2 K
     (below that P3 moves no useful heat: the stage counts as unavailable and is skipped);
  2  + boiler enabled (its own thermostat holds the setpoint).
  Stage up when the consumer supply has been below setpoint - STAGE_UP_K for STAGE_UP_DELAY_S;
  stage down when it has been above setpoint + STAGE_DOWN_K for STAGE_DOWN_DELAY_S.
heat rejection (the dry cooler), staged after the tank: enabled when the IT supply has been above
  its setpoint (FAN_BELOW_ALARM_K under the site's alarm) for STAGE_UP_DELAY_S, then modulated by a
  PI on the IT supply with a minimum speed; disabled when the PI has sat at its minimum for
  STAGE_DOWN_DELAY_S with the IT supply 2 K below its setpoint.

P1 fixed at the design speed, P2 at `outputs.p2_auto_pct`, no power capping. The stage-up delay
here (300 s) is shorter than the Modelica defaults above: the tank and the boiler come in sooner (less
comfort deficit, possibly more boiler energy); the stage-down delay (600 s) is within their range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from controller.core.modes import Mode
from controller.core.readings import Snapshot
from controller.core.requests import Request
from controller.core.step import StepResult
from controller.site.models import SiteConfig
from controller.site.roles import Role
from simulations.baselines import common as C
from simulations.baselines.good_practice import (BASELINE_P1_PCT, FAN_BELOW_ALARM_K, FAN_KP_PCT_PER_K, FAN_MIN_PCT, FAN_START_PCT,
                                                 FAN_TI_S, INTEGRAL_TIME_S, PROPORTIONAL_BAND_K)

DESCRIPTION = ("ASHRAE Guideline 36-style staging: recovered heat, then tank discharge, then boiler, each stage "
               "on a delayed condition with a minimum runtime; dry cooler staged after the tank")
STAGE_MIN_RUNTIME_S = 900.0
STAGE_UP_K = 0.5
STAGE_DOWN_K = 0.5
STAGE_UP_DELAY_S = 300.0
STAGE_DOWN_DELAY_S = 600.0
TANK_USEFUL_K = 2.0  # P3 stops below the consumer supply + 2 K


@dataclass(frozen=True)
class State:
    mode: Mode = Mode.NORMAL
    last_now: float | None = None
    v1_integral: float = 0.0
    fan_integral: float = 0.0
    stage: int = 0
    stage_since: float = -math.inf
    up_since: float | None = None  # when the stage-up condition began to hold
    down_since: float | None = None
    fan_on: bool = False
    fan_hot_since: float | None = None
    fan_idle_since: float | None = None
    heartbeat: int = 0
    tank_soc: float | None = None


def _held(since: float | None, cond: bool, now: float) -> float | None:
    """When `cond` started to hold (None when it does not hold now)."""
    if not cond:
        return None
    return now if since is None else since


class G36Controller(C.DryCoolerBaseline):
    name = "g36"
    description = DESCRIPTION
    p1_pct = BASELINE_P1_PCT

    def __init__(self, site: SiteConfig):
        super().__init__(site, FAN_BELOW_ALARM_K)

    def initial_state(self, now: float, energy=None) -> State:
        return State(stage_since=now)

    def step(self, state: State, snapshot: Snapshot, requests: Iterable[Request], now: float) -> StepResult:
        r = self.r
        dt = 0.0 if state.last_now is None else max(now - state.last_now, 0.0)
        t_c = C.value(snapshot, r, Role.CONSUMER_SUPPLY_TEMP)
        t_it = C.value(snapshot, r, Role.IT_SUPPLY_TEMP)
        top = C.value(snapshot, r, Role.TANK_TOP_TEMP)

        v1_i = state.v1_integral
        if t_c is None:
            v1 = min(max(100.0 / PROPORTIONAL_BAND_K * v1_i / INTEGRAL_TIME_S, 0.0), 100.0)
        else:
            v1, v1_i = C.pi_step(v1_i, t_c - self.sp, dt, 100.0 / PROPORTIONAL_BAND_K, INTEGRAL_TIME_S)

        # Heating stages.
        stage, since = state.stage, state.stage_since
        tank_ok = t_c is not None and top is not None and top >= t_c + TANK_USEFUL_K
        if t_c is None:
            stage, since, up, down = 2, now, None, None  # blind: the boiler holds the consumer
        else:
            up = _held(state.up_since, t_c < self.sp - STAGE_UP_K, now)
            down = _held(state.down_since, t_c > self.sp + STAGE_DOWN_K, now)
            ran = now - since >= STAGE_MIN_RUNTIME_S
            if stage == 1 and not tank_ok:
                stage, since = 2, now  # the tank stage is exhausted: the next source takes over
            elif ran and up is not None and now - up >= STAGE_UP_DELAY_S and stage < 2:
                stage = 1 if stage == 0 and tank_ok else 2
                since, up = now, None
            elif ran and down is not None and now - down >= STAGE_DOWN_DELAY_S and stage > 0:
                stage = 1 if stage == 2 and tank_ok else 0
                since, down = now, None
        p3 = 100.0 if stage >= 1 and tank_ok else 0.0
        boiler = stage >= 2

        # Heat rejection after the tank.
        fan_i = state.fan_integral
        if t_it is None:
            fan_on, fan_pct, hot, idle = True, 100.0, None, None
        else:
            out, fan_i = C.pi_step(fan_i, t_it - self.fan_sp, dt, FAN_KP_PCT_PER_K, FAN_TI_S)
            hot = _held(state.fan_hot_since, t_it > self.fan_sp, now)
            idle = _held(state.fan_idle_since, out < FAN_START_PCT and t_it < self.fan_sp - 2.0, now)
            fan_on = state.fan_on
            if not fan_on and hot is not None and now - hot >= STAGE_UP_DELAY_S:
                fan_on, idle = True, None
            elif fan_on and idle is not None and now - idle >= STAGE_DOWN_DELAY_S:
                fan_on, hot = False, None
            fan_pct = max(out, FAN_MIN_PCT) if fan_on else 0.0

        return self.finish(state, now, p3, v1, fan_pct, boiler, fan_on,
                           dict(v1_integral=v1_i, fan_integral=fan_i, stage=stage, stage_since=since, up_since=up,
                                down_since=down, fan_on=fan_on, fan_hot_since=hot, fan_idle_since=idle))
