"""drivers.backoff.Backoff as a table, retry_text, and drivers.base.put_readings."""

from __future__ import annotations

import math

import pytest

from controller.core.readings import Quality, Reading
from drivers.backoff import Backoff
from drivers.base import retry_text

# (action, now, expected delay returned or None, ready at `now` after the action, wait_s, failures)
TABLE = [
    ("ready", 0.0, None, True, 0.0, 0),
    ("failure", 0.0, 0.5, False, 0.5, 1),
    ("ready", 0.4, None, False, pytest.approx(0.1), 1),
    ("failure", 0.5, 1.0, False, 1.0, 2),
    ("failure", 1.5, 2.0, False, 2.0, 3),
    ("failure", 3.5, 4.0, False, 4.0, 4),
    ("failure", 7.5, 5.0, False, 5.0, 5),   # capped at max_s
    ("failure", 12.5, 5.0, False, 5.0, 6),
    ("ready", 17.5, None, True, 0.0, 6),
    ("success", 17.5, None, True, 0.0, 0),
    ("failure", 18.0, 0.5, False, 0.5, 1),  # back to min_s after a success
]


def test_backoff_table():
    b = Backoff(0.5, 5.0)
    for action, now, delay, ready, wait, failures in TABLE:
        if action == "failure":
            assert b.failure(now) == delay, (action, now)
        elif action == "success":
            b.success()
        assert b.ready(now) is ready, (action, now)
        assert b.wait_s(now) == wait, (action, now)
        assert b.failures == failures, (action, now)
    assert b.next_at == 18.5


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_refuses_bounds_that_cannot_work(lo, hi):
    with pytest.raises(ValueError, match="min_s"):
        Backoff(lo, hi)


def test_fresh_backoff_allows_an_attempt_at_any_time():
    assert Backoff(1.0, 2.0).ready(-math.inf + 1) and Backoff(1.0, 2.0).wait_s(0.0) == 0.0


@pytest.mark.parametrize("wait,text", [(0.0, "next try now"), (-1.0, "next try now"),
                                       (0.25, "next try in 0.25 s"), (12.34, "next try in 12.3 s")])
def test_retry_text(wait, text):
    assert retry_text(wait) == text


def test_put_readings_is_the_plain_constructor_per_point():
    import math as _m

    from drivers.base import put_readings

    out: dict = {}
    put_readings(out, ["a", "b", "c"], ["degC", "W", "pct"], [1.5, _m.nan, -_m.inf], 7.0)
    assert out["a"] == Reading(1.5, "degC", 7.0)
    assert out["b"].quality is Quality.BAD and out["b"].reason == "not_finite" and _m.isnan(out["b"].value)
    assert out["c"] == Reading(-_m.inf, "pct", 7.0, Quality.BAD, "not_finite")
