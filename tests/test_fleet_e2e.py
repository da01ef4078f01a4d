"""Issue 12's end to end, on real parts on 127.0.0.1: three sites (the simulated reference plant and
`heatctl run` as processes, each serving --metrics), one Prometheus agent per site from
docs/fleet/site-agent.yml, and a central Prometheus with its remote-write receiver and the fleet
rules. The fleet rules and `heatctl fleet` see every site; then the central store is stopped while
the sites run, restarted, and every site's series has no gap over the outage (the agents' WAL
replays).

The outage is 30 s, not issue 12's two minutes: what makes an outage long for an agent is the
samples it must hold beyond its in-memory queue, not the wall time. The agents here have a
remote-write queue of 200 samples per shard (10,000 shipped), so each site's ~30 s of scrapes
(thousands of samples) outgrow it many times over, as two minutes (or hours) would outgrow the
shipped queue: the samples after the first 200 reach the centre only by the WAL's replay. Each agent
must also have counted failed sends during the outage (it saw it), and the backoff is capped at
2 s (harness), so it retries ~15 times, not once.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from controller.ops.fleet import fleet_table, query
from tests.fleet_harness import PROMETHEUS, agent, central, free_port
from tests.plant_harness import HEATCTL, ROOT, Daemon, Sim, wait_for

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus")

SITES = ("north", "south", "east")
SCRAPE_S = 2
OUTAGE_S = 30
QUEUE_CAPACITY = 200


class MetricsDaemon(Daemon):
    """`heatctl run` serving /metrics on a free port (plant_harness.Daemon does not serve them)."""

    def __init__(self, workdir, config):
        super().__init__(workdir, config)
        self.metrics_port = free_port()

    def start(self) -> None:
        import os
        import subprocess
        self.runs += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HEATCTL_SOCKET", None)
        self.log = open(self.workdir / f"daemon-{self.runs}.log", "w")
        self.proc = subprocess.Popen(
            [*HEATCTL, "run", "--config", str(self.config), "--state-dir", str(self.state_dir),
             "--socket", self.socket, "--log-format", "json", "--metrics", f"127.0.0.1:{self.metrics_port}"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.status()["mode"]["mode"] == "normal", 30, "the daemon in normal mode")


def range_query(url, expr, start, end, step):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{q}", timeout=30) as r:
        return json.loads(r.read())["data"]["result"]


def test_three_sites_through_agents_to_a_central_store_survive_its_outage(tmp_path):
    sims, daemons, agents, store = [], [], [], None
    try:
        store = central(tmp_path, lookback="10s")
        for name in SITES:
            d = tmp_path / name
            d.mkdir()
            sim = Sim(d)
            sims.append(sim)
            daemon = MetricsDaemon(d, sim.config)
            daemon.start()
            daemons.append(daemon)
            agents.append(agent(tmp_path, name, daemon.metrics_port, store.url, interval=f"{SCRAPE_S}s",
                                capacity=QUEUE_CAPACITY))
        wait_for(lambda: {s["metric"]["site"] for s in query(store.url, "site:heatctl_it_power_watts:sum")}
                 == set(SITES), 60, "the recording rules for every site")
        for record in ("site:heatctl_heat_reused_watts:sum", "site:heatctl_carryable_watts_24h:min"):
            assert {s["metric"]["site"] for s in query(store.url, record)} == set(SITES), record
        assert sorted(r.site for r in fleet_table(store.url)) == sorted(SITES)

        store.stop()
        down_at = time.time()
        time.sleep(OUTAGE_S)  # the outage itself is the condition under test: wall time is the point
        up_at = time.time()
        # Every agent saw the outage: its sends failed and were retried, none dropped.
        retried = [a.self_metric("prometheus_remote_storage_samples_retried_total") for a in agents]
        assert all(r > 0 for r in retried), retried
        assert all(a.self_metric("prometheus_remote_storage_samples_failed_total") == 0 for a in agents)
        sent = [a.self_metric("prometheus_remote_storage_samples_total") for a in agents]
        store.start()
        # Every site's tick counter, with a step of the scrape interval over the outage and a window of
        # 1.5 intervals: a step without a sample is a gap.
        expr = f"count by (site) (count_over_time(heatctl_ticks_total[{int(SCRAPE_S * 1.5)}s]))"

        def no_gap():
            res = range_query(store.url, expr, down_at, up_at, SCRAPE_S)
            steps = int((up_at - down_at) // SCRAPE_S) + 1
            per_site = {s["metric"]["site"]: len(s["values"]) for s in res}
            return per_site if per_site == {n: steps for n in SITES} else None

        wait_for(no_gap, 90, "every site's series complete over the outage (WAL replayed)", every_s=1)
        assert sorted(r.site for r in fleet_table(store.url)) == sorted(SITES)
        # Each agent sent the outage's samples afterwards: many times its in-memory queue (WAL replay).
        resent = [a.self_metric("prometheus_remote_storage_samples_total") - s for a, s in zip(agents, sent)]
        assert all(r > 10 * QUEUE_CAPACITY for r in resent), resent
        assert all(d.proc.poll() is None for d in daemons)  # the sites kept running without the centre
    finally:
        for a in agents:
            a.stop()
        if store:
            store.stop()
        for d in daemons:
            d.stop()
        for s in sims:
            s.stop()
