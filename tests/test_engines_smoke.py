"""Smoke tests of the real-engine harnesses in tests/engines/: a Slurm cluster (slurmctld + three
slurmd), and the fleet-telemetry path Prometheus agent -> VictoriaMetrics / Prometheus receiver.

Each test starts its own engines on free 127.0.0.1 ports in its own tmp_path (safe under xdist).
Missing engines skip naming the Debian package, or fail when CI is set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.engines import which_or_skip
from tests.engines.exposition import Exposition
from tests.engines.prometheus import Prometheus
from tests.engines.slurm import SlurmCluster
from tests.engines.victoriametrics import VictoriaMetrics

NODES = ["n1", "n2", "n3"]
PARTITIONS = {"batch": ["n1", "n2"], "small": ["n3"]}  # batch is the default partition


def pids_with_env(entry: str) -> list[int]:
    """Processes (other than this one) whose environment holds `entry` (e.g. SLURM_CONF=...):
    slurmd, slurmstepd and the jobs all inherit the cluster's SLURM_CONF."""
    want = entry.encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if want in (d / "environ").read_bytes().split(b"\0"):
                found.append(int(d.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ----- which_or_skip ------------------------------------------------------------------------


def test_missing_binary_skips_naming_the_package_or_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install .*no-such-pkg"):
        which_or_skip("no-such-binary-heatctl", "no-such-pkg")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-pkg"):
        which_or_skip("no-such-binary-heatctl", "no-such-pkg")
    assert which_or_skip("sh", "dash").endswith("/sh")


# ----- Slurm --------------------------------------------------------------------------------


def test_slurm_nodes_idle_job_on_requested_partition_and_drain(tmp_path):
    with SlurmCluster(tmp_path / "slurm", nodes=NODES, partitions=PARTITIONS) as cluster:
        # every node once, idle (sinfo -N lists n1 and n2 once per partition they are in)
        assert cluster.node_states() == {"n1": "idle", "n2": "idle", "n3": "idle"}
        assert cluster.run("scontrol", "ping").stdout.count("is UP") == 1

        # a job for `small` must run on n3, the only node there (the default partition is batch)
        job = cluster.sbatch("--partition=small",
                             wrap="echo node=$SLURMD_NODENAME partition=$SLURM_JOB_PARTITION")
        assert cluster.wait_job_state(job, "COMPLETED") == "COMPLETED"
        assert cluster.job_info(job)["NodeList"] == "n3"
        assert cluster.job_output(job).split() == ["node=n3", "partition=small"]
        # and a job without a partition lands in batch (n1 or n2)
        other = cluster.sbatch(wrap="echo node=$SLURMD_NODENAME")
        cluster.wait_job_state(other, "COMPLETED")
        assert cluster.job_output(other).strip() in ("node=n1", "node=n2")

        cluster.run("scontrol", "update", "NodeName=n2", "State=DRAIN",
                    "Reason=heat consumer offline")
        assert cluster.node_state("n2") == "drained"
        assert cluster.node_reason("n2") == "heat consumer offline"
        assert cluster.node_state("n1") == "idle"
        cluster.run("scontrol", "update", "NodeName=n2", "State=RESUME")
        assert cluster.wait_node_state("n2", "idle")
        assert cluster.node_reason("n2") is None


def test_slurm_controller_restart_keeps_slurmds_jobs_and_drain(tmp_path):
    # MessageTimeout=2: clients give up after ~1 s instead of ~9 s while slurmctld is down
    with SlurmCluster(tmp_path / "slurm", nodes=NODES, partitions=PARTITIONS,
                      message_timeout=2) as cluster:
        job = cluster.sbatch("--partition=small", wrap="sleep 300")
        cluster.wait_job_state(job, "RUNNING")
        cluster.run("scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=maint")
        slurmd_pids = {n: p.pid for n, p in cluster.slurmds.items()}

        cluster.stop_controller()
        assert not cluster.controller_up()
        down = cluster.run("squeue", check=False)
        assert down.returncode != 0 and "Unable to contact slurm controller" in down.stderr
        assert all(p.running for p in cluster.slurmds.values())

        cluster.start_controller()
        assert {n: p.pid for n, p in cluster.slurmds.items()} == slurmd_pids
        assert cluster.job_state(job) == "RUNNING"
        assert cluster.node_states() == {"n1": "drained", "n2": "idle", "n3": "allocated"}
        assert cluster.node_reason("n1") == "maint"


def test_slurm_two_clusters_coexist_and_exit_leaves_no_process(tmp_path):
    a = SlurmCluster(tmp_path / "a", nodes=["n1", "n2"])
    b = SlurmCluster(tmp_path / "b", nodes=["n1", "n2"])  # same node names, another cluster
    with a, b:
        assert a.cluster_name != b.cluster_name and a.ctld_port != b.ctld_port
        assert not set(a.node_ports.values()) & set(b.node_ports.values())
        ja = a.sbatch(wrap="sleep 300")
        jb = b.sbatch(wrap="sleep 300")
        a.wait_job_state(ja, "RUNNING")
        b.wait_job_state(jb, "RUNNING")
        assert a.job_ids() == [ja] and b.job_ids() == [jb]  # each sees only its own job
        job_pids = pids_with_env(f"SLURM_CONF={a.conf}")
        assert len(job_pids) >= len(a.nodes) + 2  # slurmds, the slurmstepd and the job itself
        b.run("scancel", str(jb))
        b.wait_job_state(jb, "CANCELLED")
        assert a.job_state(ja) == "RUNNING"
        b.close()
        assert a.controller_up() and a.job_state(ja) == "RUNNING"  # a survives b's exit
    # `a` exited with its job still running: nothing of either cluster may be left
    deadline = time.monotonic() + 5
    while any(alive(p) for p in job_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in job_pids if alive(p)] == []
    for c in (a, b):
        assert [p for p in pids_with_env(f"SLURM_CONF={c.conf}") if alive(p)] == []
        assert c.lingering() == []


# ----- fleet telemetry ----------------------------------------------------------------------

SITE = "smoke-site"


def test_agent_remote_writes_to_victoriametrics_and_prometheus_with_site_label(tmp_path):
    text = 'heatctl_smoke_it_power_watts{rack="r1"} %s\n'
    with Exposition(text % "1234.5") as target, \
            VictoriaMetrics(tmp_path / "vm") as vm, \
            Prometheus(tmp_path / "central") as central, \
            Prometheus(tmp_path / "agent", mode="agent", targets=[target.address],
                       remote_write=[vm.write_url, central.write_url],
                       external_labels={"site": SITE}) as agent:
        query = 'heatctl_smoke_it_power_watts{rack="r1"}'
        for store in (vm, central):
            result = store.wait_until(lambda s=store: s.query(query), 30, what=f"{query} stored")
            assert len(result) == 1
            assert result[0]["metric"]["site"] == SITE
            assert result[0]["metric"]["instance"] == target.address
            assert float(result[0]["value"][1]) == 1234.5
        # a new value flows through too (not one stale sample)
        target.set(text % "2000")
        for store in (vm, central):
            store.wait_until(lambda s=store: s.value(f'{query[:-1]},site="{SITE}"}}') == 2000,
                             20, what="new value stored")
        assert agent.self_metric("prometheus_remote_storage_samples_total") > 0
        assert target.hits >= 2
        with pytest.raises(Exception, match="no query API"):
            agent.query("up")


def test_stores_restart_keep_data_and_agent_wal_replays_central_outage(tmp_path):
    with Exposition("heatctl_smoke_counter 7\n") as target, \
            VictoriaMetrics(tmp_path / "vm") as vm, \
            Prometheus(tmp_path / "central") as central, \
            Prometheus(tmp_path / "agent", mode="agent", targets=[target.address],
                       remote_write=[vm.write_url, central.write_url],
                       external_labels={"site": SITE}) as agent:
        for store in (vm, central):
            store.wait_until(lambda s=store: s.query("heatctl_smoke_counter"), 30)
        first = time.time()

        # VictoriaMetrics: stop/start keeps its data dir and port
        vm_port = vm.port
        vm.stop()
        assert not vm.ready()
        vm.start()
        assert vm.port == vm_port
        assert vm.query("heatctl_smoke_counter", time=first)

        # central Prometheus down for a while: the agent keeps scraping into its WAL...
        central.stop()
        down = time.time()
        hits = target.hits
        agent.wait_until(lambda: target.hits >= hits + 4, 15, what="scrapes during the outage")
        up = time.time()
        assert agent.running
        central.start()
        # ...and sends what it scraped during the outage once the store is back
        window = f"{int(up - down)}s"

        def outage_samples() -> float:
            r = central.query(f"count_over_time(heatctl_smoke_counter[{window}])", time=up)
            return float(r[0]["value"][1]) if r else 0
        central.wait_until(lambda: outage_samples() >= 3, 20, what="outage samples replayed")
        assert central.query("heatctl_smoke_counter", time=first)  # data from before the outage
        r = central.query(f'heatctl_smoke_counter{{site="{SITE}"}}')
        assert r and r[0]["value"][1] == "7"
