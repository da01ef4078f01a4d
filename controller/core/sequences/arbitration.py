"""Arbitration: who drives each actuator this tick. A trip beats safe_degrade (or the start-up
hold), which beats an operator override, which beats the automatic sequences. The heartbeat is
nobody's to take: it counts on every tick, wrapping at its range's top."""

from __future__ import annotations

from typing import Mapping

from controller.core.commands import Output, OutputSource
from controller.core.state import Override

_SRC_AUTO, _SRC_TRIP, _SRC_SAFE_DEGRADE, _SRC_STARTUP, _SRC_OVERRIDE = (
    OutputSource.AUTO, OutputSource.TRIP, OutputSource.SAFE_DEGRADE, OutputSource.STARTUP, OutputSource.OVERRIDE)


class Arbitration:
    def __init__(self, actuators: tuple[str, ...], ranges: Mapping[str, tuple[float, float]], heartbeat: str):
        self.actuators = actuators
        self.ranges = dict(ranges)
        self.heartbeat = heartbeat

    def __call__(self, *, trip_out: Mapping[str, tuple[float, str]], safe: Mapping[str, float] | None,
                 started: bool, mode_cause: str, overrides: Mapping[str, Override],
                 auto: Mapping[str, float], mode_value: str, heartbeat: int) -> dict[str, Output]:
        """`trip_out`: point -> (value, trip) for every latched trip's actions; `safe`: the
        safe_degrade values (None when not in safe_degrade), from the start-up hold until
        `started`; `auto`: the sequences' outputs; `heartbeat`: the last heartbeat value."""
        commands: dict[str, Output] = {}
        ranges, hb_point = self.ranges, self.heartbeat
        for point in self.actuators:
            lo, hi = ranges[point]
            if point == hb_point:
                commands[point] = _output(float((heartbeat + 1) % (int(hi) + 1)), _SRC_AUTO, "heartbeat")
            elif point in trip_out:
                value, trip_name = trip_out[point]
                commands[point] = _output(value, _SRC_TRIP, trip_name)
            elif safe is not None and point in safe:
                commands[point] = _output(min(max(safe[point], lo), hi),
                                          _SRC_SAFE_DEGRADE if started else _SRC_STARTUP, mode_cause)
            elif point in overrides:
                ov = overrides[point]
                commands[point] = _output(ov.value, _SRC_OVERRIDE, ov.reason)
            else:
                commands[point] = _output(min(max(auto[point], lo), hi), _SRC_AUTO, mode_value)
        return commands


_new = object.__new__
_O_VALUE, _O_SOURCE, _O_WHY = Output.value.__set__, Output.source.__set__, Output.why.__set__  # type: ignore[attr-defined]


def _output(value: float, source: OutputSource, why: str) -> Output:
    """Output(value, source, why), set through its slots: a frozen __init__ costs one
    object.__setattr__ per field, which showed in the step's profile. The same object."""
    o = _new(Output)
    _O_VALUE(o, value)
    _O_SOURCE(o, source)
    _O_WHY(o, why)
    return o
