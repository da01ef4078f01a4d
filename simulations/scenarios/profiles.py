"""Year-long profiles of the outside world, generated from documented formulas (nothing downloaded).

Every profile is a pure function of simulated time t (seconds from 1 January 00:00 of a 365-day
year), so sampling costs nothing and two runs see exactly the same year. Profiles are small frozen
dataclasses with `__call__(t)`: they carry their sizing parameters and pickle across processes.

Calendar: day 0 is 1 January and a Monday (so day 5 is a Saturday); no leap day, no daylight
saving. Months have their usual lengths (MONTH_DAYS).

- Climate (outdoor temperature, degC): a temperate climate (about central-European lowland)
      T(t) = mean - amplitude cos(2 pi (doy - coldest_doy) / 365)     annual cycle, coldest mid-January
             + (daily_swing / 2) cos(2 pi (hour - 15) / 24)          daily cycle, warmest at 15:00
             + weather(t)                                             day-to-day weather
  weather(t) is a smooth deterministic noise: one value per day and one per 4-day "synoptic" period,
  each uniform in [-1, 1] from a seeded integer hash (splitmix64), joined by cosine interpolation
  and scaled to about `weather_k` kelvin standard deviation. No randomness at run time: the same
  seed gives the same year.
- Pool (W): open hours take `open_kw`, closed hours (covers on) `closed_kw`; both scale with the
  season through the outdoor temperature, because evaporation and ventilation losses rise when the
  air is cold and dry: factor 1 + seasonal_gain (mean - T_smooth) / amplitude.
- Domestic hot water (W): `base_kw` plus Gaussian draw peaks: weekdays at 07:00 and 19:00,
  weekends later and flatter (09:30 and 18:30); cold mains in winter need ~15 % more heat.
- Space heating (W): weather-compensated, design_kw (base_c - T) / (base_c - design_c) when
  T < base_c (15.5 degC, the usual heating-degree base), none above; capped at 1.2 design; off
  in the summer shutdown (June to August).
- District loop (W): `base_kw` (hot water of the connected buildings, losses) plus `per_k_kw` per
  kelvin of (base_c - T) when positive.
- IT load (fraction 0..1 of each server's range): steady batch; diurnal inference (cosine peaking at
  14:00, lower at weekends); bursty GPU (a base load with deterministic bursts to full power, one
  draw per `slot_s` slot from the same seeded hash, more likely in the daytime).
- CsvProfile: a user's measured series, loaded and validated by `load_csv_profile`.
"""

from __future__ import annotations

import bisect
import csv
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

H = 3600.0
DAY = 86400.0
YEAR_S = 365 * DAY
MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Start of each month (s from 1 January 00:00).
MONTH_START_S = tuple(sum(MONTH_DAYS[:i]) * DAY for i in range(13))
_MASK64 = (1 << 64) - 1


def day_start_s(month: int, day: int = 1) -> float:
    """Seconds from 1 January 00:00 to 00:00 on `day` of `month` (1-based)."""
    return MONTH_START_S[month - 1] + (day - 1) * DAY


def month_of(t: float) -> int:
    """Month index 0..11 of simulated time t (wraps yearly)."""
    return bisect.bisect_right(MONTH_START_S, t % YEAR_S) - 1


def is_weekend(t: float) -> bool:
    """Saturday or Sunday (day 0, 1 January, is a Monday)."""
    return int(t // DAY) % 7 >= 5


def hour_of_day(t: float) -> float:
    return (t % DAY) / H


def unit_hash(seed: int, index: int) -> float:
    """A deterministic pseudo-random number in [-1, 1) from (seed, index): splitmix64's finaliser."""
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z >> 11) / float(1 << 52) - 1.0


# Knot values already hashed: a year's run asks for the same few hundred knots every tick (about 8
# hashes a tick, ~5 % of a simulated year's time). Bounded, so a long sweep cannot grow it.
_KNOTS: dict[tuple[int, int], float] = {}


def _knot(seed: int, i: int) -> float:
    v = _KNOTS.get((seed, i))
    if v is None:
        if len(_KNOTS) >= 4096:
            _KNOTS.clear()
        v = _KNOTS[(seed, i)] = unit_hash(seed, i)
    return v


def smooth_noise(seed: int, x: float) -> float:
    """Noise in [-1, 1], smooth in x: hash values at the integers joined by cosine interpolation."""
    i = math.floor(x)
    f = x - i
    a, b = _knot(seed, i), _knot(seed, i + 1)
    w = 0.5 - 0.5 * math.cos(math.pi * f)
    return a + (b - a) * w


