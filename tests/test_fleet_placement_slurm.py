"""The fleet simulation's placement rule (simulations.fleet.placement.pick_nodes) against a real
Slurm: the same nodes (three sites of two nodes, one partition, slurm.conf order), the same weights
(set with heatctl's own Slurm driver, as a site's daemon sets them) and drains, the same jobs, one
at a time; every job lands on the nodes the simulation picks, or stays pending where it finds none.

A seeded sequence of events over the short window: weight changes per site, drains and resumes,
jobs of one and two nodes submitted, running jobs ended (scancel). Needs root and Debian's Slurm
(tests/engines/slurm.py); skips otherwise, fails under CI.
"""

from __future__ import annotations

import asyncio
import random

from drivers.slurm.driver import SlurmDriver
from drivers.slurm.model import Action, SlurmConfig
from simulations.fleet.placement import NodeView, pick_nodes, table_order
from tests.engines import tail, wait_until
from tests.engines.slurm import SlurmCluster

SITES = {"pool": ["pool1", "pool2"], "dhw": ["dhw1", "dhw2"], "dist": ["dist1", "dist2"]}
NODES = [n for names in SITES.values() for n in names]
STEPS = 20
SEED = 12


def hostnames(cluster: SlurmCluster, nodelist: str) -> list[str]:
    return cluster.run("scontrol", "show", "hostnames", nodelist).stdout.split()


def test_simulated_placement_matches_slurm(tmp_path):
    rng = random.Random(SEED)
    with SlurmCluster(tmp_path / "slurm", nodes=NODES) as cluster:
        driver = SlurmDriver(SlurmConfig(nodes=tuple(NODES), slurm_conf=str(cluster.conf), timeout_s=15))
        weight = {n: 1 for n in NODES}
        drained: set[str] = set()
        running: dict[int, list[str]] = {}
        checked = pending_seen = 0

        def apply(actions):
            results = asyncio.run(driver.apply(actions))
            assert all(r.ok for r in results), [r.error for r in results if not r.ok]

        for step in range(STEPS):
            # The sites publish new weights (heatctl's node_weight range, 1..100).
            new = {site: rng.choice([1, 1, 20, 50, 100]) for site in SITES}
            apply([Action("weight", n, "heatctl: test", new[site]) for site, names in SITES.items()
                   for n in names if weight[n] != new[site]])
            weight.update({n: new[site] for site, names in SITES.items() for n in names})
            # Now and then a site drains a node or resumes it.
            if rng.random() < 0.3:
                n = rng.choice(NODES)
                if n in drained:
                    apply([Action("resume", n, "heatctl: test")])
                    drained.discard(n)
                    # A resumed node is offered to jobs once slurmctld has it idle and responding
                    # again (sinfo: `idle`, not `idle*`), a moment after the update.
                    cluster.wait_node_state(n, "idle")
                elif n not in {x for nodes in running.values() for x in nodes}:
                    apply([Action("drain", n, "heatctl: test")])
                    drained.add(n)
            # Now and then a running job ends; its nodes are idle again before the next job.
            if running and rng.random() < 0.4:
                job = rng.choice(sorted(running))
                cluster.run("scancel", str(job))
                freed = running.pop(job)
                wait_until(lambda: all(cluster.node_state(n) in ("idle", "drained") for n in freed), 30, 0.2,
                           f"nodes {freed} of job {job} free")
            width = rng.choice([1, 1, 2])
            busy = {x for v in running.values() for x in v}
            view = table_order(NodeView(n, weight[n], n not in drained and n not in busy) for n in NODES)
            expected = pick_nodes(view, width)
            job = cluster.sbatch(f"--nodes={width}", "--ntasks-per-node=1", wrap="sleep 600")

            def settled():
                info = cluster.job_info(job) or {}
                if info.get("JobState") == "RUNNING":
                    return info
                if info.get("JobState") == "PENDING" and info.get("Reason") in ("Resources", "Priority"):
                    return info
                return None
            info = wait_until(settled, 30, 0.2, f"job {job} placed or pending for resources")
            context = f"step {step}: weights {weight}, drained {sorted(drained)}, busy {running}, width {width}"
            if expected is None:
                assert info["JobState"] == "PENDING", f"{context}: simulation: pending; Slurm: {info.get('NodeList')}"
                pending_seen += 1
                cluster.run("scancel", str(job))
            else:
                got = hostnames(cluster, info["NodeList"])
                assert sorted(got) == sorted(expected), (
                    f"{context}: simulation {expected}, Slurm {got}\n"
                    + cluster.run("sinfo", "-N", "-h", "-o", "%N %w %T").stdout
                    + tail(cluster.log_dir / "slurmctld.log", 40))
                running[job] = got
                checked += 1
        # The sequence covered what it is meant to: placements, a job that found no nodes, weights
        # that differ between sites.
        assert checked >= 8 and pending_seen >= 1, (checked, pending_seen)
