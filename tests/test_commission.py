"""Commissioning: the reference plan against the simulated plant and the daemon, both as processes.

The plan is config/commissioning/reference-plant.yaml as shipped; the daemon's config is the e2e
one of tests/test_e2e_daemon.py (0.25 s tick, short grace and exit dwell) with a 2 s mode dwell, a
2 s sensor_lost grace (10 s shipped: the sensor drill waited it out) and a 500 W surplus to enter
buffer_charging (3 kW shipped): the consumer-offline drill comes right after the sensor drill's
safe_degrade (P1 and the dry cooler at 100 %) has cooled the IT loop, and the captured heat took
from 2 s to 90 s to climb past 3 kW again. With the consumer offline every captured watt is surplus
(controller/core/step.py _surplus), so the threshold only sets how long the drill waits; with it
online the surplus is far below zero (the pool's demand), so the lower threshold changes no other
step. The whole plan (points, modes, four trip proofs, four drills) runs in about half a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from controller import cli
from controller.ops.commissioning import Expect, PlanError, Runner, Step, Plan, load_plan
from tests.plant_harness import Daemon, Sim, ROOT

PLAN = ROOT / "config" / "commissioning" / "reference-plant.yaml"


def test_reference_plan_passes_against_the_simulated_plant(capsys):
    workdir = Path(tempfile.mkdtemp(prefix="hc-com-", dir="/tmp"))
    sim = Sim(workdir)
    text = sim.config.read_text()
    assert "  min_dwell_s: 300" in text
    assert text.count("\n    grace_s: 10\n") == 1  # sensor_lost's, the only trip with a grace
    assert "  surplus_enter_w: 3000\n" in text
    sim.config.write_text(text.replace("  min_dwell_s: 300", "  min_dwell_s: 2")
                          .replace("\n    grace_s: 10\n", "\n    grace_s: 2\n")
                          .replace("  surplus_enter_w: 3000\n", "  surplus_enter_w: 500\n"))
    d = Daemon(workdir, sim.config)
    try:
        d.start()
        out = workdir / "report"
        code = cli.main(["commission", "--plan", str(PLAN), "--reason", "site acceptance test",
                         "--sim-control", str(sim.control_port), "--out", str(out), "--socket", d.socket])
        printed = capsys.readouterr().out
        js = next(out.glob("commissioning-*.json"))
        rep = json.loads(js.read_text())
        failed = [(s["step"], s.get("notes")) for s in rep["steps"] if not s["passed"]]
        assert code == 0 and rep["passed"], (failed, printed[-3000:])
        assert len(rep["steps"]) == 14
        by = {s["step"]: s for s in rep["steps"]}
        pump = by["drill: stop pump P1"]
        assert pump["during"]["mode"] == "safe_degrade" and "low_flow" in pump["during"]["trips"]
        assert pump["before"]["mode"] == "normal" and pump["time_to_respond_s"] <= 20
        assert pump["restore"]["after"]["mode"] == "normal"
        assert "srv3_power" in by["drill: remove a server (srv3)"]["during"]["bad_readings"]
        sensor = by["drill: fail a sensor (IT supply temperature)"]
        # The grace held (counted from the last good read, so up to a tick before the injection).
        assert "sensor_lost" in sensor["during"]["trips"] and sensor["time_to_respond_s"] >= 1.5
        assert by["prove it_overtemp"]["actions"]["p1_speed"] == 100
        md = next(out.glob("commissioning-*.md")).read_text()
        assert "## Sign-off" in md and "safety reviewer" in md and "**Result: PASS**" in md
        # Every change carried the reason, and is in the audit log.
        acks = d.events("trip_acked")
        assert acks and all(e["reason"].startswith("site acceptance test") for e in acks)
    finally:
        d.stop()
        sim.stop()
        if not os.environ.get("HEATCTL_KEEP_E2E"):
            shutil.rmtree(workdir, ignore_errors=True)


def test_plan_errors_are_one_line_each(tmp_path, capsys):
    bad = tmp_path / "plan.yaml"
    bad.write_text("plan: x\nsite: y\nsteps:\n  - {name: a, kind: mode}\n  - {name: b, kind: drill, expect: {mood: normal}}\n"
                   "  - {name: c, kind: points}\n  - {name: c, kind: points, kind: points}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(bad)
    assert exc.value.problems == [f"{bad}:7: steps[3].kind: duplicate key (YAML would silently keep the last one)"]
    bad.write_text("plan: x\nsite: y\nsteps:\n  - {name: a, kind: mode}\n  - {name: b, kind: drill, expect: {mood: normal}}\n")
    assert cli.main(["commission", "--plan", str(bad), "--reason", "r"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "steps[1].expect.mood" in err[0] and ":5:" in err[0]
    bad.write_text("plan: x\nsite: y\nsteps:\n  - {name: a, kind: mode}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(bad)
    assert "needs 'mode'" in exc.value.problems[0]


def test_manual_step_needs_a_person_unless_the_plan_allows_yes():
    st = {"mode": {"mode": "normal"}, "trips": {}, "outputs": {}, "readings": {}, "summary": {},
          "daemon": {}}
    api = lambda req: {"ok": True, "status": st} if req["op"] == "status" else {"ok": True, "accepted": True}  # noqa: E731
    step = Step(name="close V7 by hand", kind="drill", manual="close V7", expect=Expect(mode="normal"), timeout_s=1)
    plan = Plan(plan="p", site="s", steps=[step])
    rep = Runner(plan, "r", api, None, ask=lambda q: True, yes=True, say=lambda s: None).run()
    assert not rep["passed"] and "does not allow --yes" in rep["steps"][0]["notes"][0]
    rep = Runner(plan, "r", api, None, ask=lambda q: False, say=lambda s: None).run()
    assert not rep["passed"] and "not confirmed" in rep["steps"][0]["notes"][0]
    asked = []
    rep = Runner(plan, "r", api, None, ask=lambda q: asked.append(q) or True, say=lambda s: None).run()
    assert rep["passed"] and "close V7" in asked[0]
