"""Year profiles: shapes that the formulas promise, reproducibility, and the CSV loader's one-line errors."""

from __future__ import annotations

import statistics

import pytest

from simulations.scenarios.profiles import (DAY, H, TEMPERATE, BurstyLoad, Climate, DhwDemand, DiurnalLoad, DistrictDemand,
                                  PoolDemand, ProfileError, SpaceHeatingDemand, day_start_s, load_csv_profile,
                                  month_of)

HOURS = [i * H for i in range(8760)]


def test_climate_is_temperate_coldest_in_january_and_warmest_mid_afternoon():
    temps = [TEMPERATE(t) for t in HOURS]
    assert 9.0 < statistics.mean(temps) < 11.0
    monthly = [statistics.mean(T for t, T in zip(HOURS, temps) if month_of(t) == m) for m in range(12)]
    assert monthly.index(min(monthly)) in (0, 1, 11) and monthly.index(max(monthly)) in (6, 7)
    assert 12.0 < max(monthly) - min(monthly) < 20.0
    day = day_start_s(4, 1)
    hourly = [TEMPERATE(day + h * H) - TEMPERATE.seasonal(day + h * H) for h in range(24)]
    assert hourly.index(max(hourly)) == 15 and max(hourly) - min(hourly) == pytest.approx(6.0, abs=0.01)


def test_weather_is_reproducible_and_varies_with_the_seed():
    assert [TEMPERATE(t) for t in HOURS[:500]] == [Climate()(t) for t in HOURS[:500]]
    other = Climate(seed=2)
    assert any(abs(TEMPERATE(t) - other(t)) > 1.0 for t in HOURS[:500])
    # Day-to-day weather has a few kelvin of spread around the annual cycle.
    resid = [TEMPERATE.seasonal(t) - (10 - 8 * __import__("math").cos(2 * 3.14159265 * (t / DAY - 15) / 365))
             for t in HOURS]
    assert 1.5 < statistics.pstdev(resid) < 5.0


def test_pool_is_closed_at_night_and_takes_more_in_winter():
    pool = PoolDemand(open_kw=30, closed_kw=12)
    jan, jul = day_start_s(1, 15), day_start_s(7, 15)
    assert pool(jan + 3 * H) < 0.5 * pool(jan + 12 * H)  # covers on at night
    assert not pool.is_open(jan + 23 * H) and pool.is_open(jan + 6 * H)
    assert pool(jan + 12 * H) > pool(jul + 12 * H) * 1.3


def test_no_space_heating_in_july_and_most_in_january():
    sh = SpaceHeatingDemand(design_kw=40)
    july = [sh(t) for t in HOURS if month_of(t) == 6]
    assert max(july) == 0.0
    jan = statistics.mean(sh(t) for t in HOURS if month_of(t) == 0)
    assert 15000 < jan < 40000
    assert max(sh(t) for t in HOURS) <= 1.2 * 40000


def test_dhw_peaks_morning_and_evening_on_weekdays_later_at_weekends():
    dhw = DhwDemand(peak_kw=30, base_kw=3)
    monday = day_start_s(3, 2)  # day 60: a Thursday is fine, any weekday
    assert int(monday // DAY) % 7 < 5
    day = [dhw(monday + h * H) for h in range(24)]
    assert day.index(max(day)) == 7
    assert max(day[17:22]) > 0.7 * max(day) and day[3] < 0.2 * max(day)
    saturday = monday + (5 - int(monday // DAY) % 7) * DAY
    we = [dhw(saturday + h * H) for h in range(24)]
    assert we.index(max(we)) in (9, 10)


def test_district_and_it_load_profiles():
    d = DistrictDemand(base_kw=100, per_k_kw=10)
    assert min(d(t) for t in HOURS) >= 100000
    assert statistics.mean(d(t) for t in HOURS if month_of(t) == 0) > statistics.mean(d(t) for t in HOURS if month_of(t) == 6)
    inf = DiurnalLoad(low=0.3, high=0.9)
    assert inf(day_start_s(3, 2) + 14 * H) == pytest.approx(0.9) and inf(day_start_s(3, 2) + 2 * H) == pytest.approx(0.3)
    b = BurstyLoad()
    week = [b(t) for t in range(0, 7 * 86400, 300)]
    assert set(week) == {b.base, b.burst}
    assert 0.3 < sum(v == b.burst for v in week) / len(week) < 0.6
    assert week == [BurstyLoad()(t) for t in range(0, 7 * 86400, 300)]


# --- CSV profiles -------------------------------------------------------------------------------


def write(tmp_path, text, name="p.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_profile_loads_seconds_and_iso_with_units(tmp_path):
    p = load_csv_profile(write(tmp_path, "time_s,demand_kW\n0,10\n3600,20\n7200,30\n"))
    assert p.quantity == "power" and p(1800) == pytest.approx(15000.0) and p(99999) == 30000.0
    q = load_csv_profile(write(tmp_path, "time,outdoor [degC]\n2025-01-01T00:00,1.5\n2025-01-01T01:00,2.5\n", "q.csv"))
    assert q.name == "outdoor" and q.times_s == (0.0, 3600.0) and q(1800) == pytest.approx(2.0)
    r = load_csv_profile(write(tmp_path, "time_s,it_load (pct),note_W\n0,50,1\n60,100,2\n", "r.csv"), column="it_load")
    assert r.values == (0.5, 1.0)


@pytest.mark.parametrize("text, expected", [
    ("", "p.csv:1: empty file"),
    ("when,demand_kW\n0,1\n", "p.csv:1: no time column"),
    ("time_s,demand\n0,1\n60,2\n", "p.csv:1: value column 'demand' has no unit"),
    ("time_s,demand_BTU\n0,1\n60,2\n", "p.csv:1: unknown unit 'BTU'"),
    ("time_s,demand_kW\n0,1\n60,x\n", "p.csv:3: value 'x' in column 'demand_kW' is not a finite number"),
    ("time_s,demand_kW\n0,1\n60,2\n30,3\n", "p.csv:4: time 30 is not after the previous row's"),
    ("time_s,demand_kW\n0,1\n60000,2\n", "p.csv:3: gap of 60000 s since the previous row, longer than the allowed 10800 s"),
    ("time,demand_kW\n2025-01-01T00:00,1\nmonday,2\n", "p.csv:3: time 'monday' is not an ISO 8601 date-time"),
    ("time_s,load_pct\n0,50\n60,150\n", "p.csv:3: 150 pct is outside 0..100"),
    ("time_s,demand_kW\n0,1\n", "p.csv:2: expected at least two rows"),
])
def test_csv_profile_errors_name_file_and_row(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as exc:
        load_csv_profile(path)
    assert any(line.startswith(str(path.parent) + "/" + expected) for line in exc.value.problems), exc.value.problems
    assert all("\n" not in line for line in exc.value.problems)


def test_csv_profile_reports_every_bad_row(tmp_path):
    path = write(tmp_path, "time_s,demand_kW\n0,1\n60,-2\n60,3\n120,y\n")
    with pytest.raises(ProfileError) as exc:
        load_csv_profile(path)
    assert [line.split(":")[1] for line in exc.value.problems] == ["3", "4", "5"]
