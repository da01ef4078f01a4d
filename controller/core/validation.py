"""Reading validation: decide each tick which readings may be used, and since when they are bad.

Checks, in order: missing, quality from the driver, NaN/inf, out of the valid range, stale (older
than max_age_s), frozen (unchanged longer than frozen_after_s, for points that must move), and an
implausible rate of change (faster than max_rate_per_s against the previous sample). A reading that
fails any check is never used as if good; the step decides what to do without it.

Pure: the previous `PointHistory` per point comes in, the new one goes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from controller.site.models import PointConfig
from controller.core.readings import Quality, Reading, SampledReadings, Snapshot


@dataclass(frozen=True, slots=True)
class PointHistory:
    """What validation remembers about one point between ticks."""

    last_value: float | None = None
    last_ts: float | None = None
    # When the value last changed (for the frozen check).
    changed_at: float | None = None
    # When the point first went bad in the current bad spell (None: good now).
    bad_since: float | None = None
    last_reason: str = ""


@dataclass(frozen=True, slots=True)
class Checked:
    """One point's verdict this tick. `value` is None unless `good`."""

    value: float | None
    good: bool
    reason: str
    bad_for_s: float


GOOD_HISTORY = PointHistory()


@dataclass(frozen=True, slots=True)
class PointLimits:
    """A point's validation limits as plain floats (pydantic attribute access is slow per tick)."""

    lo: float
    hi: float
    max_age_s: float
    frozen_after_s: float | None
    max_rate_per_s: float | None

    @staticmethod
    def of(cfg: PointConfig) -> "PointLimits":
        return PointLimits(cfg.range[0], cfg.range[1], cfg.max_age_s, cfg.frozen_after_s, cfg.max_rate_per_s)


def check_point(name: str, cfg: PointConfig | PointLimits, reading: Reading | None, hist: PointHistory,
                now: float) -> tuple[Checked, PointHistory]:
    """One point's checks, plainly written: the definition of what validation decides. `validate`
    runs a fast path for the common case (a good reading) and this for everything else; the
    tests hold the fast path to this function's results."""
    if not isinstance(cfg, PointLimits):
        cfg = PointLimits.of(cfg)
    reason = ""
    value = None if reading is None else reading.value
    ts = None if reading is None else reading.ts
    if reading is None:
        reason = "missing"
    elif reading.quality is not Quality.GOOD:
        reason = reading.reason or reading.quality.value
        if reading.quality is not Quality.LOST and not reason.startswith(reading.quality.value):
            reason = f"{reading.quality.value}: {reason}"
    elif value is None or not math.isfinite(value):
        reason = "nan"
    elif not cfg.lo <= value <= cfg.hi:
        reason = f"out_of_range ({value:g} not in [{cfg.lo:g}, {cfg.hi:g}])"
    elif now - reading.ts > cfg.max_age_s:
        reason = f"stale ({now - reading.ts:.1f} s old, max {cfg.max_age_s:g} s)"

    changed_at = hist.changed_at
    if not reason and value is not None:
        # Unknown since when it holds this value (first sample, or only bad samples so far, which
        # do not start the frozen clock): the frozen clock starts now.
        if hist.last_value is None or value != hist.last_value or changed_at is None:
            changed_at = ts
        if cfg.frozen_after_s is not None and changed_at is not None and ts is not None \
                and ts - changed_at >= cfg.frozen_after_s:
            reason = f"frozen (unchanged for {ts - changed_at:.0f} s)"
        elif cfg.max_rate_per_s is not None and hist.last_value is not None and hist.last_ts is not None \
                and ts is not None and ts > hist.last_ts:
            # Against the previous sample, good or not: a single jump is rejected once, and a
            # real step change (a sensor replaced) is accepted from the next sample on.
            rate = abs(value - hist.last_value) / (ts - hist.last_ts)
            if rate > cfg.max_rate_per_s:
                reason = f"rate ({rate:.2f}/s > {cfg.max_rate_per_s:g}/s)"

    good = not reason
    bad_since = None if good else (hist.bad_since if hist.bad_since is not None else now)
    new_hist = PointHistory(
        last_value=value if (value is not None and math.isfinite(value)) else hist.last_value,
        last_ts=ts if (value is not None and ts is not None) else hist.last_ts,
        changed_at=changed_at,
        bad_since=bad_since,
        last_reason=reason,
    )
    checked = Checked(
        value=value if good else None,
        good=good,
        reason=reason,
        bad_for_s=0.0 if good else now - bad_since,  # type: ignore[operator]
    )
    return checked, new_hist


