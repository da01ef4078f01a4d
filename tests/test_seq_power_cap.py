"""The power cap's sequence per tick on the reference plant: IT supply held 8 K (compute_first's
margin) below the 60 degC trip; cap 5..40 kW, at most 16 kW in safe_degrade or when blind."""

from __future__ import annotations

import pytest

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.core.sequences.power_cap import PowerCap

#        mode               IT supply  PID output  -> loop call                              cap sent
ROWS = [
    (Mode.NORMAL, 35.0, 40000.0, LoopCall(35.0, 52.0, 5000.0, 40000.0), 40000.0),
    (Mode.SAFE_DEGRADE, 35.0, 16000.0, LoopCall(35.0, 52.0, 5000.0, 16000.0), 16000.0),
    (Mode.SAFE_DEGRADE, 55.0, 9000.0, LoopCall(55.0, 52.0, 5000.0, 16000.0), 9000.0),
    (Mode.NORMAL, None, 40000.0, LoopCall(None, 52.0, 5000.0, 40000.0), 16000.0),  # blind: no power back
    (Mode.NORMAL, None, 12000.0, LoopCall(None, 52.0, 5000.0, 40000.0), 12000.0),
]


@pytest.mark.parametrize("mode,t_sup,pid_out,call,sent", ROWS)
def test_power_cap(ref_site, mode, t_sup, pid_out, call, sent):
    seq = PowerCap(ref_site)
    assert seq(mode, t_sup) == call
    assert seq.output(pid_out, t_sup) == sent


#   mode               last tick's target  dt (s)  -> this tick's target (compute_first: 52 degC)
TARGETS = [
    (Mode.NORMAL, None, 1.0, 52.0),              # the first tick: this policy's
    (Mode.NORMAL, 52.0, 1.0, 52.0),
    (Mode.NORMAL, 50.0, 1.0, 52.0),              # a higher target applies at once
    (Mode.NORMAL, 54.0, 60.0, 53.8),             # a lower one at 2 K per 10 minutes
    (Mode.BYPASS, 54.0, 300.0, 53.0),
    (Mode.NORMAL, 52.1, 60.0, 52.0),             # never below this policy's
    (Mode.SAFE_DEGRADE, 54.0, 1.0, 52.0),        # in safe_degrade at once
]


@pytest.mark.parametrize("mode,last,dt,target", TARGETS)
def test_a_lower_target_is_reached_at_a_bounded_rate(ref_site, mode, last, dt, target):
    seq = PowerCap(ref_site)
    assert seq.target(mode, last, dt) == pytest.approx(target)
    assert seq(mode, 40.0, seq.target(mode, last, dt)).setpoint == pytest.approx(target)
