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
