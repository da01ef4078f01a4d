"""P1's sequence per tick on the reference plant (policy compute_first: dT setpoint 6 K, P1 20..100 %)."""

from __future__ import annotations

import pytest

from controller.core.sequences import LoopCall
from controller.core.sequences.it_delta_t import ItDeltaT

#        IT return  IT supply   -> measurement (dT), setpoint, lo, hi
ROWS = [
    (43.0, 35.0, LoopCall(8.0, 6.0, 20.0, 100.0)),
    (41.0, 35.0, LoopCall(6.0, 6.0, 20.0, 100.0)),
    (None, 35.0, LoopCall(None, 6.0, 20.0, 100.0)),   # a bad return: no dT, the loop holds
    (43.0, None, LoopCall(None, 6.0, 20.0, 100.0)),
]


@pytest.mark.parametrize("t_ret,t_sup,expected", ROWS)
def test_it_delta_t(ref_site, t_ret, t_sup, expected):
    assert ItDeltaT(ref_site)(t_ret, t_sup) == expected
