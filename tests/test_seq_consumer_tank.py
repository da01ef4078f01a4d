"""V1 / P3's sequence per tick on the reference plant: consumer supply setpoint 40 degC, loop
output -100..100 (V1 above zero, P3 below), tank full at SoC 0.95, discharge only with the tank
top 2 K above the consumer supply."""

from __future__ import annotations

import pytest

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.core.sequences.consumer_tank import ConsumerTank

N, BC, BP, SD = Mode.NORMAL, Mode.BUFFER_CHARGING, Mode.BYPASS, Mode.SAFE_DEGRADE
#  mode  consumer  tank top  online  SoC   -> loop call (measurement, setpoint, lo, hi, forced)
ROWS = [
    (N, 40.0, 45.0, True, 0.5, LoopCall(40.0, 40.0, -100.0, 100.0)),    # hot tank: may discharge
    (N, 40.0, 41.0, True, 0.5, LoopCall(40.0, 40.0, 0.0, 100.0)),       # tank not 2 K hotter: no P3
    (N, 40.0, None, True, 0.5, LoopCall(40.0, 40.0, 0.0, 100.0)),       # tank top unseen: no P3
    (BC, 40.0, 45.0, True, 0.5, LoopCall(40.0, 40.0, 0.0, 100.0)),      # charging: V1 only
    (BP, 40.0, 45.0, True, 0.96, LoopCall(40.0, 40.0, -100.0, 100.0)),
    (SD, 40.0, 45.0, True, 0.5, LoopCall(40.0, 40.0, -100.0, 100.0)),
    (N, 40.0, 45.0, False, 0.5, LoopCall(40.0, 40.0, -100.0, 100.0, 100.0)),  # offline: charge the tank
    (N, 40.0, 45.0, False, 0.95, LoopCall(40.0, 40.0, -100.0, 100.0, 0.0)),   # offline, tank full
    (N, 40.0, 45.0, False, None, LoopCall(40.0, 40.0, -100.0, 100.0, 0.0)),   # offline, SoC unknown
    (BP, 40.0, 45.0, False, 0.5, LoopCall(40.0, 40.0, -100.0, 100.0, 0.0)),   # bypass: not into the tank
    (N, None, 45.0, True, 0.5, LoopCall(None, 40.0, 0.0, 100.0)),
]


@pytest.mark.parametrize("mode,t_c,top,online,soc,expected", ROWS)
def test_consumer_tank(ref_site, mode, t_c, top, online, soc, expected):
    assert ConsumerTank(ref_site)(mode, t_c, top, online, soc) == expected


#        loop output  online  -> V1, P3
SPLIT = [(30.0, True, (30.0, 0.0)), (-25.0, True, (0.0, 25.0)), (-25.0, False, (0.0, 0.0)),
         (0.0, True, (0.0, 0.0))]


@pytest.mark.parametrize("u,online,expected", SPLIT)
def test_split_and_its_inverse(u, online, expected):
    assert ConsumerTank.split(u, online) == expected
    if online:
        assert ConsumerTank.internal(*expected) == u
