"""The boiler thermostat per tick on a fake clock (reference plant: on below 39 degC, off again at
40, at least 600 s between switches). Each row is one tick: its inputs, then the decision; the
decision and its time carry to the next row."""

from __future__ import annotations

from controller.core.sequences.boiler import Boiler

#   now   avail seen  online  consumer  -> on
TICKS = [
    (0.0, True, True, 40.0, False),
    (60.0, True, True, 38.9, True),     # below 39: on (it has never switched)
    (120.0, True, True, 39.5, True),    # inside the band: stays on
    (180.0, True, True, 40.5, True),    # above the band, but on for only 120 s: stays on
    (660.0, True, True, 40.5, False),   # 600 s since it switched on: off
    (720.0, True, True, 38.0, False),   # cold again, but off for only 60 s: stays off
    (1260.0, True, True, 38.0, True),   # 600 s since off: on
    (1320.0, True, False, 38.0, False),  # the consumer says it is offline: off at once
    (1380.0, False, False, None, True),  # the consumer unseen (comms lost): on, its own thermostat
    (1440.0, True, True, None, True),    # consumer supply unseen: on
]


def test_boiler_per_tick(ref_site):
    seq = Boiler(ref_site)
    on, since = False, float("-inf")
    for k, (now, seen, online, t_c, expected) in enumerate(TICKS):
        decided = seq(seen, online, t_c, on, since, now)
        assert decided == expected, f"tick {k} at {now} s"
        if decided != on:
            on, since = decided, now
