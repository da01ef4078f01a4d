"""The live capacity envelope comes from the site's own plant description, never from the simulated
reference plant: a real site config has no `simulation:` section, and one without `plant:` has no
envelope (the daemon says it is off)."""

from __future__ import annotations

import asyncio

import pytest

from controller.core.envelope import HourForecast, estimate, limits_from_site
from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from controller.site.loader import parse_config_text
from tests.runtime_fakes import FakeClock, FakeDrivers, load, write_config
from tests.step_helpers import REFERENCE

PLANT_START = "\nplant:\n"


def _without_plant(text: str) -> str:
    head, sep, tail = text.partition(PLANT_START)
    # plant: is the reference config's last section: cutting from it removes nothing else.
    assert sep and not any(line and not line.startswith((" ", "#")) for line in tail.splitlines())
    return head + "\n"


def test_a_real_site_without_simulation_section_gets_its_envelope_from_its_plant_facts():
    text = REFERENCE.read_text()
    assert "\nsimulation:" not in text, "the reference site is a real site's config: no simulation section"
    site = parse_config_text(text).site
    lim = limits_from_site(site)
    assert lim is not None and lim.capture == site.plant.capture_fraction
    # Change one fact of this site (its dry cooler) and the envelope follows it.
    small = parse_config_text(text.replace("dump_ua_w_per_k: 3000", "dump_ua_w_per_k: 600")).site
    lim_small = limits_from_site(small)
    assert lim_small.dump_g_w_per_k < lim.dump_g_w_per_k
    hot = [HourForecast(demand_w=0.0, ambient_c=30.0)] * 24
    assert sum(estimate(lim_small, 1.0, hot).carryable_w) < sum(estimate(lim, 1.0, hot).carryable_w)
    # The tank is the metered one: one key for one fact.
    bigger = parse_config_text(text + "\nmetering:\n  tank_volume_m3: 8\n").site
    assert limits_from_site(bigger).tank_capacity_j == pytest.approx(4 * lim.tank_capacity_j)


def test_without_a_plant_description_the_envelope_is_off_and_the_daemon_says_so(tmp_path):
    text = _without_plant(REFERENCE.read_text())
    site = parse_config_text(text).site
    assert site.plant is None and limits_from_site(site) is None
    path = tmp_path / "site.yaml"
    path.write_text(text)
    clock = FakeClock()
    options = RuntimeOptions(config_path=str(path), state_dir=str(tmp_path / "state"), socket_path=None)
    d = Daemon(options, load(path), clock=clock, wall=clock.wall, sleep=clock.sleep,
               driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}), metrics=None)

    async def run() -> dict:
        await d.start()
        assert await d.tick()
        answer = d.api_envelope()
        await d.shutdown()
        return answer
    answer = asyncio.run(run())
    assert answer["envelope"] is None and answer["enabled"] is False
    assert "no plant: section" in answer["note"]


def test_the_daemon_computes_the_envelope_when_the_site_has_its_plant_facts(tmp_path):
    path = write_config(tmp_path)
    clock = FakeClock()
    options = RuntimeOptions(config_path=str(path), state_dir=str(tmp_path / "state"), socket_path=None)
    d = Daemon(options, load(path), clock=clock, wall=clock.wall, sleep=clock.sleep,
               driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}), metrics=None)

    async def run() -> dict:
        await d.start()
        assert await d.tick()
        answer = d.api_envelope()
        await d.shutdown()
        return answer
    answer = asyncio.run(run())
    assert answer["envelope"] is not None and len(answer["envelope"]["carryable_w"]) == 24
