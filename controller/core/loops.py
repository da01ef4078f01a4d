"""PID loops driven by the step's clock, with slew limits and tracking anti-windup.

The PID is simple-pid's algorithm (proportional on error, derivative on measurement, the
integral clamped to the output limits), written over an immutable state: a loop's `Pid` lives in
the step's input state and each tick returns a new one, so the step stays pure without copying a
PID object per loop per tick. tests/test_loops_pid.py holds it to simple-pid itself, value for
value. `sample_time=None` in simple-pid's terms: the tick drives the loop.

The integral clamp is simple-pid's only anti-windup. Here the output is also slew-limited, and may
be taken over by an override, a trip or safe_degrade; whenever the applied output differs from the
PID's own, the integral is set so that P + I + D equals the applied value ("tracking", Astrom &
Hagglund). That gives no wind-up while saturated or overridden and bumpless transfer back to
automatic.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.site.models import LoopConfig


@dataclass(frozen=True, slots=True)
class Pid:
    """A PID's memory between ticks, in simple-pid's terms (its `_proportional`, `_integral`, ...)."""

    p: float = 0.0
    i: float = 0.0
    d: float = 0.0
    last_input: float | None = None
    last_time: float = 0.0
    # The output limits it last ran with (None: none yet).
    lo: float | None = None
    hi: float | None = None
    last_output: float | None = None
    auto: bool = False

    @property
    def components(self) -> tuple[float, float, float]:
        return self.p, self.i, self.d

    @property
    def output_limits(self) -> tuple[float | None, float | None]:
        return self.lo, self.hi


@dataclass(frozen=True)
class LoopState:
    pid: Pid
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
        # (more pump for a larger dT, more fan for a hotter return). The PID computes
        # setpoint - input, so a reverse loop feeds it negated values.
        self.sign = -1.0 if reverse else 1.0
        self.kp, self.ki, self.kd = cfg.kp, cfg.ki, cfg.kd
        self.rate_up, self.rate_down = cfg.rate_up_per_s, cfg.rate_down_per_s

    def initial_state(self, initial_output: float) -> LoopState:
        """In manual at `initial_output`: the first good measurement starts the PID from there."""
        return LoopState(pid=_INITIAL, output=initial_output, auto=False)

    def run(self, st: LoopState, measurement: float | None, setpoint: float,
            lo: float, hi: float, now: float, dt: float,
            applied: float | None = None) -> tuple[Pid, float, bool]:
        """Compute this tick's slew-limited output. Returns (new pid, output, held).

        `applied`: the output the plant verifiably got from the last write, in the loop's internal
        range, where the drivers know it (None: unknown, the state's commanded output stands). A
        write that failed or was clamped by the actuator then neither winds the integral up nor
        makes the slew limit start from a value the plant never had."""
        s = st.pid
        p, i, d, last_in, last_t, last_out, auto = s.p, s.i, s.d, s.last_input, s.last_time, s.last_output, s.auto
        prev = st.output
        if applied is not None and applied != prev:
            if auto:
                i, last_out = _tracked(s.lo, s.hi, p, d, applied), applied
            prev = applied
        if hi < lo:
            raise ValueError('lower limit must be less than upper limit')
        # New limits: the integral and the last output clamped into them (upper bound first, as
        # simple-pid clamps).
        i = hi if i > hi else lo if i < lo else i
        if last_out is not None:
            last_out = hi if last_out > hi else lo if last_out < lo else last_out
        last = prev if prev is not None else lo
        last = min(max(last, lo), hi)
        if measurement is None:
            return _pid(p, i, d, last_in, last_t, lo, hi, last_out, False), last, True
        if not auto:
            # Manual to automatic: start from the output the plant has (bumpless), fresh terms.
            p, d, last_in, last_t = 0, 0, None, now
            i = hi if last > hi else lo if last < lo else last
        x = self.sign * measurement
        step_t = now - last_t if (now - last_t) else 1e-16
        error = self.sign * setpoint - x
        d_input = x - (last_in if last_in is not None else x)
        p = self.kp * error
        i = i + self.ki * error * step_t
        i = hi if i > hi else lo if i < lo else i
        d = -self.kd * d_input / step_t
        raw = p + i + d
        raw = hi if raw > hi else lo if raw < lo else raw
        out = min(max(raw, last - self.rate_down * dt), last + self.rate_up * dt)
        return _pid(p, i, d, x, now, lo, hi, raw, True), min(max(out, lo), hi), False

    @staticmethod
    def settle(pid: Pid, applied: float, held: bool, hold_at_hi: bool = False) -> LoopState:
        """Fold the applied output back into the PID (tracking) and return the new loop state.

        `hold_at_hi`: at the upper limit while the loop's own error asks for at least that much
        (P >= 0), the integral stays at the limit instead of being tracked down to it less P, as
        simple-pid's clamp alone would have it. Tracking there makes every fall of P (the
        measurement rising toward the setpoint, or the setpoint falling) pull the output below
        the limit while the measurement is still on the safe side of the setpoint. The power cap
        uses it: it caps the servers only once the IT supply is above its target."""
        if not held and pid.auto:
            hi = pid.hi
            if hold_at_hi and hi is not None and applied >= hi and pid.p >= 0.0:
                i = hi
            else:
                i = _tracked(pid.lo, hi, pid.p, pid.d, applied)
            pid = _pid(pid.p, i, pid.d, pid.last_input, pid.last_time, pid.lo, hi, applied, True)
        return _loop_state(pid, applied, not held)


def _tracked(lo: float | None, hi: float | None, p: float, d: float, applied: float) -> float:
    """The integral that makes P + I + D equal `applied` (tracking anti-windup, see the module
    docstring), within the output limits."""
    integral = applied - p - d
    if lo is not None:
        integral = max(integral, lo)
    if hi is not None:
        integral = min(integral, hi)
    return integral


_new = object.__new__
_PID_SET = tuple(getattr(Pid, n).__set__ for n in
                 ("p", "i", "d", "last_input", "last_time", "lo", "hi", "last_output", "auto"))
(_S_P, _S_I, _S_D, _S_IN, _S_T, _S_LO, _S_HI, _S_OUT, _S_AUTO) = _PID_SET
_INITIAL = Pid(p=0, i=0.0, d=0)  # simple-pid's start: integer P and D terms, a float integral


def _pid(p, i, d, last_input, last_time, lo, hi, last_output, auto) -> Pid:
    """Pid(...) set through its slots, without the frozen __init__'s per-field object.__setattr__."""
    o = _new(Pid)
    _S_P(o, p)
    _S_I(o, i)
    _S_D(o, d)
    _S_IN(o, last_input)
    _S_T(o, last_time)
    _S_LO(o, lo)
    _S_HI(o, hi)
    _S_OUT(o, last_output)
    _S_AUTO(o, auto)
    return o


def _loop_state(pid: Pid, output: float | None, auto: bool) -> LoopState:
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
