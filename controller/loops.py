"""PID loops on simple-pid, driven by the step's clock, with slew limits and tracking anti-windup.

simple-pid keeps its state in the PID object. To keep the step pure, a loop's PID object lives in the
step's input state and is never mutated: each tick works on a shallow copy (all its fields are
numbers), whose `time_fn` returns the step's `now`. `sample_time=None`: the tick drives the loop.

simple-pid clamps its integral to the output limits, its only anti-windup. Here the output is also
slew-limited, and may be taken over by an override, a trip or safe_degrade; whenever the applied
output differs from the PID's own, the integral is set so that P + I + D equals the applied value
("tracking", Astrom & Hagglund). That gives no wind-up while saturated or overridden and bumpless
transfer back to automatic. This touches simple-pid's `_integral`, which is why simple-pid is pinned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from simple_pid import PID

from controller.config import LoopConfig


@dataclass(frozen=True)
class LoopState:
    pid: PID
    # The output last applied to the plant (after the slew limit and arbitration), in the loop's
    # internal range; None before the first tick.
    output: float | None = None
    # False while the measurement is bad: the output holds and the PID restarts bumplessly.
    auto: bool = True


@dataclass(frozen=True)
class LoopResult:
    output: float
    p: float
    i: float
    d: float
    setpoint: float
    measurement: float | None
    held: bool


class LoopRunner:
    """One loop's fixed behaviour: gains, direction, slew limits. Holds no state between ticks."""

    def __init__(self, name: str, cfg: LoopConfig, reverse: bool):
        self.name = name
        self.cfg = cfg
        # Reverse acting: the output must rise when the measurement rises above the setpoint
        # (more pump for a larger dT, more fan for a hotter return). simple-pid computes
        # setpoint - input, so a reverse loop feeds it negated values.
        self.sign = -1.0 if reverse else 1.0

    def initial_state(self, initial_output: float) -> LoopState:
        pid = PID(self.cfg.kp, self.cfg.ki, self.cfg.kd, setpoint=0.0, sample_time=None,
                  output_limits=(None, None), time_fn=lambda: 0.0, starting_output=0.0)
        pid.set_auto_mode(False)
        return LoopState(pid=pid, output=initial_output, auto=False)

    def run(self, st: LoopState, measurement: float | None, setpoint: float,
            lo: float, hi: float, now: float, dt: float) -> tuple[PID, float, bool]:
        """Compute this tick's slew-limited output. Returns (pid copy, output, held)."""
        pid = copy.copy(st.pid)
        pid.time_fn = lambda: now
        pid.output_limits = (lo, hi)
        last = st.output if st.output is not None else lo
        last = min(max(last, lo), hi)
        if measurement is None:
            pid.set_auto_mode(False)
            return pid, last, True
        pid.setpoint = self.sign * setpoint
        if not pid.auto_mode:
            pid.set_auto_mode(True, last_output=last)
        raw = pid(self.sign * measurement)
        up = self.cfg.rate_up_per_s * dt
        down = self.cfg.rate_down_per_s * dt
        out = min(max(raw, last - down), last + up)
        return pid, min(max(out, lo), hi), False

    @staticmethod
    def settle(pid: PID, applied: float, held: bool) -> LoopState:
        """Fold the applied output back into the PID (tracking) and return the new loop state."""
        if not held and pid.auto_mode:
            lo, hi = pid.output_limits
            p, _, d = pid.components
            integral = applied - p - d
            if lo is not None:
                integral = max(integral, lo)
            if hi is not None:
                integral = min(integral, hi)
            pid._integral = integral  # tracking anti-windup (see module docstring)
            pid._last_output = applied
        return LoopState(pid=pid, output=applied, auto=not held)