# --------------------------------------------------------------------------- climate


@dataclass(frozen=True)
class Climate:
    """Outdoor temperature of a temperate climate (degC); see the module docstring."""

    mean_c: float = 10.0
    amplitude_k: float = 8.0
    daily_swing_k: float = 6.0  # peak to peak
    coldest_doy: float = 15.0  # mid-January
    weather_k: float = 3.0
    seed: int = 1

    def seasonal(self, t: float) -> float:
        """The annual cycle plus the weather, without the daily swing (what buildings feel)."""
        doy = t / DAY
        # One uniform in [-1, 1] has standard deviation 1/sqrt(3); the daily and 4-day components
        # together, weighted 0.6 / 0.8, have about sqrt(3) * weather_k / sqrt(3) = weather_k.
        w = 0.6 * smooth_noise(self.seed, doy) + 0.8 * smooth_noise(self.seed + 7919, doy / 4.0)
        return (self.mean_c - self.amplitude_k * math.cos(2 * math.pi * (doy - self.coldest_doy) / 365.0)
                + self.weather_k * math.sqrt(3.0) * w)

    def __call__(self, t: float) -> float:
        return self.seasonal(t) + 0.5 * self.daily_swing_k * math.cos(2 * math.pi * (hour_of_day(t) - 15.0) / 24.0)


TEMPERATE = Climate()


# --------------------------------------------------------------------------- heat demand (W)


@dataclass(frozen=True)
class PoolDemand:
    """An indoor public pool: open 06-22 h, covers on at night; more heat in winter."""

    open_kw: float = 30.0
    closed_kw: float = 12.0
    seasonal_gain: float = 0.35
    open_h: tuple[float, float] = (6.0, 22.0)
    climate: Climate = TEMPERATE

    def is_open(self, t: float) -> bool:
        h = hour_of_day(t)
        return self.open_h[0] <= h < self.open_h[1]

    def __call__(self, t: float) -> float:
        c = self.climate
        factor = 1.0 + self.seasonal_gain * (c.mean_c - c.seasonal(t)) / c.amplitude_k
        base = self.open_kw if self.is_open(t) else self.closed_kw
        return max(base * factor, 0.0) * 1000.0


