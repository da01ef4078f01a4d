"""The loops' PID held to simple-pid itself: the same tick sequences through LoopRunner and through
the simple-pid object it replaced (copied per tick, as the step used to), value for value.

Random ticks: measurements good or missing, limits that move (mode changes), overrides and failed
writes (an applied value other than the loop's own), repeated timestamps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from simple_pid import PID

from controller.core.loops import LoopRunner
from controller.site.models import LoopConfig


class SimplePidLoop:
    """The oracle: simple-pid driven exactly as the step drove it before (a copy per tick)."""

    def __init__(self, cfg: LoopConfig, reverse: bool):
        self.cfg, self.sign = cfg, (-1.0 if reverse else 1.0)

    def initial(self, output):
        pid = PID(self.cfg.kp, self.cfg.ki, self.cfg.kd, setpoint=0.0, sample_time=None,
                  output_limits=(None, None), time_fn=lambda: 0.0, starting_output=0.0)
        pid.set_auto_mode(False)
        return pid, output

    def run(self, state, meas, sp, lo, hi, now, dt, applied):
        src, output = state
        pid = PID.__new__(PID)
        pid.__dict__.update(src.__dict__)
        pid.time_fn = lambda: now
        if applied is not None and applied != output:
            if pid.auto_mode:
                self.track(pid, applied)
            output = applied
        pid.output_limits = (lo, hi)
        last = min(max(output if output is not None else lo, lo), hi)
        if meas is None:
            pid.set_auto_mode(False)
            return pid, last, True
        pid.setpoint = self.sign * sp
        if not pid.auto_mode:
            pid.set_auto_mode(True, last_output=last)
        raw = pid(self.sign * meas)
        out = min(max(raw, last - self.cfg.rate_down_per_s * dt), last + self.cfg.rate_up_per_s * dt)
        return pid, min(max(out, lo), hi), False

    @staticmethod
    def track(pid, applied):
        lo, hi = pid.output_limits
        p, _, d = pid.components
        integral = applied - p - d
        if lo is not None:
            integral = max(integral, lo)
        if hi is not None:
            integral = min(integral, hi)
        pid._integral = integral
        pid._last_output = applied

    def settle(self, pid, applied, held):
        if not held and pid.auto_mode:
            self.track(pid, applied)
        return pid, applied


CFG = LoopConfig(measurement="m", output="o", setpoint=8.0, kp=6.0, ki=0.3, kd=0.7, output_min=20.0,
                 output_max=100.0, rate_up_per_s=10.0, rate_down_per_s=5.0)

tick = st.tuples(
    st.one_of(st.none(), st.floats(-20, 60, allow_nan=False)),          # measurement (None: bad)
    st.sampled_from([(20.0, 100.0), (0.0, 100.0), (-100.0, 100.0), (30.0, 30.0)]),  # limits
    st.sampled_from([0.0, 1.0, 1.0, 1.0, 60.0]),                         # clock step (0: same time)
    st.one_of(st.none(), st.floats(-100, 120, allow_nan=False)),        # applied by the last write
    st.one_of(st.none(), st.floats(-100, 120, allow_nan=False)),        # arbitration's value this tick
)


@settings(max_examples=300, deadline=None)
@given(st.lists(tick, min_size=1, max_size=40), st.booleans(), st.floats(0, 100, allow_nan=False))
def test_loop_runner_is_simple_pid_value_for_value(ticks, reverse, start):
    ours, oracle = LoopRunner("x", CFG, reverse), SimplePidLoop(CFG, reverse)
    a, b = ours.initial_state(start), oracle.initial(start)
    now = 0.0
    for k, (meas, (lo, hi), step_s, applied, arbitrated) in enumerate(ticks):
        now += step_s
        pa, out_a, held_a = ours.run(a, meas, 8.0, lo, hi, now, step_s, applied)
        pb, out_b, held_b = oracle.run(b, meas, 8.0, lo, hi, now, step_s, applied)
        assert (out_a, held_a) == (out_b, held_b), k
        assert pa.components == pb.components and pa.auto == pb.auto_mode, k
        final = out_a if arbitrated is None else arbitrated
        a, b = ours.settle(pa, final, held_a), oracle.settle(pb, final, held_b)
        assert a.pid.components == b[0].components and a.output == b[1], k
        assert a.pid.last_output == b[0]._last_output and a.pid.output_limits == b[0].output_limits, k
