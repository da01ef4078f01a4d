"""`good-practice`: the plant as a careful commissioning engineer would set it up with standard BMS blocks.

Source of the sequence: the usual practice for a waste-heat buffer plant (CIBSE AM17 / CP1-style
heat-network commissioning: boiler as back-up only, below a band under the setpoint, with anti-short-
cycling times; variable-speed EC dry-cooler fans on the supply temperature they protect; a
differential-temperature controller on the store's discharge pump, as in solar-thermal stores):

- P1 at a fixed design speed (BASELINE_P1_PCT), P2 at the site's `outputs.p2_auto_pct`;
- V1 on a PI loop on the consumer supply (PB PROPORTIONAL_BAND_K, Ti INTEGRAL_TIME_S: tuned by hand
  on the pool window for no sustained oscillation at the 60 s tick), reverse-acting: surplus goes
  into the tank;
- P3 (tank discharge) by a differential controller: on while the consumer is below setpoint and the
  tank top is DIFF_ON_K above the consumer supply, off at DIFF_OFF_K (the tank cannot discharge below
  the consumer supply + 2 K), minimum on/off times;
- the dry-cooler EC fan modulated by a PI on the IT supply temperature, FAN_BELOW_ALARM_K under the
  site's IT supply alarm, with a minimum speed when running and minimum on/off times;
- the boiler on below setpoint - BOILER_BAND_K, off at the setpoint, minimum on/off times;
- no power capping, a live heartbeat.

No trips of its own (the plant's servers protect themselves); for the KPIs it reports `bypass` while
the dry cooler runs. A bad reading holds the loop that needs it safe: fan on, boiler on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from controller.core.modes import Mode
from controller.core.readings import Snapshot
from controller.core.requests import Request
from controller.core.step import StepResult
from controller.site.models import SiteConfig
from controller.site.roles import Role
from simulations.baselines import common as C

DESCRIPTION = ("boiler below setpoint-1 K with 10 min anti-short-cycle, EC dry-cooler fan on a PI of the IT "
               "supply, tank discharge by a differential controller, PI on V1")
BASELINE_P1_PCT = 80.0
PROPORTIONAL_BAND_K = 10.0
INTEGRAL_TIME_S = 600.0
BOILER_BAND_K = 1.0
BOILER_MIN_ON_S = 600.0  # anti-short-cycling: a typical boiler controller's default is 5-10 min
BOILER_MIN_OFF_S = 600.0
DIFF_ON_K = 5.0
DIFF_OFF_K = 2.0
PUMP_MIN_S = 900.0  # a pump or fan start every 15 min at most: anti-cycling as for the boiler
FAN_BELOW_ALARM_K = 7.0
FAN_KP_PCT_PER_K = 10.0
FAN_TI_S = 600.0
FAN_MIN_PCT = 20.0  # EC fans run between ~20 % and 100 % of speed
FAN_MIN_S = 900.0
# The fan starts when its loop asks for more than this (a PI held at its limit sits at ~1e-15, not 0).
FAN_START_PCT = 1.0


@dataclass(frozen=True)
class State:
    mode: Mode = Mode.NORMAL
    last_now: float | None = None
    v1_integral: float = 0.0
    fan_integral: float = 0.0
    fan: C.Switch = C.Switch()
    boiler: C.Switch = C.Switch()
    p3: C.Switch = C.Switch()
    heartbeat: int = 0
    tank_soc: float | None = None


class GoodPracticeController(C.DryCoolerBaseline):
    name = "good-practice"
    description = DESCRIPTION
    p1_pct = BASELINE_P1_PCT

    def __init__(self, site: SiteConfig):
        super().__init__(site, FAN_BELOW_ALARM_K)

    def initial_state(self, now: float, energy=None) -> State:
        return State()

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

        fan_i = state.fan_integral
        if t_it is None:
            fan, fan_pct = state.fan.want(True, now, 0.0, 0.0), 100.0
        else:
            out, fan_i = C.pi_step(fan_i, t_it - self.fan_sp, dt, FAN_KP_PCT_PER_K, FAN_TI_S)
            fan = state.fan.want(out > FAN_START_PCT, now, FAN_MIN_S, FAN_MIN_S)
            fan_pct = max(out, FAN_MIN_PCT) if fan.on else 0.0

        if t_c is None:
            boiler = state.boiler.want(True, now, 0.0, 0.0)
        elif state.boiler.on:
            boiler = state.boiler.want(t_c < self.sp, now, BOILER_MIN_ON_S, BOILER_MIN_OFF_S)
        else:
            boiler = state.boiler.want(t_c < self.sp - BOILER_BAND_K, now, BOILER_MIN_ON_S, BOILER_MIN_OFF_S)

        if t_c is None or top is None:
            p3 = state.p3.want(False, now, 0.0, 0.0)
        elif state.p3.on:
            p3 = state.p3.want(t_c < self.sp + 0.5 and top >= t_c + DIFF_OFF_K, now, PUMP_MIN_S, PUMP_MIN_S)
        else:
            p3 = state.p3.want(t_c < self.sp and top >= t_c + DIFF_ON_K, now, PUMP_MIN_S, PUMP_MIN_S)

        return self.finish(state, now, 100.0 if p3.on else 0.0, v1, fan_pct, boiler.on, fan.on,
                           dict(v1_integral=v1_i, fan_integral=fan_i, fan=fan, boiler=boiler, p3=p3))
