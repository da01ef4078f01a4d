"""The one plant loop (simulations.plant.loop): what throttled, below setpoint and the tank's state of
charge mean, defined once for the closed loop, the daemon on simulated time and the plant on the wire."""

from __future__ import annotations

import functools

import pytest

from controller.core.metering import tank_soc
from controller.site.models import Policy
from simulations.plant.loop import PlantLoop, config_for_tick, is_throttled, plant_config_of, true_soc, wanted_it_w
from simulations.plant.model import Loads
from simulations.runners.daemon_simtime import SimulatedPlant
from simulations.scenarios.definitions import SCENARIOS
from simulations.scenarios.year import site_for
from simulations.wire.sim_plant import SimPlant


@functools.lru_cache(maxsize=None)
def _site():
    return site_for(SCENARIOS["pool-year"])


def test_true_soc_is_the_controllers_soc_on_a_mixed_tank_under_either_policy():
    site = _site()
    heat_first = site.model_copy(update={"site": site.site.model_copy(update={"policy": Policy.HEAT_FIRST})})
    for s in (site, heat_first):
        for t in (20.0, 30.0, 41.5, 47.0, 55.0):
            assert true_soc(s, (t,) * 8) == pytest.approx(tank_soc(s, t, t), abs=1e-12)
    # heat_first charges 4 K further before it calls the tank full: the same water is less full.
    assert true_soc(heat_first, (46.0,) * 8) < true_soc(site, (46.0,) * 8) == 1.0


def test_throttled_is_the_cap_below_the_wanted_power_or_the_servers_own_protection():
    cfg = plant_config_of(_site())
    wanted = wanted_it_w(cfg, 0.85)
    assert wanted == pytest.approx(8 * (600 + 0.85 * 4400))
    assert not is_throttled(cfg, wanted, wanted, 40.0)
    assert is_throttled(cfg, wanted, wanted - 2.0, 40.0)
    assert is_throttled(cfg, wanted, 1e9, cfg.server_throttle_c)
    assert wanted_it_w(cfg, 1.7) == wanted_it_w(cfg, 1.0) and wanted_it_w(cfg, float("nan")) == wanted_it_w(cfg, 0.0)


def test_books_of_a_tick_are_taken_before_the_plant_moves():
    site = _site()
    cfg, note = config_for_tick(plant_config_of(site), 60.0)
    assert cfg.heartbeat_timeout_s == 180.0 and "stretched" in note
    loop = PlantLoop(site, cfg, 0.0)
    loads = Loads(it_load_fraction=1.0, consumer_demand_w=30000.0, consumer_available=True, ambient_c=5.0)
    loop.command({binding_point: 20000.0 for binding_point in [loop.binding.act["power_cap_w"]]}, fresh=True)
    before = loop.plant.true_measurements().consumer_supply_c
    b = loop.tick(60.0, loads)
    assert b.true.consumer_supply_c == before and loop.plant.t_s == 60.0
    assert b.throttled and b.demanding and b.supply_error_k == pytest.approx(before - 40.0)
    assert loop.point_values()  # readings after the move, meter rates from the first tick


def test_the_three_users_share_the_loop():
    from controller.site.loader import load_config
    from controller.site.paths import default_config_path

    loaded = load_config(default_config_path())
    assert isinstance(SimulatedPlant(loaded, SCENARIOS["pool-year"], 0.0, 60.0).loop, PlantLoop)
    assert isinstance(SimPlant(loaded, free_ports=True, autostep=False).loop, PlantLoop)
    import inspect

    import simulations.runners.closed_loop as cl
    assert "PlantLoop(" in inspect.getsource(cl.run_scenario)
