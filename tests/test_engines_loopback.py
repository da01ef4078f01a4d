"""The real engines the tests start listen on 127.0.0.1 only (never 0.0.0.0 or [::]): each daemon's
own listening TCP and bound UDP sockets, read from /proc (tests/engines.bound_sockets), must all be
on 127.0.0.1, and must include the port the harness handed out (so an engine that listened
somewhere else entirely would fail too).

Slurm 22.05 needs both `CommunicationParameters=NoInAddrAny` (slurmd) and `NoCtldInAddrAny`
(slurmctld, which otherwise binds 0.0.0.0:SlurmctldPort); Prometheus and VictoriaMetrics get
`HOST:port` as their listen address, as does the in-process Exposition. munge talks over a Unix
socket only. The simulated plant and the daemon (`heatctl run`) too: pyghmi's IPMI client socket
would listen on [::] (drivers/ipmi/client_socket.py binds it to loopback for BMCs on loopback).
"""

from __future__ import annotations

import os

from tests.engines import HOST, bound_sockets
from tests.engines.exposition import Exposition
from tests.engines.prometheus import Prometheus
from tests.engines.slurm import SlurmCluster
from tests.engines.victoriametrics import VictoriaMetrics
from tests.plant_harness import Daemon, Sim


def assert_loopback_only(pids: list[int], must_listen_on: set[int]) -> None:
    sockets = bound_sockets(pids)
    elsewhere = sorted(s for s in sockets if s[1] != HOST)
    assert elsewhere == [], f"sockets not on {HOST}: {elsewhere}"
    listening = {port for proto, _, port in sockets if proto == "tcp"}
    assert must_listen_on <= listening, (must_listen_on, sockets)


def test_slurm_daemons_and_job_steps_listen_on_loopback_only(tmp_path):
    with SlurmCluster(tmp_path / "slurm", nodes=["n1", "n2"]) as cluster:
        job = cluster.sbatch(wrap="sleep 300")  # a live slurmstepd, whose sockets count too
        cluster.wait_job_state(job, "RUNNING")
        pids = cluster.lingering()  # slurmctld, slurmds, slurmstepd and the job
        assert cluster.controller.pid in pids
        assert_loopback_only(pids, {cluster.ctld_port, *cluster.node_ports.values()})


def test_prometheus_server_agent_and_victoriametrics_listen_on_loopback_only(tmp_path):
    with Exposition("demo_value 1\n") as target, \
         VictoriaMetrics(tmp_path / "vm") as vm, \
         Prometheus(tmp_path / "central") as central, \
         Prometheus(tmp_path / "agent", mode="agent", targets=[target.address],
                    remote_write=[vm.write_url, central.write_url]) as agent:
        for engine in (vm, central, agent):
            assert_loopback_only([engine.process.pid], {engine.port})
        # the exposition is a thread of this process: judge its own port only
        mine = {s for s in bound_sockets([os.getpid()]) if s[2] == target.port}
        assert mine == {("tcp", HOST, target.port)}


def test_simulated_plant_and_daemon_listen_on_loopback_only(tmp_path):
    sim = Sim(tmp_path)
    daemon = Daemon(tmp_path, sim.config)
    try:
        daemon.start()  # returns in normal mode: every driver, the BMCs' too, has read
        assert_loopback_only([sim.proc.pid], set())
        assert_loopback_only([daemon.proc.pid], set())
        udp = {s for s in bound_sockets([daemon.proc.pid]) if s[0] == "udp"}
        assert udp, "the daemon's IPMI client socket was not found"
    finally:
        daemon.stop()
        sim.stop()
