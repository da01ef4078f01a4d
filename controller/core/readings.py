"""Readings and snapshots: what the step knows about the plant, with quality and age.

A reading is data, never an exception: a lost or bad value is carried with its quality so that the
step decides what to do without it (STYLE.md habit 2).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence


class Quality(enum.Enum):
    """Quality of one reading, as a driver or the validator sees it."""

    GOOD = "good"
    # The source answered, but says the value is doubtful (OPC-UA Uncertain, a sensor in check).
    UNCERTAIN = "uncertain"
    # The source answered with a value that must not be used (OPC-UA Bad, a NaN, out of range).
    BAD = "bad"
    # The source did not answer: comms lost, timeout, device gone. Never replaced by the last value.
    LOST = "lost"

    @property
    def usable(self) -> bool:
        return self is Quality.GOOD


@dataclass(frozen=True, slots=True)
class Reading:
    """One point's value in the point's configured unit, when it was read, and its quality."""

    value: float | None
    unit: str
    ts: float
    quality: Quality = Quality.GOOD
    # Why the quality is not good, for events and the operator ("timeout", "nan", "out_of_range").
    reason: str = ""

    @property
    def good(self) -> bool:
        return (
            self.quality is Quality.GOOD
            and self.value is not None
            and math.isfinite(self.value)
        )

    @staticmethod
    def lost(unit: str, ts: float, reason: str) -> "Reading":
        return Reading(value=None, unit=unit, ts=ts, quality=Quality.LOST, reason=reason)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The process image: every point's reading, frozen at one instant (`taken_at`, seconds)."""

    taken_at: float
    readings: Mapping[str, Reading] = field(default_factory=dict)

    def get(self, point: str) -> Reading | None:
        return self.readings.get(point)


_new = object.__new__
_R_VALUE, _R_UNIT, _R_TS, _R_QUALITY, _R_REASON = (
    getattr(Reading, n).__set__ for n in ("value", "unit", "ts", "quality", "reason"))
_GOOD = Quality.GOOD


def good_readings(values: Mapping[str, float], units: Mapping[str, str], ts: float) -> dict[str, Reading]:
    """{point: Reading(value, units[point], ts)} for values read good at `ts` (a simulated plant's),
    set through the slots: a frozen dataclass's __init__ costs one object.__setattr__ per field,
    about 40 % of building a snapshot per tick. The same objects (equal, frozen, same type)."""
    out = {}
    for name, v in values.items():
        r = _new(Reading)
        _R_VALUE(r, v)
        _R_UNIT(r, units[name])
        _R_TS(r, ts)
        _R_QUALITY(r, _GOOD)
        _R_REASON(r, "")
        out[name] = r
    return out


class SampledReadings(Mapping[str, Reading]):
    """Every point read GOOD at one instant `ts`, from a plain {point: value}: a simulated plant's
    tick. The same mapping as good_readings(values, units, ts) builds, but a Reading is made only
    when one is asked for: validation reads the values directly (its fast path for this type,
    held to the general path by tests/test_core_fast_paths.py), and a baseline reads a few points.
    Building every reading was about a sixth of a simulated year's step (bench/bench_year.py)."""

    __slots__ = ("values", "units", "ts")

    def __init__(self, values: Mapping[str, float], units: Mapping[str, str], ts: float):
        self.values = values
        self.units = units
        self.ts = ts

    def __getitem__(self, name: str) -> Reading:
        v = self.values[name]
        r = _new(Reading)
        _R_VALUE(r, v)
        _R_UNIT(r, self.units[name])
        _R_TS(r, self.ts)
        _R_QUALITY(r, _GOOD)
        _R_REASON(r, "")
        return r

    def get(self, name: str, default: Reading | None = None) -> Reading | None:  # type: ignore[override]
        return self[name] if name in self.values else default

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def put_good_readings(out: dict[str, Reading], names: Sequence[str], units: Sequence[str],
                      values: Sequence[float], ts: float) -> list[int]:
    """out[names[i]] = Reading(values[i], units[i], ts) for each finite value, from parallel
    sequences in one pass (a driver's decoded request: no intermediate dicts); returns the
    positions of the values that are not finite, for the caller to mark. Same objects as
    good_readings builds."""
    bad: list[int] = []
    isfinite = math.isfinite
    i = 0
    for name, unit, v in zip(names, units, values):
        if isfinite(v):
            r = _new(Reading)
            _R_VALUE(r, v)
            _R_UNIT(r, unit)
            _R_TS(r, ts)
            _R_QUALITY(r, _GOOD)
            _R_REASON(r, "")
            out[name] = r
        else:
            bad.append(i)
        i += 1
    return bad
