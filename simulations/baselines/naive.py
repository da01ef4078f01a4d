"""The baseline: the plant run as sites run it today, with the step's signature so the runner can swap it in.

What it does (each a common commercial default, not a straw man):

- pumps at fixed speed: P1 at BASELINE_P1_PCT (the CDU's design flow: ~5 K IT loop dT at full
  load on the reference plant), P2 at the site's `outputs.p2_auto_pct`;
- one PI loop on the consumer supply temperature (its setpoint from `loops.consumer_supply`), with
  the wide band of a packaged controller: 20 K proportional band (Kp = 100 % / 20 K = 5 %/K) and
  300 s integral time; reverse-acting on V1, which diverts flow away from the consumer heat
  exchanger when the consumer is too warm. That is V1's only use: no storage strategy, so the tank is
  a pass-through (no buffer_charging decision, P3 never runs, what the tank holds is never used);
- the dump cooler on/off at a high limit on the building return (`loops.dump.setpoint`) with a fixed
  DUMP_HYSTERESIS_K below it;
- no power capping: the cap is `power.max_w` always (the servers' own thermal protection is in the
  plant model, as it is in the servers);
- the boiler enabled whenever the consumer supply is below its setpoint (BOILER_DIFF_K differential);
- a heartbeat, as any BMS link has, so the plant's fallback sees a live controller.

It has no trips and no modes of its own; for the KPIs it reports `bypass` while the dump runs and
`normal` otherwise. A bad reading holds the loop that needs it (dump: on; boiler: enabled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable

from controller.core.commands import Output, OutputSource
from controller.site.models import SiteConfig
from controller.core.events import Event
from controller.core.modes import Mode
from controller.core.readings import Snapshot
from controller.core.requests import Request
from controller.site.roles import Role
from controller.core.step import StepResult

BASELINE_P1_PCT = 80.0
PROPORTIONAL_BAND_K = 20.0
INTEGRAL_TIME_S = 300.0
DUMP_HYSTERESIS_K = 5.0
BOILER_DIFF_K = 0.5


@dataclass(frozen=True)
class BaselineState:
    mode: Mode = Mode.NORMAL
    last_now: float | None = None
    integral_k_s: float = 0.0  # integral of the error (K.s)
    dump_on: bool = False
    boiler_on: bool = False
    heartbeat: int = 0
    tank_soc: float | None = None  # the baseline does not look at the tank


class BaselineController:
    """Fixed-speed pumps, a wide-band PI on V1, on/off dump, no capping, no storage strategy."""

    def __init__(self, site: SiteConfig):
        self.site = site
        idx = site.role_index()
        self.r = {role: names[0] for role, names in idx.items() if len(names) == 1}
        self.sp = site.loops.consumer_supply.setpoint
        self.dump_on_c = site.loops.dump.setpoint
        self.kp = 100.0 / PROPORTIONAL_BAND_K
        self.hb_max = int(site.points[self.r[Role.HEARTBEAT]].range[1])

    def initial_state(self, now: float, energy=None) -> BaselineState:
        return BaselineState(mode=Mode.NORMAL, last_now=None)

    def _value(self, snapshot: Snapshot, role: Role) -> float | None:
        rd = snapshot.get(self.r[role])
        if rd is None or not rd.good:
            return None
        return rd.value

    def step(self, state: BaselineState, snapshot: Snapshot, requests: Iterable[Request],
             now: float) -> StepResult:
        r = self.r
        dt = 0.0 if state.last_now is None else max(now - state.last_now, 0.0)
        t_c = self._value(snapshot, Role.CONSUMER_SUPPLY_TEMP)
        b_ret = self._value(snapshot, Role.B_RETURN_TEMP)

        # PI on V1, reverse-acting: hotter than setpoint -> divert more. Conditional integration:
        # the integral only moves while the output is not pinned at a limit in that direction.
        integral = state.integral_k_s
        if t_c is None:
            v1 = min(max(self.kp * integral / INTEGRAL_TIME_S, 0.0), 100.0)  # hold
        else:
            e = t_c - self.sp
            trial = self.kp * (e + (integral + e * dt) / INTEGRAL_TIME_S)
            if 0.0 < trial < 100.0 or (trial >= 100.0 and e < 0) or (trial <= 0.0 and e > 0):
                integral += e * dt
            v1 = min(max(self.kp * (e + integral / INTEGRAL_TIME_S), 0.0), 100.0)
            # Keep the integral where it can act at once (the output at its limit, not beyond it).
            lo_i = (0.0 / self.kp - e) * INTEGRAL_TIME_S
            hi_i = (100.0 / self.kp - e) * INTEGRAL_TIME_S
            integral = min(max(integral, lo_i), hi_i)

        if b_ret is None:
            dump = True
        elif state.dump_on:
            dump = b_ret > self.dump_on_c - DUMP_HYSTERESIS_K
        else:
            dump = b_ret >= self.dump_on_c
        if t_c is None:
            boiler = True
        elif state.boiler_on:
            boiler = t_c < self.sp + BOILER_DIFF_K
        else:
            boiler = t_c < self.sp

        hb = (state.heartbeat + 1) % (self.hb_max + 1)
        values = {
            r[Role.P1_SPEED]: BASELINE_P1_PCT, r[Role.P2_SPEED]: self.site.outputs.p2_auto_pct,
            r[Role.P3_SPEED]: 0.0, r[Role.V1_POSITION]: v1, r[Role.D1_FAN]: 100.0 if dump else 0.0,
            r[Role.BOILER_ENABLE]: 1.0 if boiler else 0.0, r[Role.POWER_CAP]: self.site.power.max_w,
            r[Role.HEARTBEAT]: float(hb),
        }
        commands = {p: Output(v, OutputSource.AUTO, "baseline") for p, v in values.items()}
        mode = Mode.BYPASS if dump else Mode.NORMAL
        events = []
        if mode is not state.mode:
            events.append(Event(now, "mode_changed", f"{state.mode.value} -> {mode.value}: dump "
                                f"{'on' if dump else 'off'}", {"source": state.mode.value, "dest": mode.value,
                                                                "cause": "dump high limit"}))
        new = replace(state, mode=mode, last_now=now, integral_k_s=integral if math.isfinite(integral) else 0.0,
                      dump_on=dump, boiler_on=boiler, heartbeat=hb)
        return StepResult(new, commands, events)
