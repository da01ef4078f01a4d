"""A real Prometheus scrapes DaemonMetrics: the exposition is accepted end to end (content
negotiation included: Prometheus asks for OpenMetrics first) and a query sees the mode.

Needs /usr/bin/prometheus (Debian: `apt-get install --no-install-recommends prometheus`); skipped
without it. Prometheus is bound to 127.0.0.1 on a free port, stores in a temporary directory, and is
killed at the end. Its first scrape lands ~5-6 s after start (a built-in discovery delay), so the
test waits on `up == 1` through the query API, with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from controller.daemon.metrics import DaemonMetrics
from tests.step_helpers import make_controller, snap

PROMETHEUS = shutil.which("prometheus") or next(
    (p for p in ("/usr/bin/prometheus",) if os.access(p, os.X_OK)), None)
pytestmark = pytest.mark.skipif(PROMETHEUS is None,
                                reason="prometheus not installed (apt-get install --no-install-recommends prometheus)")

# Start-up (~1 s) + discovery delay (~5 s) + a 1 s scrape interval, with room for a slow CI box.
UP_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(api_port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{api_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_the_mode(tmp_path):
    ctrl = make_controller()
    site = ctrl.site
    metrics = DaemonMetrics(site)
    state = ctrl.initial_state(0.0)
    for t in range(3):
        res = ctrl.step(state, snap(site, float(t), consumer_heat=30000.0, aux_power=800.0), [], float(t))
        metrics.observe_tick(res, {}, 0.004, False)
        state = res.state
    assert state.mode.value == "normal"

    stop = metrics.serve("127.0.0.1", 0)
    api_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: heatctl\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{stop.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{api_port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + UP_DEADLINE_S
        up = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                up = query(api_port, 'up{job="heatctl"} == 1')
            except OSError:
                up = []  # the API is not listening yet
            if up:
                break
            time.sleep(0.25)
        assert up, f"no successful scrape within {UP_DEADLINE_S} s:\n" + (tmp_path / "prometheus.log").read_text()

        result = query(api_port, 'heatctl_mode{heatctl_mode="normal"}')
        assert [float(r["value"][1]) for r in result] == [1.0]
        result = query(api_port, 'heatctl_point_celsius{point="it_supply_temp"}')
        assert [float(r["value"][1]) for r in result] == [35.0]
        result = query(api_port, 'heatctl_energy_joules_total{kind="it"}')
        assert float(result[0]["value"][1]) == state.energy.it_j
        # The scrape itself was clean: no samples dropped for bad names or duplicates.
        result = query(api_port, 'scrape_samples_post_metric_relabeling{job="heatctl"} - scrape_samples_scraped{job="heatctl"}')
        assert [float(r["value"][1]) for r in result] == [0.0]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()
        stop()
