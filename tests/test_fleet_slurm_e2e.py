"""Issue 12's placement end to end, on real parts on 127.0.0.1: two sites (the simulated reference
plant and `heatctl run` as processes), one real Slurm spanning both sites' nodes (one partition per
site, and `batch`, the flexible partition, over all of them). One site dumps (its tank full, no
demand: bypass), the other fires its boiler (demand beyond what its servers bring). Each site's
daemon sets its own nodes' weights from its value of heat (controller.planning.value, present state:
the plan is off); the test never touches a weight. A flexible job submitted to `batch` then runs at
the site that fires its boiler.

Honest by construction: the dumping site's nodes come first in Slurm's node table (name order:
east before west), so with the weights left alone the job would run there (checked with the
simulation's own placement rule, simulations.fleet.placement).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from simulations.fleet.placement import NodeView, pick_nodes, table_order
from tests.engines.slurm import SlurmCluster
from tests.plant_harness import Daemon, Sim, wait_for

SITES = {"east": ("east1", "east2"), "west": ("west1", "west2")}
NODES = [n for nodes in SITES.values() for n in nodes]


def weights(cluster: SlurmCluster) -> dict[str, int]:
    out = cluster.run("sinfo", "-N", "-h", "-o", "%N %w", check=False).stdout
    return {p[0]: int(p[1]) for p in (line.split() for line in out.splitlines()) if len(p) == 2}


def site(workdir: Path, name: str, cluster: SlurmCluster, initial_temp_c: float,
         boiler_on_below_k: float | None = None) -> tuple[Sim, Daemon]:
    d = workdir / name
    d.mkdir()
    sim = Sim(d, simulation=f"  initial_temp_c: {initial_temp_c}\n")
    cfg = yaml.safe_load(sim.config.read_text())
    cfg["workload"] = {"nodes": list(SITES[name]), "slurm_conf": str(cluster.conf), "timeout_s": 5.0,
                       "every_s": 0.5, "shared_partition": True}
    # The value of heat from the present state (the plan's value is tested with the plan).
    cfg["planning"] = {"enabled": "off"}
    # Mode changes within seconds (a 5-minute dwell in the shipped config).
    cfg["modes"]["min_dwell_s"] = 2
    # The start-up safe state turns the boiler on; it may switch off after 5 s, not 10 min.
    cfg["outputs"]["boiler_min_switch_s"] = 5
    if boiler_on_below_k is not None:
        for policy in cfg["policy"].values():
            policy["boiler_on_below_k"] = boiler_on_below_k
    sim.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return sim, Daemon(d, sim.config)


def test_flexible_job_runs_where_the_boiler_fires_not_where_heat_is_dumped():
    workdir = Path(tempfile.mkdtemp(prefix="hc-fs-", dir="/tmp"))
    parts: list = []
    try:
        # Every node starts at Weight=50 (slurm.conf): the daemons must move both sites' weights.
        cluster = SlurmCluster(workdir / "slurm", nodes=NODES,
                               partitions={"batch": NODES, **{s: list(n) for s, n in SITES.items()}},
                               node_options={n: "Weight=50" for n in NODES})
        cluster.start()
        parts.append(cluster)
        assert weights(cluster) == {n: 50 for n in NODES}
        assert pick_nodes(table_order(NodeView(n, 50, True) for n in NODES), 1) == ["east1"]
        # east: starts warm (tank full: 46 degC is the reference tank's full temperature), no demand,
        # its boiler's thermostat set down for the summer (the idle pool loop cools: with the shipped
        # 1 K it would fire the boiler to keep the loop at 39 degC with nobody taking heat).
        # west: starts cold, the pool asks for far more than the servers bring.
        east = site(workdir, "east", cluster, 46.0, boiler_on_below_k=30.0)
        west = site(workdir, "west", cluster, 30.0)
        parts += [s for pair in (east, west) for s in pair]
        assert east[0].request("set_load", demand_w=0.0, available=True)["ok"]
        assert west[0].request("set_load", demand_w=90000.0, available=True)["ok"]
        east[1].start()
        west[1].start()

        seen: dict = {}

        def east_dumping():
            st = east[1].status()
            seen.update(mode=st["mode"]["mode"], boiler=st["outputs"].get("boiler_enable"),
                        plant_boiler_on=east[0].state().get("boiler_on"))
            return seen["mode"] == "bypass" and not seen["plant_boiler_on"]
        try:
            wait_for(east_dumping, 60, "east dumping (bypass), its boiler off")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; east: {seen}") from None
        wait_for(lambda: west[0].state().get("boiler_on"), 60, "west's boiler firing")
        # The daemons publish the value of heat as node weights: 100 where it is dumped, 1 where it
        # replaces the boiler (drivers.slurm.decide.node_weight).
        want = {"east1": 100, "east2": 100, "west1": 1, "west2": 1}
        try:
            wait_for(lambda: weights(cluster) == want, 60, "each daemon to weight its own nodes")
        except AssertionError as e:
            raise AssertionError(f"{e}: Slurm has {weights(cluster)}; east: {east[1].status().get('workload')}; "
                                 f"west: {west[1].status().get('workload')}") from None
        # ... each its own nodes only, audited as heatctl's actions (the database thread writes them).
        for name, (_sim, daemon) in (("east", east), ("west", west)):
            def targets(d=daemon):
                rows = [e for e in d.events("slurm_action") if e.get("user") == "heatctl"]
                return {(e.get("fields") or {}).get("target") for e in rows}
            wait_for(lambda t=targets, n=name: t() == set(SITES[n]), 10, f"{name}'s audited weight actions")

        job = cluster.sbatch("--partition=batch", "--nodes=1", wrap="sleep 120")
        cluster.wait_job_state(job, "RUNNING")
        got = cluster.run("scontrol", "show", "hostnames", cluster.job_info(job)["NodeList"]).stdout.split()
        assert got == ["west1"], got
        # The fleet simulation places it the same way from the same weights.
        w = weights(cluster)
        assert pick_nodes(table_order(NodeView(n, w[n], True) for n in NODES), 1) == got
        assert all(d.proc.poll() is None for _s, d in (east, west))
    finally:
        for p in reversed(parts):
            try:
                (p.close if isinstance(p, SlurmCluster) else p.stop)()
            except Exception:  # noqa: BLE001 - tear down the rest whatever one part did
                pass
        if not os.environ.get("HEATCTL_KEEP_E2E"):
            shutil.rmtree(workdir, ignore_errors=True)