# Building a frozen, slotted dataclass through its __init__ costs one object.__setattr__ per field,
# which dominated the step's profile (two objects per point per tick). These set the same slots
# through their descriptors: the same objects (equal, frozen, same type), made ~3x faster.
_new = object.__new__
_C_VALUE, _C_GOOD, _C_REASON, _C_BAD = (Checked.value.__set__, Checked.good.__set__,  # type: ignore[attr-defined]
                                        Checked.reason.__set__, Checked.bad_for_s.__set__)  # type: ignore[attr-defined]
_H_VALUE, _H_TS, _H_CHANGED, _H_BAD, _H_REASON = (
    PointHistory.last_value.__set__, PointHistory.last_ts.__set__,  # type: ignore[attr-defined]
    PointHistory.changed_at.__set__, PointHistory.bad_since.__set__,  # type: ignore[attr-defined]
    PointHistory.last_reason.__set__)  # type: ignore[attr-defined]
_GOOD, _LOST = Quality.GOOD, Quality.LOST


def validate(points: Mapping[str, PointConfig | PointLimits], snapshot: Snapshot,
             history: Mapping[str, PointHistory], now: float,
             names: tuple[str, ...] | None = None, slow: list[str] | None = None
             ) -> tuple[dict[str, Checked], dict[str, PointHistory]]:
    """Check every reading point (or `names`); return verdicts and the new history. `slow`, if
    given, gets the names that took check_point, in order: every other point was good after a good
    sample, or lost again for the same reason, so the step looks only at these for reading_bad /
    reading_recovered events."""
    checked: dict[str, Checked] = {}
    new_history: dict[str, PointHistory] = {}
    readings = snapshot.readings
    hist_get = history.get
    # A simulated plant's tick (every value GOOD at one instant): the values are read directly,
    # and a Reading is built only for a point that leaves the fast path.
    sampled = type(readings) is SampledReadings
    if sampled:
        values_get = readings.values.get  # type: ignore[attr-defined]
        sampled_ts = readings.ts  # type: ignore[attr-defined]
    reading: Reading | None = None
    for name in names if names is not None else points:
        cfg = points[name]
        hist = hist_get(name, GOOD_HISTORY)
        if sampled:
            v = values_get(name)
            ts = sampled_ts
            good_quality = v is not None
        else:
            reading = readings.get(name)
            if reading is not None:
                v, ts = reading.value, reading.ts
                good_quality = reading.quality is _GOOD
            else:
                good_quality = False
        # The fast path: a good, fresh, in-range reading, changing no faster than its rate limit
        # and not frozen, after a good one: check_point's results for that case
        # (tests/test_core_fast_paths.py holds the two together); anything else takes check_point.
        # NaN fails the range comparison, so it takes check_point.
        if good_quality and hist.bad_since is None and type(cfg) is PointLimits:
            if v is not None:
                rate = cfg.max_rate_per_s
                last = hist.last_value
                rate_ok = True
                if rate is not None and last is not None:
                    # check_point compares rates only against an older sample: the same sample
                    # again (a driver that reuses an unchanged reading) passes.
                    dt_r = ts - hist.last_ts  # type: ignore[operator]
                    rate_ok = dt_r <= 0 or abs(v - last) <= rate * dt_r
                changed = hist.changed_at
                if not (v == last and changed is not None):
                    changed = ts
                frozen_after = cfg.frozen_after_s
                if (rate_ok and cfg.lo <= v <= cfg.hi and now - ts <= cfg.max_age_s
                        and (frozen_after is None or ts - changed < frozen_after)):
                    c = _new(Checked)
                    _C_VALUE(c, v)
                    _C_GOOD(c, True)
                    _C_REASON(c, "")
                    _C_BAD(c, 0.0)
                    checked[name] = c
                    if ts == hist.last_ts and v == last and changed == hist.changed_at:
                        # The same sample as last tick (an unchanged OPC-UA value): the history
                        # is unchanged, the same (frozen) object serves.
                        new_history[name] = hist
                        continue
                    h = _new(PointHistory)
                    _H_VALUE(h, v)
                    _H_TS(h, ts)
                    _H_CHANGED(h, changed)
                    _H_BAD(h, None)
                    _H_REASON(h, "")
                    new_history[name] = h
                    continue
        elif (not sampled and reading is not None and reading.quality is _LOST and reading.value is None
              and hist.bad_since is not None and (reading.reason or "lost") == hist.last_reason):
            # Still lost, for the same reason (a driver that is down: hundreds of points a tick):
            # check_point would return this verdict and an equal history, so the same one serves.
            c = _new(Checked)
            _C_VALUE(c, None)
            _C_GOOD(c, False)
            _C_REASON(c, hist.last_reason)
            _C_BAD(c, now - hist.bad_since)
            checked[name] = c
            new_history[name] = hist
            continue
        if sampled:
            reading = readings.get(name)
        c, h = check_point(name, cfg, reading, hist, now)
        checked[name] = c
        new_history[name] = h
        if slow is not None:
            slow.append(name)
    return checked, new_history
