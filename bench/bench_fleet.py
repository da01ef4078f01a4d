"""Benchmark: the site's metric series count, and a central store's ingestion for a fleet of sites.

Serves N sites (default 100) from this process, each the exposition a real daemon of the reference
plant serves (DaemonMetrics of config/reference-plant.yaml, rendered once, values as at start-up),
on its own port; one Prometheus agent (docs/fleet/site-agent.yml) scrapes all N with a distinct
`site` label per target and remote-writes to a central Prometheus (--web.enable-remote-write-receiver).
After a warm-up, prints the samples/s the central store appended (its own
prometheus_tsdb_head_samples_appended_total), its active series, and its CPU and RSS.

    .venv/bin/python bench/bench_fleet.py [--sites 100] [--scrape 15] [--seconds 60]

Prints its figures; asserts nothing. The agent, the targets and the central store share this
machine's cores. One agent for all sites stands in for N site agents (the central store sees the
same series and samples either way; it does not see N connections).
"""

from __future__ import annotations

import argparse
import http.server
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402

from controller.daemon.metrics import DaemonMetrics  # noqa: E402
from controller.site.loader import load_config  # noqa: E402
from tests.engines.prometheus import Prometheus  # noqa: E402
from tests.fleet_harness import FLEET, central  # noqa: E402


def exposition(config: Path) -> bytes:
    return generate_latest(DaemonMetrics(load_config(config).site).registry)


def serve(body: bytes) -> http.server.ThreadingHTTPServer:
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def own_metric(url: str, name: str) -> float:
    """Sum of a metric's samples on the central store's own /metrics (it does not scrape itself)."""
    import urllib.request
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--scrape", type=float, default=15.0, help="scrape interval (s)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window after the warm-up")
    a = ap.parse_args()
    counts = {}
    for cfg in [ROOT / "config" / "reference-plant.yaml", *sorted((ROOT / "config" / "templates").glob("*.yaml"))]:
        text = exposition(cfg).decode()
        counts[cfg.stem] = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    print("series per site (one daemon's /metrics at start-up):")
    for k, v in counts.items():
        print(f"  {k:<28} {v}")
    body = exposition(ROOT / "config" / "reference-plant.yaml")
    servers = [serve(body) for _ in range(a.sites)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = central(work, lookback="5m", evaluation="1m")  # as docs/fleet/central-prometheus.yml
        cfg = yaml.safe_load((FLEET / "site-agent.yml").read_text())
        cfg["global"]["scrape_interval"] = f"{a.scrape:g}s"
        cfg["global"]["external_labels"] = {"region": "bench", "owner": "bench"}
        cfg["scrape_configs"][0]["static_configs"] = [
            {"targets": [f"127.0.0.1:{s.server_address[1]}"], "labels": {"site": f"site{i:03d}"}}
            for i, s in enumerate(servers)]
        cfg["remote_write"][0]["url"] = store.url + "/api/v1/write"
        cfg["remote_write"][0]["queue_config"]["max_shards"] = 16
        agent = Prometheus(work / "agent", mode="agent", config=cfg).start()
        try:
            warm = 2 * a.scrape + 5
            print(f"{a.sites} sites, scrape every {a.scrape:g} s; warm-up {warm:g} s, then {a.seconds:g} s measured")
            time.sleep(warm)  # benchmark window, not a wait for a condition
            s0 = own_metric(store.url, "prometheus_tsdb_head_samples_appended_total")
            c0, _ = proc_stats(store.process.pid)
            t0 = time.monotonic()
            time.sleep(a.seconds)
            s1 = own_metric(store.url, "prometheus_tsdb_head_samples_appended_total")
            c1, rss = proc_stats(store.process.pid)
            dt = time.monotonic() - t0
            series = own_metric(store.url, "prometheus_tsdb_head_series")
            print(f"central store: {(s1 - s0) / dt:,.0f} samples/s ingested "
                  f"(expected {a.sites * counts['reference-plant'] / a.scrape:,.0f}), {series:,.0f} head series, "
                  f"CPU {100 * (c1 - c0) / dt:.0f} % of one core, RSS {rss / 2**20:.0f} MiB")
        finally:
            agent.stop()
            store.stop()
            for s in servers:
                s.shutdown()


if __name__ == "__main__":
    main()
