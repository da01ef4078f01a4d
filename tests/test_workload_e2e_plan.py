"""End to end: the simulated plant, `heatctl run` with its 24-hour plan, and a real Slurm (issue 11).

Unlike test_e2e_slurm.py (today's rules, SoC thresholds at 0), the tank really fills here: the plant
runs at 20x (SimPlant's speed; the BMS's heartbeat timeout scaled with it), its tank is 50 l instead
of 2 m3 and the loops start warm (38 degC) on a hot afternoon (37 degC ambient, so the dry cooler
takes little), so that what takes a real site an hour takes seconds. The daemon's own time is real:
its loops, its plan every 4 s (15 min on a site) and its Slurm rounds every 0.5 s.

1. Consumer online, 30 kW of demand against ~10 kW of recovered heat (IT ~12 kW: idle
   and 20 % load, under the power cap as it ramps up from its start-up level): the boiler fires, the
   daemon's plan releases the batch and the node weights are its value of heat (1: wanted).
2. Consumer offline (the BMS still forecasts its 30 kW): the next plan (made at once: the queue
   changed) holds the batch now, for the hours the consumer is expected back (the nowcast: no
   demand in the current slot), so the flexible job is held with the plan's reason and the weights
   are the plan's value over the next 4 h (~0.97: wanted soon), not the present state's (0.25: the
   tank takes it). The tank fills: at the shed threshold (SoC 0.65; full is 0.95) heatctl drains
   the site's nodes with a reason naming heatctl, while the IT power is still below the power cap
   (the cap has not had to bind); a job submitted now is held too.
3. Consumer back: the nodes are resumed, the next plan releases the batch, the jobs are released
   and the weights go back to the plan's 1.
4. A leak trip caps the servers in the tick it is seen, with the plan in force.
(slurmctld stopped, and a leak trip under today's rules: test_e2e_slurm.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from controller.core.plan import Plan, PlanSlot
from controller.planning import value
from drivers.slurm.decide import node_weight
from tests.engines.slurm import site_cluster
from tests.plant_harness import Daemon, Sim, wait_for

NODES = ("hf1", "hf2")
SPEED = 20.0
SHED_SOC, RESUME_SOC = 0.65, 0.5
# The history's throttled margin (controller/daemon/runtime.py THROTTLE_MARGIN_W): IT power within
# this of the cap means the cap holds the servers back.
CAP_MARGIN_W = 500.0


def nodes(cluster) -> dict[str, tuple[str, str, int]]:
    """name -> (state, reason, weight)."""
    out = cluster.out("sinfo", "-N", "-h", "-o", "%N|%T|%E|%w", check=False)
    rows = {}
    for line in out.splitlines():
        p = line.split("|")
        if len(p) == 4 and p[0] in NODES:
            rows[p[0]] = (p[1], p[2], int(p[3]))
    return rows


def held(cluster, job: int) -> bool:
    return "JobHeld" in cluster.out("squeue", "-h", "-j", str(job), "-o", "%r", check=False)


def live_plan(d: Daemon) -> tuple[dict, Plan | None]:
    code, out, err = d.cli("plan", "--json")
    resp = json.loads(out) if out.strip() else {}
    p = resp.get("plan")
    if not p or not resp.get("in_force"):
        return resp, None
    return resp, Plan(p["made_at_s"], tuple(PlanSlot(**s) for s in p["slots"]), p["solve_s"], p["status"], p["slot_s"])


def weights_follow_the_plan(d: Daemon, cluster, want) -> bool:
    """The plan in force has a value of heat now that `want` accepts, and every node has its weight."""
    _, plan = live_plan(d)
    v = value.from_plan(plan, time.time())
    rows = nodes(cluster)
    return v is not None and want(v) and len(rows) == 2 and all(w == node_weight(v) for _, _, w in rows.values())


@pytest.fixture
def site():
    workdir = Path(tempfile.mkdtemp(prefix="hc-e2p-", dir="/tmp"))
    cluster = site_cluster(workdir / "slurm", nodes=NODES)
    cluster.start()
    sim = Sim(workdir, speed=SPEED, simulation="  initial_temp_c: 38.0\n",
              edits={"\nmodes:\n": "\nmetering:\n  tank_volume_m3: 0.05\n\nmodes:\n",
                     "  min_dwell_s: 300 ": "  min_dwell_s: 2 "})
    daemon = Daemon(workdir, sim.config)
    try:
        yield workdir, cluster, sim, daemon
    finally:
        daemon.stop()
        sim.stop()
        cluster.close()
        if not os.environ.get("HEATCTL_KEEP_E2E"):
            shutil.rmtree(workdir, ignore_errors=True)


def test_the_plan_and_a_filling_tank_drive_slurm(site):
    workdir, cluster, sim, d = site
    cfg = yaml.safe_load(sim.config.read_text())
    cfg["workload"] = {"nodes": list(NODES), "slurm_conf": str(cluster.conf), "timeout_s": 3.0,
                       "every_s": 0.5, "shed_above_soc": SHED_SOC, "resume_below_soc": RESUME_SOC,
                       "requeue_above_soc": 0.95}
    # The plan on (auto: the site has a workload: section), re-planned every 4 s instead of 15 min.
    cfg["planning"] = {"replan_every_s": 4.0, "kill_after_s": 2.0, "solve_time_limit_s": 1.0}
    sim.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert sim.request("set_load", it_load=0.2, demand_w=30000, ambient_c=37.0)["ok"]
    # Queued before the daemon starts: its first plan (made once it has read Slurm) knows the job.
    job = int(cluster.out("sbatch", "-p", "batch", "--begin=now+1hour", "--deadline=now+20hours", "-t", "60",
                          "--wrap", "sleep 60").split()[-1])
    d.start()

    # 1. Heat wanted: the plan releases the batch, the weights are its value of heat (1).
    wait_for(lambda: weights_follow_the_plan(d, cluster, lambda v: v == 1.0), 40,
             "node weights from the plan's value of heat (1)")
    resp, plan = live_plan(d)
    assert resp["last_solve"]["status"] == "optimal" and resp["fallback"] == "plan"
    assert plan.slot_at(time.time()).batch_budget_w > 0 and not held(cluster, job)
    code, text, _ = d.cli("plan")
    assert code == 0 and "in force" in text.splitlines()[0] and "release all batch" in text
    assert d.status()["plan"]["in_force"]
    soc0 = d.status()["flows"]["tank_soc"]
    assert soc0 is not None and soc0 < SHED_SOC - 0.05, soc0

    # 2. Consumer offline: the plan holds the batch for later, weights from the plan, not the state.
    assert sim.request("inject", kind="consumer_offline")["ok"]
    wait_for(lambda: held(cluster, job), 30, "the plan to hold the flexible job")
    hold = [e for e in d.events("slurm_action") if e["fields"]["action"] == "hold"]
    assert hold and hold[0]["reason"].startswith("heatctl: plan holds batch work (demand 0.0 kW"), hold
    assert "hold batch (heat would be dumped; deadlines allow)" in hold[0]["reason"]
    wait_for(lambda: weights_follow_the_plan(d, cluster, lambda v: 0.9 <= v < 1.0), 20,
             "node weights from the plan's value over the next hours")
    # The tank fills: drained at the shed threshold, before the cap binds.
    seen: dict = {}

    def drained() -> bool:
        rows = nodes(cluster)
        ok = len(rows) == 2 and all("drain" in st and r.startswith("heatctl: heat sink full") for st, r, _ in rows.values())
        if ok and not seen:
            seen.update(d.status())
        return ok
    wait_for(drained, 90, "heatctl to drain the site's nodes as the tank fills")
    soc = seen["flows"]["tank_soc"]
    assert SHED_SOC - 0.05 <= soc < 0.95, soc           # it filled, and it is not full
    it_w, cap = seen["flows"]["it_w"], seen["outputs"]["power_cap"]
    assert cap["source"] == "auto" and it_w < cap["value"] - CAP_MARGIN_W, (it_w, cap)
    job2 = int(cluster.out("sbatch", "-p", "batch", "-t", "30", "--wrap", "sleep 60").split()[-1])
    wait_for(lambda: held(cluster, job2) and held(cluster, job), 20, "both flexible jobs held while the sink is full")
    drains = [e for e in d.events("slurm_action") if e["fields"]["action"] == "drain"]
    assert {e["fields"]["target"] for e in drains} == set(NODES)
    assert all(e["user"] == "heatctl" and e["fields"]["ok"] for e in drains)

    # 3. Consumer back: resumed, the plan releases the batch, weights back to 1.
    assert sim.request("clear", kind="consumer_offline")["ok"]
    wait_for(lambda: not any("drain" in st for st, _, _ in nodes(cluster).values()), 30, "the nodes resumed")
    wait_for(lambda: not held(cluster, job) and not held(cluster, job2), 40, "the plan to release the jobs")
    releases = [e for e in d.events("slurm_action") if e["fields"]["action"] == "release"]
    assert {e["fields"]["target"] for e in releases} == {str(job), str(job2)}
    assert all(e["reason"].startswith("heatctl: plan releases batch work (demand 30.0 kW") for e in releases), releases
    wait_for(lambda: weights_follow_the_plan(d, cluster, lambda v: v == 1.0), 20,
             "node weights from the plan's value of heat (1)")
    # 4. Whatever the plan and Slurm do, a leak trip caps the servers in the tick it is seen.
    assert sim.request("inject", kind="leak", target="rack")["ok"]
    wait_for(lambda: d.status()["trips"].get("leak", {}).get("latched"), 5, "the leak trip")
    cap = d.status()["outputs"]["power_cap"]
    assert cap["source"] == "trip" and cap["value"] <= 5000.0, cap  # the leak trip's action (reference plant)
    assert d.status()["plan"]["in_force"]
    cluster.out("scancel", str(job), str(job2), check=False)
