"""End to end: the simulated plant, `heatctl run` and a real Slurm together (issue 11's done-when).

The consumer goes offline (the sim plant's fault injection) and the tank fills: heatctl drains the
site's nodes (reason names heatctl) and holds the flexible jobs; the consumer returns: it resumes and
releases them. A leak trip still caps the servers in the tick it is seen, whatever Slurm does. With
slurmctld stopped the daemon keeps ticking, raises the driver_down:slurm alarm and catches up when it
returns. The SoC thresholds are 0 here, so that the consumer's state alone decides within seconds
(the SoC hysteresis itself is table-tested in test_slurm_driver_decide.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.engines.slurm import site_cluster
from tests.plant_harness import Daemon, Sim, wait_for

NODES = ("he1", "he2")


def node_rows(cluster) -> dict[str, str]:
    out = cluster.out("sinfo", "-N", "-h", "-o", "%N|%T|%E", check=False)
    return {p[0]: p for p in (line.split("|") for line in out.splitlines()) if p and p[0] in NODES}


def drained_by_heatctl(cluster) -> bool:
    rows = node_rows(cluster)
    return len(rows) == 2 and all("drain" in r[1] and r[2].startswith("heatctl:") for r in rows.values())


def job_held(cluster, job: int) -> bool:
    return "JobHeld" in cluster.out("squeue", "-h", "-j", str(job), "-o", "%r", check=False)


@pytest.fixture
def site():
    workdir = Path(tempfile.mkdtemp(prefix="hc-e2s-", dir="/tmp"))
    cluster = site_cluster(workdir / "slurm", nodes=NODES)
    cluster.start()
    sim = Sim(workdir)
    daemon = Daemon(workdir, sim.config)
    try:
        yield workdir, cluster, sim, daemon
    finally:
        daemon.stop()
        sim.stop()
        cluster.close()
        if not os.environ.get("HEATCTL_KEEP_E2E"):
            shutil.rmtree(workdir, ignore_errors=True)


def test_compute_follows_heat_through_slurm(site):
    workdir, cluster, sim, d = site
    cfg = yaml.safe_load(sim.config.read_text())
    cfg["workload"] = {"nodes": list(NODES), "slurm_conf": str(cluster.conf), "timeout_s": 2.0,
                       "every_s": 0.5, "shed_above_soc": 0.0, "resume_below_soc": 0.0,
                       "requeue_above_soc": 1.0}
    # Today's rules only: the daemon's plan (which may hold the job for the hours heat is wanted)
    # is tested end to end in test_workload_e2e_plan.py.
    cfg["planning"] = {"enabled": "off"}
    cfg.setdefault("alarms", {})["slurm_down"] = {
        "kind": "condition", "signal": "driver_down:slurm", "priority": "medium", "owner": "it_operations"}
    sim.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    d.start()
    job = int(cluster.out("sbatch", "-p", "batch", "--begin=now+1hour", "--wrap", "sleep 60").split()[-1])

    # Consumer offline, tank filling: drained with a heatctl reason, flexible job held.
    assert sim.request("inject", kind="consumer_offline")["ok"]
    wait_for(lambda: drained_by_heatctl(cluster) and job_held(cluster, job), 40,
             "heatctl to drain the site's nodes and hold the flexible job")
    # (Slurm shows the actions before the task's round ends and records them: poll, do not race.)
    wait_for(lambda: d.status()["workload"]["shed"], 5, "status to show the workload shed")
    wait_for(lambda: any(e.get("user") == "heatctl" for e in d.events("slurm_action")), 5, "the audited actions")

    # Consumer back: resumed and released.
    assert sim.request("clear", kind="consumer_offline")["ok"]
    wait_for(lambda: not any("drain" in r[1] for r in node_rows(cluster).values()) and not job_held(cluster, job),
             30, "heatctl to resume the nodes and release the job")

    # slurmctld stopped: the daemon keeps ticking and raises the alarm.
    cluster.stop_controller()
    try:
        ticks = d.status()["ticks"]["count"]
        wait_for(lambda: d.status()["workload"]["down"], 20, "the workload task to see Slurm down")
        wait_for(lambda: any(a["name"] == "slurm_down" and a["active"] for a in d.status()["alarms"]["alarms"]),
                 10, "the driver_down:slurm alarm")
        wait_for(lambda: len(d.events("workload_outage")) == 1, 5, "one workload_outage row")
        assert d.status()["mode"]["mode"] == "normal"
        wait_for(lambda: d.status()["ticks"]["count"] > ticks + 8, 10, "the daemon to keep ticking")
        # Meanwhile the consumer goes offline again: nothing reaches Slurm, the cap keeps the plant safe.
        assert sim.request("inject", kind="consumer_offline")["ok"]
    finally:
        cluster.start_controller()
    # Slurm back: the daemon catches up (drains again, the sink is still full).
    wait_for(lambda: not d.status()["workload"]["down"] and drained_by_heatctl(cluster), 40,
             "the daemon to catch up once slurmctld is back")
    wait_for(lambda: len(d.events("workload_restored")) == 1, 5, "one workload_restored row")
    assert len(d.events("workload_outage")) == 1

    # A leak trip caps the servers in the tick it is seen, whatever Slurm does.
    assert sim.request("inject", kind="leak", target="rack")["ok"]
    wait_for(lambda: d.status()["trips"].get("leak", {}).get("latched"), 5, "the leak trip")
    cap = d.status()["outputs"]["power_cap"]
    assert cap["source"] == "trip" and cap["value"] <= 5000.0  # the leak trip's action (reference plant)
    cluster.out("scancel", str(job), check=False)
