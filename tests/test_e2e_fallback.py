"""End to end against the simulated plant (issue 13): the plant's own word on fallback, the
heartbeat's read-back, and a restart that does not throttle compute.

The simulated plant and `heatctl run` are real processes (tests/plant_harness.py: 0.25 s tick, 1 s
critical grace, 2 s exit dwell; the plant's BMS falls back 2 s after the heartbeat stops moving).
Every wait is a poll on a condition with a bounded deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.plant_harness import Daemon, Sim, wait_for


@pytest.fixture
def plant():
    workdir = Path(tempfile.mkdtemp(prefix="hc-fb-", dir="/tmp"))  # a short unix socket path
    sim = Sim(workdir)
    daemon = Daemon(workdir, sim.config)
    try:
        yield sim, daemon
    finally:
        daemon.stop()
        sim.stop()
        if os.environ.get("HEATCTL_KEEP_E2E"):
            print(f"e2e files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _alarm(status: dict, name: str) -> dict:
    return next(a for a in status["alarms"]["alarms"] if a["name"] == name)


def _watch(sim, d, seconds: float) -> list[tuple[bool, str]]:
    """(plant on fallback, daemon mode) pairs for `seconds`: the plant first, then the daemon, so
    that a daemon that has seen the plant's state has had the chance to act on it."""
    pairs, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        fb = sim.state()["fallback_active"]
        pairs.append((fb, d.status()["mode"]["mode"]))
        time.sleep(0.1)  # the sampling rate of this watch, not a wait for a condition
    return pairs


def test_the_plant_forced_onto_its_fallback_is_an_alarm_and_the_safe_state(plant):
    sim, d = plant
    d.start()
    sim.request("inject", kind="bms_fallback")
    st = wait_for(lambda: (s := d.status())["mode"]["mode"] == "safe_degrade" and s, 10,
                  "safe_degrade on the BMS's word")
    assert any("bms_fallback: the BMS runs on its own fallback" in c for c in st["mode"]["degrade_causes"])
    wait_for(lambda: _alarm(d.status(), "bms_fallback_active")["active"], 5, "the fallback alarm")
    # heatctl writes the safe state itself: the plant is in it whichever of the two decides.
    cmd = wait_for(lambda: (c := sim.state()["commanded"])["p1_pct"] == 100.0 and c, 5, "P1 100 % commanded")
    assert cmd["boiler_enable"] is True and cmd["p2_pct"] == 100.0
    assert all(mode != "normal" for fb, mode in _watch(sim, d, 2.0) if fb)
    assert d.events("bms_fallback")
    sim.request("clear", kind="bms_fallback")
    wait_for(lambda: d.status()["mode"]["mode"] == "normal", 15, "normal after the fallback and the exit dwell")
    assert not sim.state()["fallback_active"]
    assert d.events("bms_fallback_ended")


def test_a_heartbeat_the_register_flattens_is_an_alarm_and_the_safe_state_before_the_fallback(plant):
    sim, d = plant
    d.start()
    # The BMS's heartbeat register keeps the value it has: every write is acknowledged and reads
    # back the old value, and the plant's BMS sees no heartbeat (it falls back 2 s later).
    sim.request("inject", kind="ignore_writes", target="heartbeat")
    st = wait_for(lambda: (s := d.status())["mode"]["mode"] == "safe_degrade" and s, 10,
                  "safe_degrade on the heartbeat's read-back")
    assert any(c.startswith("heartbeat point heartbeat:") for c in st["mode"]["degrade_causes"]), st["mode"]
    wait_for(lambda: _alarm(d.status(), "heartbeat_not_verified")["active"], 5, "the heartbeat alarm")
    # The BMS falls back; heatctl was in its safe state before, and stays there.
    wait_for(lambda: sim.state()["fallback_active"], 10, "the plant's BMS on its fallback")
    wait_for(lambda: _alarm(d.status(), "bms_fallback_active")["active"], 5, "the fallback alarm")
    pairs = _watch(sim, d, 2.0)
    assert pairs and all(mode == "safe_degrade" for _, mode in pairs), pairs
    assert [e["kind"] for e in d.events("heartbeat_fault")] == ["heartbeat_fault"]
    sim.request("clear", kind="ignore_writes", target="heartbeat")
    wait_for(lambda: d.status()["mode"]["mode"] == "normal", 15, "normal once the heartbeat counts again")
    assert not sim.state()["fallback_active"]
    assert d.events("heartbeat_ok")


# The reference plant's own 1 s tick and driver timeouts: at the harness's 0.25 s tick a loaded
# machine misses the read window now and then, and a tick without the IT supply caps IT at the
# safe_degrade level (PowerCap.output), which would hide what this test is about.
RESTART_EDITS = {"tick_period_s: 1.0": "tick_period_s: 1.0", "    timeout_s: 0.3 ": "    timeout_s: 0.3 "}


# Serial: the first start must read the BMCs within its read budget (0.5 s) to start bumplessly
# itself, which a machine loaded by the parallel run does not always allow.
@pytest.mark.serial
def test_a_restart_does_not_throttle_compute():
    workdir = Path(tempfile.mkdtemp(prefix="hc-fb-", dir="/tmp"))
    sim = Sim(workdir, edits=RESTART_EDITS)
    d = Daemon(workdir, sim.config)
    try:
        _restart(sim, d)
    finally:
        d.stop()
        sim.stop()
        if not os.environ.get("HEATCTL_KEEP_E2E"):
            shutil.rmtree(workdir, ignore_errors=True)


def _restart(sim, d):
    sim.request("set_load", it_load=0.9)
    d.start()
    safe_w = 16000.0  # power.safe_degrade_w of the reference plant
    # The first start is bumpless too: no BMC held a limit, so the cap starts at their 40 kW.
    s = wait_for(lambda: (s := sim.state())["it_power_w"] > 30000 and (s["power_cap_w"] or 0) >= 39000 and s,
                 30, "IT at its load under a 40 kW cap")
    before = s["it_power_w"]
    # The plant's IT power and cap from the kill on, sampled beside the restart.
    samples: list[tuple[float, float, float | None]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            st = sim.state()
            samples.append((time.monotonic(), st["it_power_w"], st["power_cap_w"]))
            done.wait(0.2)  # the sampling rate, not a wait for a condition

    d.signal(signal.SIGKILL)  # a crash: the BMCs keep the limits the daemon left
    d.wait_exit()
    killed = time.monotonic()
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        d.start()
        normal = time.monotonic()
        wait_for(lambda: samples[-1][0] > normal + 10.0, 20, "10 s of samples after normal")
    finally:
        done.set()
        sampler.join()
    start = [e for e in d.events("power_cap_start")][-1]
    assert "bumpless start: the power cap loop starts at 40000 W" in start["message"], start
    # The BMCs get the 40 kW back with the first write after normal (the old start: 16 kW, then
    # 50 W/s), and IT power has not dropped meanwhile.
    after = [(p, cap) for t, p, cap in samples if t >= normal]
    assert after and max(cap or 0 for _, cap in after[:15]) >= 39000, samples
    low = min(p for _, p, _ in samples)
    assert low > safe_w + 0.5 * (before - safe_w), (before, samples)
    assert after[-1][0] >= 0.97 * before, (before, samples)
    after = [p for p, _ in after]
    print(f"\nrestart after SIGKILL: IT {before:.0f} W before; lowest {low:.0f} W from the kill to 10 s after "
          f"normal (normal {normal - killed:.1f} s after the kill); {after[-1]:.0f} W 10 s after normal; "
          f"the safe_degrade cap is {safe_w:.0f} W")
