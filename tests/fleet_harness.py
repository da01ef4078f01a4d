"""Real Prometheus processes on 127.0.0.1 for the fleet tests (tests/engines/prometheus.py), configured
from the shipped files: a central one with its remote-write receiver (docs/fleet/central-prometheus.yml
and the fleet rules), one agent per site (docs/fleet/site-agent.yml), and a stand-in for a site
daemon's /metrics (FAKE: fixed values under the daemon's metric names and labels; the real daemon's
exposition is what tests/test_fleet_series.py counts)."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from pathlib import Path

import yaml

from tests.engines import free_port
from tests.engines.prometheus import Prometheus

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "docs" / "fleet"
PROMETHEUS = shutil.which("prometheus")


class FakeSiteExposition:
    """A daemon-like /metrics for one site (FAKE, see the module docstring): energy counters grow at
    fixed rates so that ERF = delivered / (it + aux) = 0.3."""

    def __init__(self, it_w=90_000.0, delivered_w=30_000.0, dumped_w=0.0, boiler_w=0.0, mode="normal",
                 carryable=(120_000.0, 80_000.0), alarms=(("facilities", 1),)):
        self.__dict__.update(it_w=it_w, delivered_w=delivered_w, dumped_w=dumped_w, boiler_w=boiler_w,
                             mode=mode, carryable=carryable, alarms=alarms)
        self.t0 = time.monotonic()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = outer.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def text(self) -> str:
        dt = time.monotonic() - self.t0
        lines = [f"heatctl_ticks_total {dt * 4:.0f}", f"heatctl_it_power_watts {self.it_w}"]
        lines += [f'heatctl_mode{{heatctl_mode="{m}"}} {1 if m == self.mode else 0}'
                  for m in ("safe_degrade", "normal", "buffer_charging", "bypass")]
        for flow, w in (("delivered", self.delivered_w), ("dumped", self.dumped_w), ("boiler", self.boiler_w)):
            lines.append(f'heatctl_heat_flow_watts{{flow="{flow}"}} {w}')
        for kind, w in (("delivered", 300.0), ("it", 900.0), ("aux", 100.0)):
            lines.append(f'heatctl_energy_joules_total{{kind="{kind}"}} {1e6 + w * dt}')
        lines += [f'heatctl_envelope_carryable_watts{{hour="{h}"}} {w}' for h, w in enumerate(self.carryable)]
        lines += [f'heatctl_alarm_active{{alarm="a{i}",priority="high",owner="{o}"}} {n}'
                  for i, (o, n) in enumerate(self.alarms)]
        return "# TYPE heatctl_ticks_total counter\n# TYPE heatctl_energy_joules_total counter\n" + \
            "\n".join(lines) + "\n"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def central(workdir: Path, lookback: str = "5s", evaluation: str = "1s") -> Prometheus:
    """The central store: Prometheus with the remote-write receiver and the fleet rules (evaluated
    every second here; 1 m in docs/fleet/central-prometheus.yml)."""
    cfg = yaml.safe_load((FLEET / "central-prometheus.yml").read_text())
    cfg["global"]["evaluation_interval"] = evaluation
    cfg["rule_files"] = [str(FLEET / "fleet-rules.yaml")]
    return Prometheus(workdir / "central", config=cfg,
                      extra_args=[f"--query.lookback-delta={lookback}"]).start()


def agent(workdir: Path, site: str, target_port: int, central_url: str, interval: str = "1s",
          capacity: int | None = None) -> Prometheus:
    """A site's agent from the shipped docs/fleet/site-agent.yml, with the test's site, target,
    central URL, and a short scrape interval and backoff. `capacity`: the remote-write queue's
    in-memory samples per shard (10,000 shipped); a small one makes a short outage outgrow the
    queue, so that what the centre gets afterwards comes from the WAL, as a long outage would."""
    cfg = yaml.safe_load((FLEET / "site-agent.yml").read_text())
    cfg["global"]["scrape_interval"] = interval
    cfg["global"]["external_labels"]["site"] = site
    cfg["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{target_port}"]
    rw = cfg["remote_write"][0]
    rw["url"] = central_url + "/api/v1/write"
    rw["queue_config"].update(batch_send_deadline="1s", max_backoff="2s", min_backoff="100ms")
    if capacity is not None:
        rw["queue_config"].update(capacity=capacity, max_samples_per_send=max(1, capacity // 2))
    return Prometheus(workdir / f"agent-{site}", mode="agent", config=cfg).start()
