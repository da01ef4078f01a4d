"""Site templates (config/templates/): each a complete site config that `heatctl check-config` accepts,
with its own plant parameters, and a year scenario that runs on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main
from controller.site.loader import load_config
from controller.site.roles import Role
from simulations.plant.config import plant_config
from simulations.scenarios.definitions import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "config" / "templates").glob("*.yaml"))


def test_one_template_per_hardware_pattern():
    assert {p.stem for p in TEMPLATES} == {"cpu-rack-dhw", "gpu-pod-pool", "container-district",
                                           "immersion-space-heating", "hybrid-retrofit"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_check_config_accepts_each_template(path, capsys):
    assert main(["check-config", str(path)]) == 0
    assert ": OK: site" in capsys.readouterr().out
    site = load_config(path).site
    sim = plant_config(site)
    # The plant model matches the config: one server point per simulated server, the same setpoint.
    assert len(site.role_index()[Role.SERVER_POWER]) == sim.servers
    assert sim.consumer_setpoint_c == site.loops.consumer_supply.setpoint
    assert site.power.max_w == sim.servers * sim.server_max_w
    # Each template has a year scenario that names it.
    assert [s.name for s in SCENARIOS.values() if s.config == f"config/templates/{path.name}"]


def test_capture_fractions_follow_the_hardware_pattern():
    cap = {p.stem: load_config(p).site.plant.capture_fraction for p in TEMPLATES}
    assert cap["immersion-space-heating"] >= 0.95 and cap["hybrid-retrofit"] <= 0.5