def _bump(hour: float, centre: float, width_h: float) -> float:
    """A Gaussian draw peak of height 1 at `centre` (hours), wrapping over midnight."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width_h) ** 2)


@dataclass(frozen=True)
class DhwDemand:
    """Domestic hot water of a block of flats or offices: morning and evening draw peaks."""

    peak_kw: float = 30.0
    base_kw: float = 3.0
    winter_gain: float = 0.15  # cold mains in winter: more heat per litre
    climate: Climate = TEMPERATE

    def __call__(self, t: float) -> float:
        h = hour_of_day(t)
        if is_weekend(t):
            shape = 0.8 * _bump(h, 9.5, 1.8) + 0.7 * _bump(h, 18.5, 2.0) + 0.3 * _bump(h, 13.0, 1.5)
        else:
            shape = _bump(h, 7.0, 1.0) + 0.85 * _bump(h, 19.0, 1.5)
        c = self.climate
        season = 1.0 + self.winter_gain * (c.mean_c - c.seasonal(t)) / c.amplitude_k
        return max((self.base_kw + (self.peak_kw - self.base_kw) * min(shape, 1.0)) * season, 0.0) * 1000.0


@dataclass(frozen=True)
class SpaceHeatingDemand:
    """Weather-compensated space heating: proportional to (base_c - outdoor) when positive."""

    design_kw: float = 40.0
    design_c: float = -8.0  # design outdoor temperature of a temperate site
    base_c: float = 15.5
    # Summer shutdown of the heating system (1 June - 31 August): the usual switch-over of a
    # weather-compensated controller, so that a cool July night does not start the heating.
    summer_off: tuple[float, float] = (151 * DAY, 243 * DAY)
    climate: Climate = TEMPERATE

    def __call__(self, t: float) -> float:
        if self.summer_off[0] <= t % YEAR_S < self.summer_off[1]:
            return 0.0
        deficit = self.base_c - self.climate(t)
        if deficit <= 0.0:
            return 0.0
        return min(self.design_kw * deficit / (self.base_c - self.design_c), 1.2 * self.design_kw) * 1000.0


@dataclass(frozen=True)
class DistrictDemand:
    """A district loop: a baseload plus weather-driven heating."""

    base_kw: float = 120.0
    per_k_kw: float = 12.0
    base_c: float = 15.5
    climate: Climate = TEMPERATE

    def __call__(self, t: float) -> float:
        return (self.base_kw + self.per_k_kw * max(self.base_c - self.climate(t), 0.0)) * 1000.0


# --------------------------------------------------------------------------- IT load (0..1)


@dataclass(frozen=True)
class SteadyLoad:
    """Batch computing: the same load day and night."""

    level: float = 0.85

    def __call__(self, t: float) -> float:
        return self.level


@dataclass(frozen=True)
class DiurnalLoad:
    """Inference serving people: busiest at 14:00, quietest at 02:00, lighter at weekends."""

    low: float = 0.35
    high: float = 0.9
    weekend_factor: float = 0.8

    def __call__(self, t: float) -> float:
        x = 0.5 + 0.5 * math.cos(2 * math.pi * (hour_of_day(t) - 14.0) / 24.0)
        v = self.low + (self.high - self.low) * x
        return v * self.weekend_factor if is_weekend(t) else v


@dataclass(frozen=True)
class BurstyLoad:
    """GPU jobs: a base load with bursts to `burst`; each `slot_s` slot bursts with a probability
    that is `day_p` in the daytime (08-20 h) and `night_p` at night, drawn from the seeded hash."""

    base: float = 0.3
    burst: float = 1.0
    slot_s: float = 900.0
    day_p: float = 0.6
    night_p: float = 0.25
    seed: int = 11

    def __call__(self, t: float) -> float:
        slot = int(t // self.slot_s)
        p = self.day_p if 8.0 <= hour_of_day(slot * self.slot_s) < 20.0 else self.night_p
        u = 0.5 * (unit_hash(self.seed, slot) + 1.0)
        return self.burst if u < p else self.base


# --------------------------------------------------------------------------- user CSV profiles

# Unit in a column header -> (quantity, factor to the base unit: W, degC, fraction).
CSV_UNITS: dict[str, tuple[str, float]] = {
    "W": ("power", 1.0), "kW": ("power", 1e3), "MW": ("power", 1e6),
    "degC": ("temperature", 1.0),
    "fraction": ("fraction", 1.0), "pct": ("fraction", 0.01), "%": ("fraction", 0.01),
}
_HEADER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*(?:_|\[|\()\s*([A-Za-z%]+)\s*[\])]?\s*$")


class ProfileError(ValueError):
    """A CSV profile that cannot be used: one line per problem, `file:row: message`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class CsvProfile:
    """A measured series, linearly interpolated; before the first and after the last sample the end
    values hold. Values are in the base unit of their quantity (W, degC, fraction 0..1)."""

    name: str
    quantity: str
    times_s: tuple[float, ...]
    values: tuple[float, ...]
    source: str = ""
    periodic_s: float | None = field(default=None)

    def __call__(self, t: float) -> float:
        ts, vs = self.times_s, self.values
        if self.periodic_s:
            t = ts[0] + (t - ts[0]) % self.periodic_s
        if t <= ts[0]:
            return vs[0]
        if t >= ts[-1]:
            return vs[-1]
        i = bisect.bisect_right(ts, t)
        t0, t1 = ts[i - 1], ts[i]
        return vs[i - 1] + (vs[i] - vs[i - 1]) * (t - t0) / (t1 - t0)


def parse_value_header(header: str) -> tuple[str, str] | None:
    """'demand_kW' / 'demand [kW]' / 'demand (kW)' -> ('demand', 'kW'); None if no unit is given."""
    m = _HEADER.match(header)
    if not m:
        return None
    return m.group(1).strip(), m.group(2)


