"""The daemon's workload task (controller/daemon/workload.py) against a real Slurm: sink full ->
drain + hold (audited, reason names heatctl), consumer back -> resume + release, slurmctld stopped ->
one outage row, one restored row, and the task catches up."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.daemon.workload import WorkloadTask
from drivers.slurm.decide import Situation
from drivers.slurm.driver import SlurmDriver
from drivers.slurm.model import SlurmConfig
from tests.engines.slurm import site_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = site_cluster(tmp_path_factory.mktemp("slurm"), nodes=("hw1", "hw2"))
    c.start()
    yield c
    c.close()


def test_sink_full_then_consumer_back_then_outage(cluster):
    rows = []
    task = WorkloadTask(SlurmDriver(SlurmConfig(nodes=("hw1", "hw2"), slurm_conf=str(cluster.conf),
                                                timeout_s=3.0)),
                        rows.extend, time.time, every_s=0.0)
    job = int(cluster.out("sbatch", "-p", "batch", "--begin=now+1hour", "--wrap", "sleep 60").split()[-1])
    try:
        full = Situation(time.time(), consumer_online=False, tank_soc=0.93)
        asyncio.run(task.run_once(full))
        states = cluster.out("sinfo", "-N", "-h", "-o", "%N %T %E")
        assert states.count("heatctl: heat sink full (tank 93 %, consumer offline)") >= 2, states
        assert "JobHeld" in cluster.out("squeue", "-h", "-j", str(job), "-o", "%r")
        acts = [r for r in rows if r.kind == "slurm_action"]
        assert {(r.fields["action"], r.fields["target"]) for r in acts} == {("drain", "hw1"), ("drain", "hw2"),
                                                                            ("hold", str(job))}
        assert all(r.user == "heatctl" and r.reason.startswith("heatctl:") and r.fields["ok"] for r in acts)
        assert task.status()["shed"] and task.status()["held_jobs"] == [job]

        rows.clear()
        asyncio.run(task.run_once(Situation(time.time(), consumer_online=True, tank_soc=0.93)))
        assert {(r.fields["action"], r.fields["target"]) for r in rows} == {("resume", "hw1"), ("resume", "hw2"),
                                                                            ("release", str(job))}
        assert "JobHeld" not in cluster.out("squeue", "-h", "-j", str(job), "-o", "%r")

        rows.clear()
        cluster.stop_controller()
        try:
            asyncio.run(task.run_once(full))
            asyncio.run(task.run_once(full))
            assert [r.kind for r in rows] == ["workload_outage"] and task.down
        finally:
            cluster.start_controller()
        deadline = time.monotonic() + 30
        while task.down or not task.memory.shed:
            assert time.monotonic() < deadline, "workload task did not catch up after slurmctld returned"
            asyncio.run(task.run_once(full))
            time.sleep(0.2)
        kinds = [r.kind for r in rows]
        assert kinds.count("workload_outage") == 1 and kinds.count("workload_restored") == 1
        assert "heatctl: heat sink full" in cluster.out("sinfo", "-N", "-h", "-n", "hw1", "-o", "%E")
    finally:
        cluster.out("scancel", str(job), check=False)
        cluster.out("scontrol", "update", "NodeName=hw1,hw2", "State=RESUME", check=False)
