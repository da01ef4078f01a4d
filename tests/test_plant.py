"""Tests of the physical plant model (simulations/plant/model.py): energy books, physics, faults, fallback."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.plant.faults import Fault
from simulations.plant.model import Actuators, Loads, Meters, Plant
from simulations.plant.config import PlantConfig
from simulations.plant.warm import power_factor, warm_cost

CFG = PlantConfig()
NORMAL = Loads(it_load_fraction=0.85, consumer_demand_w=30000.0, consumer_available=True, ambient_c=10.0)


def normal_actuators(**kw) -> Actuators:
    base = dict(p1_pct=60.0, p2_pct=70.0, v1_pct=0.0, p3_pct=0.0, d1_pct=0.0, power_cap_w=40000.0)
    base.update(kw)
    return Actuators(**base)


def run(plant: Plant, seconds: float, loads: Loads, acts: Actuators, dt: float = 1.0, beat: bool = True) -> None:
    """Command `acts` every tick (moving the heartbeat if `beat`) and advance `seconds`."""
    steps = round(seconds / dt)
    for _ in range(steps):
        if beat:
            acts.heartbeat = (acts.heartbeat + 1) % 65536
        plant.set_actuators(acts, plant.t_s)
        plant.advance(dt, loads)


def settled_plant(seconds: float = 4 * 3600, **kw) -> Plant:
    plant = Plant(CFG)
    run(plant, seconds, NORMAL, normal_actuators(**kw), dt=10.0)
    return plant


# --------------------------------------------------------------------------- a day of varying operation


def day_loads(t_s: float) -> Loads:
    h = t_s / 3600.0
    return Loads(
        it_load_fraction=0.5 + 0.45 * math.sin(2 * math.pi * h / 24) ** 2,
        consumer_demand_w=20000.0 + 15000.0 * math.cos(2 * math.pi * h / 24),
        consumer_available=not 10.0 <= h < 11.0,
        ambient_c=10.0 + 6.0 * math.sin(2 * math.pi * h / 24),
    )


def day_actuators(t_s: float) -> Actuators:
    h = t_s / 3600.0
    return Actuators(
        p1_pct=40.0 + 40.0 * (h % 3 < 1),
        p2_pct=70.0,
        v1_pct=40.0 if 2.0 <= h < 8.0 else 0.0,
        p3_pct=60.0 if 14.0 <= h < 20.0 else 0.0,
        d1_pct=60.0 if 9.0 <= h < 12.0 else 0.0,
        boiler_enable=h >= 18.0,
        power_cap_w=25000.0 if 4.0 <= h < 6.0 else 40000.0,
        # The heartbeat stalls for 6 minutes at 22 h: the BMS fallback runs, then hands back.
        heartbeat=0 if 22.0 <= h < 22.1 else int(t_s) + 1,
    )


def run_day(dt: float) -> Plant:
    plant = Plant(CFG)
    t = 0.0
    while t < 86400.0:
        plant.set_actuators(day_actuators(t), t)
        plant.advance(dt, day_loads(t))
        t += dt
    return plant


@pytest.fixture(scope="module")
def days() -> dict[float, Plant]:
    return {dt: run_day(dt) for dt in (1.0, 10.0)}


@pytest.mark.parametrize("dt", [1.0, 10.0])
def test_energy_balance_closes_over_a_day(days, dt):
    plant = days[dt]
    m = plant.meters
    assert plant.energy_balance_error() < 0.005
    # Each part's books close too (a flux booked on one side only would show here).
    for part, residual in plant.balances().items():
        assert abs(residual) < 1e-6 * m.captured_j, part
    # Every register is >= 0, and the day really exercised the paths being balanced.
    assert all(v >= 0.0 for v in dataclasses.asdict(m).values())
    # > 1 kWh in, > 0.5 kWh out (P3 runs into a circuit near setpoint, whose uptake is limited).
    assert m.to_tank_j > 3.6e6 and m.from_tank_j > 0.5 * 3.6e6
    assert m.dumped_j > 3.6e6 and m.boiler_j > 3.6e6 and m.delivered_j > 100 * 3.6e6
    assert 0.0 < m.fallback_s < 400.0
    assert m.captured_j == pytest.approx(CFG.capture_fraction * m.it_j, rel=1e-12)
    assert m.room_loss_j == pytest.approx((1 - CFG.capture_fraction) * m.it_j, rel=1e-12)


def test_dt_1_and_dt_10_agree(days):
    a, b = days[1.0].measurements(), days[10.0].measurements()
    for name in ("it_supply_c", "it_return_c", "b_supply_c", "b_return_c", "consumer_supply_c"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), abs=0.1), name
    # The tank ends the day near 58 degC (the consumer's uptake is limited above setpoint), where
    # the 10 s step's numerical mixing of the thermocline differs from the 1 s step's by ~0.1 K.
    for x, y in zip(a.tank_layers_c, b.tank_layers_c):
        assert x == pytest.approx(y, abs=0.15)
    assert days[10.0].meters.delivered_j == pytest.approx(days[1.0].meters.delivered_j, rel=0.01)


def test_large_steps_stay_stable():
    plant = Plant(CFG)
    acts = normal_actuators(p1_pct=100.0, p2_pct=100.0, d1_pct=100.0, v1_pct=100.0, p3_pct=100.0)
    run(plant, 6 * 3600, NORMAL, acts, dt=60.0)
    m = plant.measurements()
    for t in (m.it_supply_c, m.it_return_c, m.b_supply_c, m.b_return_c, m.consumer_supply_c, *m.tank_layers_c):
        assert NORMAL.ambient_c - 1e-9 <= t < 70.0
    assert plant.energy_balance_error() < 1e-9


# --------------------------------------------------------------------------- steady state


def test_reference_steady_state_is_plausible():
    plant = settled_plant()
    m = plant.measurements()
    # 34.7 kW wanted, a little more drawn at the IT supply's temperature (running warm costs power).
    factor = power_factor(warm_cost(CFG), m.it_supply_c)
    assert 1.0 < factor < 1.03
    assert sum(m.server_power_w) == pytest.approx((0.85 * 4400 * 8 + 600 * 8) * factor, rel=1e-4)
    assert 39.0 <= m.consumer_supply_c <= 41.0
    assert 30.0 <= m.it_supply_c < 40.0
    assert m.it_supply_c < m.it_return_c < 50.0
    assert m.b_return_c < m.b_supply_c
    # In steady state the plate HX carries all the captured heat, and the consumer takes it.
    captured_w = CFG.capture_fraction * sum(m.server_power_w)
    assert m.hx_w == pytest.approx(captured_w, rel=0.01)
    assert m.consumer_load_w == pytest.approx(captured_w, rel=0.01)
    # IT loop dT = Q / (m_dot c_p) at 3.6 m3/h.
    assert m.it_return_c - m.it_supply_c == pytest.approx(captured_w / (3.6 / 3600 * 992.2 * 4179.6), rel=0.02)


# --------------------------------------------------------------------------- servers


def test_server_power_follows_the_cap_with_its_lag():
    plant = settled_plant(seconds=600)
    m = plant.measurements()
    p0 = 4340.0 * power_factor(warm_cost(CFG), m.it_supply_c)  # what the workload wants, drawn warm
    assert m.server_power_w[0] == pytest.approx(p0, rel=1e-3)
    acts = normal_actuators(power_cap_w=20000.0)  # 2.5 kW each
    run(plant, CFG.server_power_tau_s, NORMAL, acts)
    p = plant.measurements().server_power_w[0]
    # One time constant: 63 % of the way from p0 to 2500 W.
    assert p == pytest.approx(2500 + (p0 - 2500) * math.exp(-1), rel=0.01)
    run(plant, 60, NORMAL, acts)
    assert plant.measurements().server_power_w == pytest.approx((2500.0,) * CFG.servers, rel=1e-4)
    # A share below idle cannot be held: the servers sit at idle.
    run(plant, 120, NORMAL, normal_actuators(power_cap_w=1000.0))
    assert plant.measurements().server_power_w[0] == pytest.approx(CFG.server_idle_w, rel=1e-4)
    # And a generous cap leaves them at what the workload wants.
    run(plant, 120, NORMAL, normal_actuators(power_cap_w=1e9))
    m = plant.measurements()
    assert m.server_power_w[0] == pytest.approx(4340.0 * power_factor(warm_cost(CFG), m.it_supply_c), rel=1e-3)


# --------------------------------------------------------------------------- faults


def test_pump_failure_stops_flow_and_the_it_loop_heats_up():
    plant = settled_plant(seconds=3600)
    before = plant.measurements()
    plant.inject(Fault("pump_failure", "p1"))
    run(plant, 120, NORMAL, normal_actuators(p1_pct=100.0))
    m = plant.measurements()
    assert m.it_flow_m3h == 0.0
    assert m.hx_w == 0.0
    # ~29 kW into ~75 kg of water: ~0.09 K/s.
    assert m.it_return_c > before.it_return_c + 8.0
    plant.clear("pump_failure", "p1")
    assert plant.measurements().it_flow_m3h == pytest.approx(CFG.it_flow_max_m3h)
    assert plant.active_faults == ()


def test_p2_and_p3_failures_stop_their_flows():
    plant = Plant(CFG)
    plant.inject(Fault("pump_failure", "p2"))
    plant.inject(Fault("pump_failure", "p3"))
    run(plant, 10, NORMAL, normal_actuators(p3_pct=100.0))
    m = plant.measurements()
    assert m.b_flow_m3h == 0.0 and m.p3_flow_m3h == 0.0 and m.it_flow_m3h > 0.0


def test_low_flow_restricts_it_flow():
    plant = Plant(CFG)
    plant.inject(Fault("low_flow"))
    run(plant, 5, NORMAL, normal_actuators(p1_pct=80.0))
    assert plant.measurements().it_flow_m3h == pytest.approx(0.1 * 0.8 * CFG.it_flow_max_m3h)
    plant.clear("low_flow")
    assert plant.measurements().it_flow_m3h == pytest.approx(0.8 * CFG.it_flow_max_m3h)


def test_leak_wets_its_detector_and_the_loop_loses_pressure():
    plant = Plant(CFG)
    run(plant, 10, NORMAL, normal_actuators())
    assert plant.measurements().loop_pressure_bar == pytest.approx(2.0)
    plant.inject(Fault("leak", 1))
    run(plant, 300, NORMAL, normal_actuators())
    m = plant.measurements()
    assert m.leak == (False, True)
    assert m.loop_pressure_bar < 0.1  # 5 time constants of 60 s
    plant.clear("leak")
    run(plant, 1800, NORMAL, normal_actuators())
    m = plant.measurements()
    assert m.leak == (False, False) and m.loop_pressure_bar > 1.9


def test_consumer_offline_stops_delivery():
    plant = settled_plant(seconds=3600)
    plant.inject(Fault("consumer_offline"))
    assert plant.measurements().consumer_available is False
    run(plant, 60, NORMAL, normal_actuators())  # let the last substep's flows go
    delivered, load = plant.meters.delivered_j, plant.meters.consumer_load_j
    run(plant, 600, NORMAL, normal_actuators())
    m = plant.measurements()
    assert plant.meters.delivered_j == delivered
    assert plant.meters.consumer_load_j == load
    assert m.consumer_load_w == 0.0 and m.consumer_available is False
    # With nowhere to go, the heat stays in the loops: the building supply climbs.
    assert m.b_supply_c > 45.0
    plant.clear("consumer_offline")
    run(plant, 60, NORMAL, normal_actuators())
    assert plant.meters.delivered_j > delivered


def test_consumer_unavailable_from_loads_acts_like_offline():
    plant = settled_plant(seconds=3600)
    delivered = plant.meters.delivered_j
    away = dataclasses.replace(NORMAL, consumer_available=False)
    run(plant, 1, away, normal_actuators())
    run(plant, 300, away, normal_actuators())
    assert plant.meters.delivered_j == pytest.approx(delivered, abs=1e5)
    assert plant.measurements().consumer_available is False


def test_sensor_stuck_and_nan_change_readings_not_physics():
    faulty, twin = settled_plant(seconds=1800), settled_plant(seconds=1800)
    stuck_at = faulty.measurements().it_supply_c
    faulty.inject(Fault("sensor_stuck", "it_supply_c"))
    faulty.inject(Fault("sensor_nan", "b_return_c"))
    faulty.inject(Fault("sensor_nan", "tank_layers_c[3]"))
    faulty.inject(Fault("sensor_stuck", "leak[0]", value=1.0))
    hotter = normal_actuators(p1_pct=30.0)  # moves the IT temperatures
    run(faulty, 300, NORMAL, hotter)
    run(twin, 300, NORMAL, dataclasses.replace(hotter))
    f, t = faulty.measurements(), twin.measurements()
    assert f.it_supply_c == stuck_at != t.it_supply_c
    assert math.isnan(f.b_return_c) and not math.isnan(t.b_return_c)
    assert math.isnan(f.tank_layers_c[3]) and f.tank_layers_c[:3] == t.tank_layers_c[:3]
    assert f.leak == (True, False) and t.leak == (False, False)
    # Everything else, and the physics behind all of it, is identical.
    assert faulty.meters == twin.meters
    assert faulty.stored_heat_j() == twin.stored_heat_j()
    assert f.it_return_c == t.it_return_c
    faulty.clear("sensor_stuck", "it_supply_c")
    assert faulty.measurements().it_supply_c == t.it_supply_c
    assert math.isnan(faulty.measurements().b_return_c)  # the other faults stay
    faulty.clear("sensor_nan")
    faulty.clear("sensor_stuck")
    assert faulty.measurements() == t


@pytest.mark.parametrize(
    "fault",
    [
        Fault("melt_down"),
        Fault("pump_failure", "p9"),
        Fault("leak", 2),
        Fault("sensor_nan", "no_such_field"),
        Fault("sensor_nan", "leak"),  # a bool cannot read NaN
        Fault("sensor_stuck", "tank_layers_c[99]"),
        Fault("low_flow", value=1.5),
    ],
)
def test_bad_faults_are_refused(fault):
    plant = Plant(CFG)
    with pytest.raises(ValueError):
        plant.inject(fault)
    assert plant.active_faults == ()


# --------------------------------------------------------------------------- heartbeat fallback


def test_heartbeat_timeout_triggers_fallback_and_a_moving_heartbeat_clears_it():
    plant = Plant(CFG)
    acts = normal_actuators(p1_pct=30.0, p2_pct=40.0, v1_pct=50.0, boiler_enable=False, heartbeat=7)
    plant.set_actuators(acts, 0.0)
    for _ in range(9):
        plant.advance(1.0, NORMAL)
        plant.set_actuators(acts, plant.t_s)  # same heartbeat value: the controller has hung
    m = plant.measurements()
    assert not m.fallback_active and m.it_flow_m3h == pytest.approx(0.3 * 6.0)
    plant.advance(1.0, NORMAL)  # 10 s without a change
    m = plant.measurements()
    assert m.fallback_active and m.boiler_on
    assert m.it_flow_m3h == pytest.approx(CFG.it_flow_max_m3h)
    assert m.b_flow_m3h == pytest.approx(CFG.building_flow_max_m3h)
    eff = plant.effective_actuators()
    assert (eff.p1_pct, eff.p2_pct, eff.p3_pct, eff.v1_pct, eff.d1_pct) == (100.0, 100.0, 0.0, 0.0, 100.0)
    fans = plant.meters.fans_j
    plant.advance(5.0, NORMAL)
    assert plant.meters.fans_j - fans == pytest.approx(5.0 * CFG.fan_d1_max_w)
    assert plant.meters.fallback_s == pytest.approx(5.0)
    acts.heartbeat = 8
    plant.set_actuators(acts, plant.t_s)
    m = plant.measurements()
    assert not m.fallback_active and not m.boiler_on
    assert m.it_flow_m3h == pytest.approx(0.3 * 6.0)


def test_fallback_starts_mid_step_when_dt_is_long():
    plant = Plant(CFG)
    plant.set_actuators(normal_actuators(d1_pct=0.0, heartbeat=1), 0.0)
    plant.advance(60.0, NORMAL)
    assert plant.measurements().fallback_active
    # The fan ran only for the part of the step after the timeout (substeps of <= 13 s).
    fan_s = plant.meters.fans_j / CFG.fan_d1_max_w
    assert 40.0 <= fan_s <= 50.0
    assert plant.meters.fallback_s == pytest.approx(fan_s)


# --------------------------------------------------------------------------- tank, dump, boiler


def test_tank_charges_with_surplus_and_v1_then_discharges_with_p3():
    plant = Plant(CFG)
    surplus = dataclasses.replace(NORMAL, it_load_fraction=1.0, consumer_demand_w=10000.0)
    run(plant, 3 * 3600, surplus, normal_actuators(v1_pct=60.0), dt=5.0)
    m = plant.measurements()
    assert plant.meters.to_tank_j > 30 * 3.6e6  # > 30 kWh in (2 m3 from 30 to ~50 degC is 46 kWh)
    assert m.tank_top_c > 45.0 and m.tank_top_c >= m.tank_bottom_c
    assert list(m.tank_layers_c) == sorted(m.tank_layers_c, reverse=True)  # stratified, top warmest
    top, from_tank = m.tank_top_c, plant.meters.from_tank_j
    # Now the servers idle, the consumer wants a lot; the tank gives its heat through P3.
    short = dataclasses.replace(NORMAL, it_load_fraction=0.0, consumer_demand_w=40000.0)
    # An hour: the circuit starts overheated and the consumer takes at most 110 % of its demand.
    run(plant, 3600, short, normal_actuators(v1_pct=0.0, p3_pct=100.0), dt=5.0)
    m = plant.measurements()
    assert plant.meters.from_tank_j - from_tank > 10 * 3.6e6
    assert m.tank_top_c < top - 2.0
    assert plant.meters.discharge_j > 10 * 3.6e6


def test_dump_cooler_rejects_heat_but_never_below_ambient():
    plant = Plant(CFG)
    plant.inject(Fault("consumer_offline"))
    cold = Loads(it_load_fraction=0.0, consumer_demand_w=0.0, consumer_available=True, ambient_c=15.0)
    run(plant, 4 * 3600, cold, normal_actuators(p2_pct=100.0, d1_pct=100.0), dt=10.0)
    m = plant.measurements()
    assert plant.meters.dumped_j > 0.0
    assert 15.0 <= m.b_return_c < 20.0
    # Ambient above the water: the dump cooler adds no heat.
    dumped = plant.meters.dumped_j
    run(plant, 600, dataclasses.replace(cold, ambient_c=40.0), normal_actuators(p2_pct=100.0, d1_pct=100.0))
    assert plant.meters.dumped_j == dumped


def test_boiler_thermostat():
    plant = Plant(CFG)  # consumer circuit starts at 30 degC, 10 K below its setpoint
    idle = dataclasses.replace(NORMAL, it_load_fraction=0.0, consumer_demand_w=20000.0)
    run(plant, 1, idle, normal_actuators(boiler_enable=True))
    assert plant.measurements().boiler_w == CFG.boiler_max_w
    run(plant, 2 * 3600, idle, normal_actuators(boiler_enable=True), dt=5.0)
    m = plant.measurements()
    # Proportional over 1 K: it settles just under the setpoint, covering the load.
    assert CFG.consumer_setpoint_c - 1.0 < m.consumer_supply_c < CFG.consumer_setpoint_c
    assert 0.0 < m.boiler_w < CFG.boiler_max_w
    run(plant, 60, idle, normal_actuators(boiler_enable=False))
    assert plant.measurements().boiler_w == 0.0 and not plant.measurements().boiler_on


# --------------------------------------------------------------------------- determinism, properties


def test_two_runs_are_identical():
    a, b = run_day_short(), run_day_short()
    assert a.measurements() == b.measurements()
    assert a.meters == b.meters


def run_day_short() -> Plant:
    plant = Plant(CFG, t0_s=1000.0)
    plant.inject(Fault("low_flow", value=0.5))
    t = 0.0
    while t < 4 * 3600:
        plant.set_actuators(day_actuators(t + 6 * 3600), plant.t_s)
        plant.advance(7.0, day_loads(t + 6 * 3600))
        t += 7.0
    return plant


step = st.tuples(
    st.floats(1.0, 60.0),  # dt
    st.floats(0.0, 1.0),  # load
    st.floats(0.0, 60000.0),  # demand
    st.booleans(),  # available
    st.floats(-10.0, 35.0),  # ambient
    st.lists(st.floats(-10.0, 120.0), min_size=5, max_size=5),  # p1 p2 p3 v1 d1 (clamped)
    st.booleans(),  # boiler
    st.floats(0.0, 50000.0),  # cap
    st.booleans(),  # heartbeat moves
)


@settings(max_examples=40, deadline=None)
@given(st.lists(step, min_size=1, max_size=60))
def test_books_close_and_temperatures_stay_physical_for_any_commands(steps):
    plant = Plant(CFG)
    hb = 0
    for dt, load, demand, avail, amb, pcts, boiler, cap, beat in steps:
        hb += beat
        plant.set_actuators(Actuators(*pcts, boiler_enable=boiler, power_cap_w=cap, heartbeat=hb), plant.t_s)
        plant.advance(dt, Loads(load, demand, avail, amb))
    assert abs(plant.balances()["plant"]) <= 1e-9 * max(plant.meters.captured_j + plant.meters.boiler_j, 1e6)
    m = plant.measurements()
    for t in (m.it_supply_c, m.it_return_c, m.b_supply_c, m.b_return_c, m.consumer_supply_c, *m.tank_layers_c):
        assert -10.0 - 1e-9 <= t <= 100.0
    assert all(v >= 0.0 for v in dataclasses.asdict(plant.meters).values())
    assert isinstance(plant.meters, Meters)


# --------------------------------------------------------------------------- the costs of running warm


def _warm_plant(**cfg) -> Plant:
    plant = Plant(PlantConfig(**cfg))
    loads = Loads(it_load_fraction=1.0, consumer_demand_w=0.0, consumer_available=False, ambient_c=10.0)
    run(plant, 40, loads, normal_actuators(power_cap_w=1e9), dt=1.0)
    return plant


def test_servers_draw_more_power_on_warmer_coolant():
    cool, warm = _warm_plant(initial_temp_c=30.0), _warm_plant(initial_temp_c=45.0)
    p_cool, p_warm = cool.measurements().server_power_w[0], warm.measurements().server_power_w[0]
    t = warm.measurements().it_supply_c
    assert p_warm > p_cool * 1.03  # +0.25 %/K above 30 degC on direct liquid cooling
    assert p_warm == pytest.approx(5000.0 * (1 + 0.0025 * (t - 30.0)), rel=0.005)
    off = _warm_plant(initial_temp_c=45.0, warm_costs=False)
    assert off.measurements().server_power_w[0] == pytest.approx(5000.0, rel=1e-3)


def test_an_air_to_water_template_captures_less_on_warmer_water():
    hybrid = dict(cooling="hybrid_air_to_water", capture_fraction=0.5)
    cool, warm = _warm_plant(initial_temp_c=26.0, **hybrid), _warm_plant(initial_temp_c=40.0, **hybrid)
    share = lambda p: p.meters.captured_j / p.meters.it_j  # noqa: E731
    assert share(cool) > 0.485 and share(warm) < 0.37  # 1 point per K above 25 degC
    assert cool.meters.captured_j + cool.meters.room_loss_j == pytest.approx(cool.meters.it_j, rel=1e-12)


def test_pumps_keep_a_minimum_head():
    plant = Plant(CFG)
    run(plant, 100, NORMAL, normal_actuators(p1_pct=50.0, p2_pct=0.0))
    # 50 % speed: 0.5 x (0.3 + 0.7 x 0.25) of full power, not the cube law's 0.125.
    assert plant.meters.pumps_j / 100.0 == pytest.approx(CFG.pump_p1_max_w * 0.5 * (0.3 + 0.7 * 0.25), rel=1e-9)


def test_the_consumer_sees_the_building_supply_after_the_pipe_delay():
    loads = Loads(it_load_fraction=1.0, consumer_demand_w=30000.0, consumer_available=True, ambient_c=10.0)

    def consumer_hx_j(delay_s: float) -> list[float]:
        plant = Plant(PlantConfig(consumer_pipe_delay_s=delay_s))  # everything starts at 30 degC
        out = []
        for _ in range(600):
            run(plant, 1.0, loads, normal_actuators(p1_pct=100.0, power_cap_w=1e9))
            out.append(plant.meters.consumer_hx_j)
        return out

    now, late = consumer_hx_j(0.0), consumer_hx_j(60.0)
    # For the first minute the delayed consumer still sees the 30 degC water that was in the pipe.
    assert late[59] < 0.9 * now[59]
    # Long after, both carry the same heat per second.
    assert late[599] - late[539] == pytest.approx(now[599] - now[539], rel=0.05)


def test_the_consumer_takes_at_most_110_percent_of_its_demand_and_counts_only_its_demand():
    plant = Plant(PlantConfig(initial_temp_c=55.0))
    loads = Loads(it_load_fraction=0.0, consumer_demand_w=20000.0, consumer_available=True, ambient_c=10.0)
    run(plant, 60, loads, normal_actuators(p2_pct=0.0), dt=1.0)
    m = plant.measurements()
    assert m.consumer_supply_c > CFG.consumer_setpoint_c + 10
    assert m.consumer_load_w == pytest.approx(22000.0, rel=1e-9)
    assert plant.meters.useful_load_j == pytest.approx(20000.0 * 60, rel=1e-6)
