"""Write results reach the loops' tracking: the value a driver verified after the tick's write is
the step's `applied_outputs` in the next tick (the commanded value is never assumed applied)."""

from __future__ import annotations

from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from tests.runtime_fakes import FakeClock, FakeDrivers, FakePlant, load, write_config


async def test_the_verified_readback_of_each_write_is_the_next_steps_applied_outputs(tmp_path):
    plant = FakePlant()
    plant.clamp["p1_speed"] = 35.0  # the pump's drive takes no more than 35 %
    clock = FakeClock()
    config = write_config(tmp_path)
    d = Daemon(RuntimeOptions(str(config), str(tmp_path / "state"), socket_path=None), load(config),
               clock=clock, wall=clock.wall, sleep=clock.sleep, driver_factory=FakeDrivers(plant),
               notifier=SystemdNotifier(env={}), metrics=None)
    seen: list[dict | None] = []
    step = d.ctrl.step

    def spy(state, snapshot, requests, now, applied_outputs=None, **kw):
        seen.append(None if applied_outputs is None else dict(applied_outputs))
        return step(state, snapshot, requests, now, applied_outputs=applied_outputs, **kw)

    d.ctrl.step = spy
    await d.start()
    for _ in range(3):
        assert await d.tick()
        clock.advance(1.0)
    await d.shutdown()
    commanded = [w["p1_speed"] for w in plant.writes if "p1_speed" in w]
    assert seen[0] == {}  # nothing written by a tick yet
    # From the second tick on, P1 is reported at what the actuator took, not what was commanded.
    assert seen[1]["p1_speed"] == 35.0 and max(commanded) > 35.0