def load_csv_profile(path: str | Path, column: str | None = None, max_gap_s: float = 3 * H,
                     periodic_s: float | None = None) -> CsvProfile:
    """Load and validate a CSV profile.

    The file needs a time column, `time_s` (seconds from 1 January 00:00) or `time` (ISO 8601,
    counted from 1 January 00:00 of the first row's year), and a value column whose header carries
    its unit (`demand_kW`, `outdoor [degC]`, `it_load (pct)`; units: CSV_UNITS). With several value
    columns, `column` picks one by name. Times must increase strictly, with no gap longer than
    `max_gap_s`. Raises ProfileError with every problem found, each as `file:row: message`.
    """
    path = Path(path)
    problems: list[str] = []
    where = lambda row: f"{path}:{row}"  # noqa: E731
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ProfileError([f"{path}:0: cannot read: {exc.strerror or exc}"]) from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(c.strip() for c in rows[0]):
        raise ProfileError([f"{where(1)}: empty file; expected a header with a time column and a value column"])
    header = [c.strip() for c in rows[0]]
    if "time_s" in header:
        t_col, iso = header.index("time_s"), False
    elif "time" in header:
        t_col, iso = header.index("time"), True
    else:
        raise ProfileError([f"{where(1)}: no time column; expected 'time_s' (seconds) or 'time' (ISO 8601)"])
    candidates = [(i, h) for i, h in enumerate(header) if i != t_col]
    if column is not None:
        chosen = [(i, h) for i, h in candidates if h == column or (parse_value_header(h) or ("",))[0] == column]
        if not chosen:
            raise ProfileError([f"{where(1)}: no value column {column!r}; columns: {', '.join(h for _, h in candidates)}"])
    else:
        chosen = candidates
        if len(chosen) != 1:
            raise ProfileError([f"{where(1)}: expected one value column (or name one), got "
                                f"{len(chosen)}: {', '.join(h for _, h in chosen) or 'none'}"])
    v_col, v_head = chosen[0]
    parsed = parse_value_header(v_head)
    if parsed is None:
        raise ProfileError([f"{where(1)}: value column {v_head!r} has no unit; write it as name_UNIT or "
                            f"name [UNIT] with UNIT one of {', '.join(CSV_UNITS)}"])
    name, unit = parsed
    if unit not in CSV_UNITS:
        raise ProfileError([f"{where(1)}: unknown unit {unit!r} in column {v_head!r}; expected one of "
                            f"{', '.join(CSV_UNITS)}"])
    quantity, factor = CSV_UNITS[unit]

    times: list[float] = []
    values: list[float] = []
    year0: int | None = None
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) <= max(t_col, v_col):
            problems.append(f"{where(n)}: expected {len(header)} columns, got {len(row)}")
            continue
        raw_t, raw_v = row[t_col].strip(), row[v_col].strip()
        try:
            if iso:
                dt = datetime.fromisoformat(raw_t)
                if year0 is None:
                    year0 = dt.year
                start = datetime(year0, 1, 1, tzinfo=dt.tzinfo or None)
                t = (dt - start).total_seconds()
            else:
                t = float(raw_t)
                if not math.isfinite(t):
                    raise ValueError
        except ValueError:
            problems.append(f"{where(n)}: time {raw_t!r} is not "
                            f"{'an ISO 8601 date-time' if iso else 'a number of seconds'}")
            continue
        try:
            v = float(raw_v)
            if not math.isfinite(v):
                raise ValueError
        except ValueError:
            problems.append(f"{where(n)}: value {raw_v!r} in column {v_head!r} is not a finite number")
            continue
        if times:
            if t <= times[-1]:
                problems.append(f"{where(n)}: time {raw_t} is not after the previous row's; times must increase")
                continue
            if t - times[-1] > max_gap_s:
                problems.append(f"{where(n)}: gap of {t - times[-1]:g} s since the previous row, longer than "
                                f"the allowed {max_gap_s:g} s")
        if quantity == "power" and v < 0:
            problems.append(f"{where(n)}: negative power {raw_v} {unit}")
        if quantity == "fraction" and not 0.0 <= v * factor <= 1.0:
            problems.append(f"{where(n)}: {raw_v} {unit} is outside 0..{'100' if factor != 1.0 else '1'}")
        times.append(t)
        values.append(v * factor)
    if not problems and len(times) < 2:
        problems.append(f"{where(len(rows))}: expected at least two rows of data, got {len(times)}")
    if problems:
        raise ProfileError(problems)
    return CsvProfile(name, quantity, tuple(times), tuple(values), str(path), periodic_s)


__all__ = [
    "Climate", "TEMPERATE", "PoolDemand", "DhwDemand", "SpaceHeatingDemand", "DistrictDemand",
    "SteadyLoad", "DiurnalLoad", "BurstyLoad", "CsvProfile", "ProfileError", "load_csv_profile",
    "MONTH_DAYS", "MONTH_NAMES", "MONTH_START_S", "YEAR_S", "DAY", "H", "month_of", "day_start_s",
    "is_weekend", "hour_of_day", "unit_hash",
]
