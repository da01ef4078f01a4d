"""The core's fast path held to its plain definition: `validate` to `check_point` per point and tick.
Random sequences of readings (good, repeated, jumping, out of range, NaN, stale, future, lost,
missing) through both."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.readings import Quality, Reading, Snapshot
from controller.core.validation import GOOD_HISTORY, PointLimits, check_point, validate

LIMITS = {
    "plain": PointLimits(0.0, 90.0, 3.0, None, None),
    "rated": PointLimits(0.0, 90.0, 3.0, None, 2.0),
    "frozen": PointLimits(0.0, 90.0, 3.0, 5.0, 2.0),
}

value = st.one_of(st.floats(-10, 100, allow_nan=False), st.sampled_from([40.0, 40.0, 41.0, math.nan, math.inf]))
sample = st.tuples(
    # None: missing; "again": the previous tick's Reading object once more (a driver reusing an
    # unchanged sample, as the OPC-UA driver does).
    st.one_of(st.none(), st.just("again"), value),                      # None: the point is missing from the snapshot
    st.sampled_from([0.0, 0.0, 0.0, -1.0, -5.0, 1.0]),  # reading age offset: 0 fresh, -5 stale, +1 future
    st.sampled_from([Quality.GOOD] * 4 + [Quality.LOST, Quality.UNCERTAIN]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(sample, sample, sample), min_size=1, max_size=25),
       st.sampled_from([0.5, 1.0, 2.0]))
def test_validate_agrees_with_check_point_on_every_point_and_tick(ticks, step_s):
    hist_fast: dict = {}
    readings: dict = {}
    hist_plain = {n: GOOD_HISTORY for n in LIMITS}
    for k, row in enumerate(ticks):
        now = k * step_s
        prev, readings = readings if k else {}, {}
        for name, (v, age, q) in zip(LIMITS, row):
            if v == "again":
                if name in prev:
                    readings[name] = prev[name]
            elif v is not None:
                readings[name] = Reading(v, "degC", now + age, q, "" if q is Quality.GOOD else "test")
        before, slow = hist_fast, []
        checked, hist_fast = validate(LIMITS, Snapshot(now, readings), hist_fast, now, slow=slow)
        # What the step skips for events: good now, after a good sample.
        for name in set(LIMITS) - set(slow):
            was_bad = before.get(name, GOOD_HISTORY).bad_since is not None
            assert checked[name].good != was_bad, (name, k)
        for name, cfg in LIMITS.items():
            c, hist_plain[name] = check_point(name, cfg, readings.get(name), hist_plain[name], now)
            assert _same(checked[name], c), (name, k)
            assert _same(hist_fast[name], hist_plain[name]), (name, k)


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN (a NaN sample is kept as nobody's last value, but be safe)."""
    return type(a) is type(b) and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(_fields(a), _fields(b)))


def _fields(o):
    return [getattr(o, s) for s in type(o).__slots__]


def test_good_readings_are_the_readings_the_constructor_builds():
    from controller.core.readings import good_readings

    values, units = {"a": 1.5, "b": -2.0, "c": 0.0}, {"a": "degC", "b": "kW", "c": "%"}
    fast = good_readings(values, units, 12.0)
    assert fast == {n: Reading(v, units[n], 12.0) for n, v in values.items()}
    assert all(type(r) is Reading and r.good for r in fast.values())


# --- A simulated plant's tick: validate on SampledReadings against the same readings built ------

sampled_value = st.one_of(st.none(), st.floats(-10, 100, allow_nan=False),
                          st.sampled_from([40.0, 40.0, 41.0, 90.0, 90.5, math.nan, math.inf, -math.inf]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.tuples(sampled_value, sampled_value, sampled_value),
                          st.sampled_from([0.0, 0.0, -1.0, -5.0, 1.0])), min_size=1, max_size=25),
       st.sampled_from([0.5, 1.0, 2.0]))
