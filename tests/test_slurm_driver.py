"""The Slurm driver against a real Slurm on 127.0.0.1 (tests/engines/slurm.py)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from drivers.slurm.driver import SlurmDriver
from drivers.slurm.model import Action, SlurmConfig
from tests.engines.slurm import site_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = site_cluster(tmp_path_factory.mktemp("slurm"))
    c.start()
    yield c
    c.close()


def driver_for(cluster, **kw) -> SlurmDriver:
    return SlurmDriver(SlurmConfig(nodes=("hc1", "hc2"), slurm_conf=str(cluster.conf), **kw))


def poll(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_reads_site_nodes_and_flexible_jobs_with_deadline(cluster):
    d = driver_for(cluster)
    out = cluster.out("sbatch", "-p", "batch", "--deadline=now+3hours", "-t", "10", "--wrap", "sleep 60")
    batch_id = int(out.split()[-1])
    out = cluster.out("sbatch", "-p", "interactive", "-t", "10", "--wrap", "sleep 60")
    other_id = int(out.split()[-1])
    try:
        snap = asyncio.run(d.snapshot())
        assert snap is not None and d.health().reachable
        assert set(snap.nodes) == {"hc1", "hc2"}  # hc3 is not this site's
        jobs = {j.job_id: j for j in snap.jobs}
        assert batch_id in jobs and other_id not in jobs
        assert jobs[batch_id].deadline_ts is not None
        assert abs(jobs[batch_id].deadline_ts - (time.time() + 3 * 3600)) < 120
    finally:
        cluster.out("scancel", str(batch_id), str(other_id), check=False)


def test_drain_resume_with_reason_and_weight(cluster):
    d = driver_for(cluster)
    reason = "heatctl: heat sink full (tank 97 %, consumer offline)"
    res = asyncio.run(d.apply([Action("drain", "hc1", reason), Action("weight", "hc2", "heat wanted", 5)]))
    assert all(r.ok for r in res), res
    snap = asyncio.run(d.snapshot())
    assert snap.nodes["hc1"].drain and snap.nodes["hc1"].reason == reason
    assert snap.nodes["hc2"].weight == 5 and not snap.nodes["hc2"].drain
    res = asyncio.run(d.apply([Action("resume", "hc1", "heatctl: heat sink free"),
                               Action("weight", "hc2", "reset", 1)]))
    assert all(r.ok for r in res), res
    snap = asyncio.run(d.snapshot())
    assert not snap.nodes["hc1"].drain and snap.nodes["hc2"].weight == 1


def test_hold_release_and_requeue(cluster):
    d = driver_for(cluster)
    pend = int(cluster.out("sbatch", "-p", "batch", "--begin=now+1hour", "--wrap", "sleep 60").split()[-1])
    run = int(cluster.out("sbatch", "-p", "batch", "--requeue", "--wrap", "sleep 60").split()[-1])
    try:
        res = asyncio.run(d.apply([Action("hold", str(pend), "heatctl: heat sink full")]))
        assert res[0].ok, res
        snap = asyncio.run(d.snapshot())
        assert {j.job_id: j for j in snap.jobs}[pend].held
        asyncio.run(d.apply([Action("release", str(pend), "heatctl: heat wanted")]))
        snap = asyncio.run(d.snapshot())
        assert not {j.job_id: j for j in snap.jobs}[pend].held
        poll(lambda: {j.job_id: j for j in asyncio.run(d.snapshot()).jobs}[run].state == "RUNNING")
        res = asyncio.run(d.apply([Action("requeue", str(run), "heatctl: before the cap binds")]))
        assert res[0].ok, res
        # Requeued: back to PENDING (Slurm holds a requeued job back by its BeginTime for a while).
        poll(lambda: {j.job_id: j.state for j in asyncio.run(d.snapshot()).jobs}.get(run) == "PENDING")
    finally:
        cluster.out("scancel", str(pend), str(run), check=False)


def test_unknown_job_is_a_failed_action_not_an_outage(cluster):
    d = driver_for(cluster)
    res = asyncio.run(d.apply([Action("hold", "999999", "x")]))
    assert not res[0].ok and res[0].error
    assert asyncio.run(d.snapshot()) is not None and d.health().reachable


def test_slurmctld_stopped_logged_once_recovered_once(cluster, caplog):
    d = driver_for(cluster, timeout_s=3.0)
    assert asyncio.run(d.snapshot()) is not None
    cluster.stop_controller()
    try:
        with caplog.at_level(logging.INFO, logger="heatctl.slurm"):
            assert asyncio.run(d.snapshot()) is None
            assert asyncio.run(d.snapshot()) is None
            h = d.health()
            assert not h.reachable and h.errors_total == 2 and h.last_error
    finally:
        cluster.start_controller()
    with caplog.at_level(logging.INFO, logger="heatctl.slurm"):
        poll(lambda: asyncio.run(d.snapshot()) is not None, timeout=30)
        assert asyncio.run(d.snapshot()) is not None
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1
    cluster.wait_nodes_idle()
