"""D1's sequence per tick on the reference plant (dump setpoint 42 degC, 32 in safe_degrade)."""

from __future__ import annotations

import pytest

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.core.sequences.dump import Dump

#        mode                 building return   -> measurement, setpoint, lo, hi
ROWS = [
    (Mode.NORMAL, 33.0, LoopCall(33.0, 42.0, 0.0, 100.0)),
    (Mode.BUFFER_CHARGING, 45.0, LoopCall(45.0, 42.0, 0.0, 100.0)),
    (Mode.BYPASS, 45.0, LoopCall(45.0, 42.0, 0.0, 100.0)),
    (Mode.SAFE_DEGRADE, 33.0, LoopCall(33.0, 32.0, 0.0, 100.0)),  # 10 K lower in safe_degrade
    (Mode.NORMAL, None, LoopCall(None, 42.0, 0.0, 100.0)),
]


@pytest.mark.parametrize("mode,b_ret,expected", ROWS)
def test_dump(ref_site, mode, b_ret, expected):
    assert Dump(ref_site)(mode, b_ret) == expected
