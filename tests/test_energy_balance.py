"""The plant's energy check can fail: the first law against the servers' electrical input, and the
second law on every exchanger (simulations.plant.model, Plant.energy_balance_error)."""

from __future__ import annotations

import pydantic
import pytest

from simulations.plant import model
from simulations.plant.config import PlantConfig
from simulations.plant.model import Actuators, Loads, Plant

CFG = PlantConfig()
LOADS = Loads(it_load_fraction=0.85, consumer_demand_w=30000.0, consumer_available=True, ambient_c=10.0)


def run_hours(hours: float, d1_pct: float = 40.0) -> Plant:
    plant = Plant(CFG)
    plant.set_actuators(Actuators(p1_pct=60.0, p2_pct=70.0, v1_pct=20.0, p3_pct=30.0, d1_pct=d1_pct,
                                  boiler_enable=True, heartbeat=1), 0.0)
    t = 0.0
    while t < hours * 3600:
        plant.set_actuators(Actuators(p1_pct=60.0, p2_pct=70.0, v1_pct=20.0, p3_pct=30.0, d1_pct=d1_pct,
                                      boiler_enable=True, heartbeat=int(t) + 1), t)
        plant.advance(10.0, LOADS)
        t += 10.0
    return plant


def test_a_physical_plant_passes_both_laws():
    plant = run_hours(4.0)
    assert plant.first_law_error() < 1e-9
    assert plant.second_law_error() == 0.0
    assert plant.energy_balance_error() < 1e-9
    assert plant.meters.hx_j > 3.6e6 and plant.meters.dumped_j > 3.6e6  # the exchangers really worked


def test_an_hx_effectiveness_above_one_fails_the_energy_check(monkeypatch):
    real = model.counterflow_effectiveness
    monkeypatch.setattr(model, "counterflow_effectiveness", lambda ntu, cr: 1.6 * real(ntu, cr))
    plant = run_hours(4.0)
    # The first law still closes (each flux is booked on both sides) ...
    assert plant.first_law_error() < 1e-9
    # ... so the check that fails is the second law, and the plant's energy check with it.
    assert plant.second_law_error() > 0.01
    assert plant.energy_balance_error() > 0.01
    print(f"effectiveness x1.6: first law {plant.first_law_error():.2e}, "
          f"second law {plant.second_law_error() * 100:.1f} % of inputs")


def test_a_dump_coil_that_cools_below_the_air_fails_the_energy_check(monkeypatch):
    monkeypatch.setattr(model, "coil_conductance_w_per_k", lambda c, ua: 1.5 * c if c > 0 and ua > 0 else 0.0)
    plant = run_hours(2.0, d1_pct=100.0)
    assert plant.energy_balance_error() > 0.001


@pytest.mark.parametrize("key,value", [("hx_ua_w_per_k", -1000.0), ("hx_ua_w_per_k", 0.0),
                                       ("consumer_hx_ua_w_per_k", -5.0), ("dump_ua_w_per_k", -1.0),
                                       ("tank_loss_w_per_k", -1.0), ("capture_fraction", 1.2),
                                       ("consumer_max_uptake_ratio", 0.5)])
def test_unphysical_parameters_are_rejected(key, value):
    with pytest.raises(pydantic.ValidationError, match=key):
        PlantConfig(**{key: value})
