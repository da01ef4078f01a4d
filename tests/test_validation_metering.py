"""Reading validation per point, loop wind-up, and heat metering against hand-computed values."""

from __future__ import annotations

import math

import pytest

from controller.site.models import PointConfig
from controller.core.metering import EnergyCounters, HeatFlows, integrate
from controller.core.readings import Quality, Reading
from controller.core.requests import OverrideRequest
from controller.core.validation import GOOD_HISTORY, check_point
from controller.core.water import cp_j_per_kg_k, density_kg_m3, heat_flow_w
from tests.step_helpers import make_controller, snap

TEMP = PointConfig(unit="degC", range=(0.0, 90.0), max_age_s=3.0, frozen_after_s=60.0, max_rate_per_s=2.0)


def run_point(samples):
    """samples: (now, reading) pairs -> list of Checked."""
    hist, out = GOOD_HISTORY, []
    for now, reading in samples:
        c, hist = check_point("t", TEMP, reading, hist, now)
        out.append(c)
    return out


def r(v, ts, q=Quality.GOOD):
    return Reading(v, "degC", ts, q, "" if q is Quality.GOOD else "x")


def test_frozen_reading_is_bad_after_its_limit_and_good_when_it_moves():
    samples = [(t, r(40.0, t)) for t in range(0, 62)] + [(62, r(40.5, 62))]
    out = run_point(samples)
    assert all(c.good for c in out[:60])
    assert not out[60].good and out[60].reason.startswith("frozen")
    assert out[-1].good


def test_stale_missing_nan_range_quality():
    out = run_point([(0, r(40.0, 0)), (4, r(40.0, 0.5)), (5, None), (6, r(math.nan, 6)),
                     (7, r(95.0, 7)), (8, r(40.0, 8, Quality.UNCERTAIN)), (9, r(40.5, 9))])
    assert [c.good for c in out] == [True, False, False, False, False, False, True]
    assert out[1].reason.startswith("stale") and out[2].reason == "missing" and out[3].reason == "nan"
    assert out[4].reason.startswith("out_of_range") and out[5].reason.startswith("uncertain")
    assert out[5].bad_for_s == 4.0  # bad since t=4, one spell


def test_rate_limit_against_previous_sample():
    out = run_point([(0, r(40.0, 0)), (1, r(41.9, 1)), (2, r(45.0, 2)), (3, r(46.0, 3))])
    assert [c.good for c in out] == [True, True, False, True]


def test_water_properties_and_heat_flow():
    assert density_kg_m3(40.0) == pytest.approx(992.22, abs=0.01)
    assert cp_j_per_kg_k(40.0) == pytest.approx(4179.6, abs=0.1)
    # 3.6 m3/h at 30 degC: 995.65 kg/m3 -> 0.99565 kg/s; dT 10 K at c_p(35) = 4179.85.
    expected = 3.6 / 3600 * 995.65 * (4180.1 + 4179.6) / 2 * 10.0
    assert heat_flow_w(3.6, 40.0, 30.0) == pytest.approx(expected, rel=1e-6)


def test_integration_and_unmetered_gap():
    f = HeatFlows(it_w=30000.0, captured_w=25000.0, transferred_w=24000.0, delivered_w=20000.0,
                  to_tank_w=-1000.0, dumped_w=3000.0, boiler_w=0.0, aux_w=1000.0, tank_soc=0.5)
    e = integrate(EnergyCounters(), f, 2.0, max_gap_s=10.0)
    assert (e.it_j, e.delivered_j, e.stored_out_j, e.stored_in_j, e.aux_j) == (60000.0, 40000.0, 2000.0, 0.0, 2000.0)
    assert e.erf == pytest.approx(40000.0 / 62000.0)
    e2 = integrate(e, f, 30.0, max_gap_s=10.0)  # a stall: counted as unmetered, not extrapolated
    assert e2.it_j == e.it_j and e2.unmetered_s == 30.0


def test_no_windup_while_saturated():
    ctrl = make_controller()
    st = ctrl.initial_state(0.0)
    # IT dT far above its setpoint for 10 minutes: P1 saturates at 100 %.
    for t in range(0, 600):
        st = ctrl.step(st, snap(ctrl.site, t, it_return_temp=50.0), [], float(t)).state
    assert st.outputs["p1_speed"] == 100.0
    # dT drops below the setpoint: the output leaves saturation at once (no integral to unwind).
    res = None
    for t in range(600, 620):
        res = ctrl.step(st, snap(ctrl.site, t, it_return_temp=38.5), [], float(t))
        st = res.state
    assert st.outputs["p1_speed"] < 100.0 - 4 * ctrl.site.loops.it_delta_t.rate_down_per_s


def test_no_windup_while_overridden():
    ctrl = make_controller()
    st = ctrl.initial_state(0.0)
    st = ctrl.step(st, snap(ctrl.site, 0), [], 0.0).state
    st = ctrl.step(st, snap(ctrl.site, 1, it_return_temp=50.0),
                   [OverrideRequest(reason="pump test", point="p1_speed", value=30.0, duration_s=900)], 1.0).state
    for t in range(2, 900):
        st = ctrl.step(st, snap(ctrl.site, t, it_return_temp=50.0), [], float(t)).state
    integral = st.loops["it_delta_t"].pid.components[1]
    # Tracking keeps the integral where the applied 30 % puts it, not wound up to the limit.
    assert integral < 40.0


def test_a_coarse_tick_is_metered_not_counted_as_gaps():
    from controller.core.step import Controller
    from tests.step_helpers import reference_site
    site = reference_site().model_copy(update={"tick_period_s": 60.0})
    ctrl = Controller(site)
    st = ctrl.initial_state(0.0)
    for t in (0.0, 60.0, 120.0):
        st = ctrl.step(st, snap(site, t, consumer_heat=20000.0, dump_heat=0.0, boiler_heat=0.0,
                                aux_power=1000.0), [], t).state
    assert st.energy.unmetered_s == 0.0
    assert st.energy.delivered_j == pytest.approx(20000.0 * 120.0)
    assert st.energy.it_j == pytest.approx(32000.0 * 120.0)


def test_frozen_clock_starts_when_a_value_first_comes_good():
    # The sensor's first samples come LOST but carry a value; then it sends that value, good,
    # for ever. The frozen clock starts at the first good sample (found by the property test in
    # test_core_fast_paths.py: before, it never started and the frozen check was off).
    lost = [(t, r(40.0, t, Quality.LOST)) for t in (0, 1)]
    samples = lost + [(t, r(40.0, t)) for t in range(2, 64)]
    out = run_point(samples)
    assert all(c.good for c in out[2:62])
    assert not out[62].good and out[62].reason.startswith("frozen")