def test_validate_on_sampled_readings_is_validate_on_built_readings(ticks, step_s):
    """SampledReadings (every value GOOD at one instant, Readings built only on demand) gives the
    verdicts, the history and the slow list that the same readings built one by one give; a point
    missing from the values is missing (None in the tuple), NaN and inf take the slow path."""
    from controller.core.readings import SampledReadings, good_readings

    units = {n: "degC" for n in LIMITS}
    hist_sampled: dict = {}
    hist_built: dict = {}
    for k, (row, age) in enumerate(ticks):
        now = k * step_s
        values = {n: v for n, v in zip(LIMITS, row) if v is not None}
        built = good_readings(values, units, now + age)
        sampled = SampledReadings(values, units, now + age)
        assert dict(sampled) == built and len(sampled) == len(built)
        assert all(sampled.get(n) == built.get(n) for n in LIMITS) and sampled.get("nowhere") is None
        slow_s: list = []
        slow_b: list = []
        checked_s, hist_sampled = validate(LIMITS, Snapshot(now, sampled), hist_sampled, now, slow=slow_s)
        checked_b, hist_built = validate(LIMITS, Snapshot(now, built), hist_built, now, slow=slow_b)
        assert slow_s == slow_b, k
        for name in LIMITS:
            assert _same(checked_s[name], checked_b[name]), (name, k)
            assert _same(hist_sampled[name], hist_built[name]), (name, k)


# --- NE 107: Alarms._ne107's fast path against ne107_class, point by point -------------------------

def _ne107_site():
    from tests.step_helpers import REFERENCE
    from controller.site.loader import parse_config_text
    return parse_config_text(REFERENCE.read_text(), "reference").site


_ALARMS = None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ne107_fast_path_agrees_with_ne107_class(data):
    from controller.core.alarms import AlarmInputs, Alarms, AlarmsState, ne107_class
    from controller.core.validation import Checked

    global _ALARMS
    if _ALARMS is None:
        _ALARMS = Alarms(_ne107_site())
    alarms = _ALARMS
    names = list(alarms.site.points)
    drivers = sorted({d for d in alarms.point_driver.values()})
    verdict = st.one_of(
        st.none(), st.just(Checked(40.0, True, "", 0.0)), st.just(Checked(40.0, True, "", 0.0)),
        st.sampled_from([Checked(None, False, r, 3.0) for r in (
            "lost: timeout", "uncertain: sensor check", "out_of_range (99 not in [0, 90])", "stale (9 s old)",
            "frozen (unchanged for 60 s)", "rate (3/s > 2/s)", "nan", "missing", "bad: device")]))
    state = AlarmsState()
    for k in range(data.draw(st.integers(1, 4))):
        now = 1000.0 * k
        inp = AlarmInputs(
            checked={n: c for n in names if (c := data.draw(verdict)) is not None},
            drivers_down=frozenset(data.draw(st.lists(st.sampled_from(drivers), max_size=2))),
            driver_reconnects={d: data.draw(st.integers(0, 12)) for d in drivers},
            function_check=frozenset(data.draw(st.lists(st.sampled_from(names), max_size=3))))
        fast, uncertain_at, reconnects, seen = alarms._ne107(state, inp, now)
        # The plain definition on the same inputs, point by point, in the config's order.
        from controller.core.alarms import MAINTENANCE_RECONNECTS, MAINTENANCE_WINDOW_S
        flaky = {d for d, h in reconnects.items() if sum(n for _, n in h) > MAINTENANCE_RECONNECTS}
        plain_uncertain = {p: t for p, t in state.uncertain_at.items() if t > now - MAINTENANCE_WINDOW_S}
        plain = {n: ne107_class(n, n in alarms.readings, alarms.point_driver.get(n), inp.checked.get(n), inp,
                                plain_uncertain, flaky, now) for n in names}
        assert list(fast.items()) == list(plain.items())
        assert uncertain_at == plain_uncertain
        state = AlarmsState(uncertain_at=uncertain_at, reconnects=reconnects, reconnects_seen=seen, ne107=fast)
