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

from dataclasses import dataclass

from simple_pid import PID

from controller.site.models import LoopConfig


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
            lo: float, hi: float, now: float, dt: float,
            applied: float | None = None) -> tuple[PID, float, bool]:
        """Compute this tick's slew-limited output. Returns (pid copy, output, held).

        `applied`: the output the plant verifiably got from the last write, in the loop's internal
        range, where the drivers know it (None: unknown, the state's commanded output stands). A
        write that failed or was clamped by the actuator then neither winds the integral up nor
        makes the slew limit start from a value the plant never had."""
        src = st.pid
        # copy.copy of a plain object, without copy's dispatch: a new instance with the same __dict__.
        pid = _new(src.__class__)
        pid.__dict__.update(src.__dict__)
        pid.time_fn = lambda: now
        if applied is not None and applied != st.output:
            if pid.auto_mode:
                _track(pid, applied)
            st = _loop_state(pid, applied, st.auto)
        # simple-pid's output_limits setter, inlined (same checks, same clamps, in the same order).
        if hi < lo:
            raise ValueError('lower limit must be less than upper limit')
        pid._min_output = lo
        pid._max_output = hi
        i = pid._integral
        if i is not None:
            pid._integral = hi if i > hi else lo if i < lo else i
        last_out = pid._last_output
        if last_out is not None:
            pid._last_output = hi if last_out > hi else lo if last_out < lo else last_out
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
            _track(pid, applied)
        return _loop_state(pid, applied, not held)


_new = object.__new__


def _track(pid: PID, applied: float) -> None:
    """Set the integral so that P + I + D equals `applied` (tracking anti-windup, see the module
    docstring), within the output limits. Mutates `pid`: only ever this tick's copy."""
    lo, hi = pid.output_limits
    p, _, d = pid.components
    integral = applied - p - d
    if lo is not None:
        integral = max(integral, lo)
    if hi is not None:
        integral = min(integral, hi)
    pid._integral = integral
    pid._last_output = applied


def _loop_state(pid: PID, output: float | None, auto: bool) -> LoopState:
    """LoopState(pid, output, auto) without the frozen __init__'s per-field object.__setattr__."""
    st = _new(LoopState)
    st.__dict__.update(pid=pid, output=output, auto=auto)
    return st


def loop_result(output: float, p: float, i: float, d: float, setpoint: float, measurement: float | None,
                held: bool) -> LoopResult:
    """LoopResult(...) as the step builds it each tick, without the frozen __init__'s cost."""
    r = _new(LoopResult)
    r.__dict__.update(output=output, p=p, i=i, d=d, setpoint=setpoint, measurement=measurement, held=held)
    return r
