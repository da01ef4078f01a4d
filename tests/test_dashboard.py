"""The Grafana dashboard (docs/grafana/heatctl-dashboard.json) against the daemon's real metrics.

(a) Every metric name in every panel query is one DaemonMetrics really exports: the names come from
    a scrape of DaemonMetrics fed by the in-process Controller (as tests/test_metrics.py does), never
    from a hand-written list.
(b) A real Prometheus scrapes a DaemonMetrics endpoint fed by a background thread that steps the real
    Controller every 0.2 s on changing snapshots; once Prometheus holds enough samples for rates,
    every panel query (Grafana's `$__rate_interval`, `$__range` and `$instance` filled in) returns a
    non-empty result through the HTTP API. That also proves each expression parses.

(b) needs /usr/bin/prometheus (Debian: `apt-get install --no-install-recommends prometheus`) and is
skipped without it. Runtime ~20-25 s: Prometheus's first scrape lands ~5-6 s after start, then
rate windows need a few scrapes.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.metrics import DaemonMetrics
from drivers.base import DriverHealth
from tests.step_helpers import make_controller, snap
from tests.test_prometheus_scrape import PROMETHEUS, free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "heatctl-dashboard.json"
DATASOURCE_UID = "prometheus"
# Series Prometheus makes itself for each target (not exported by the daemon).
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                        "scrape_samples_post_metric_relabeling", "scrape_series_added"}
# The Prometheus job name the dashboard and the alert rules assume (docs/prometheus/README.md).
JOB = "heatctl"
# Heat meters and submeters on top of step_helpers.GOOD, so that the energy counters integrate.
METERED = dict(consumer_heat=30000.0, dump_heat=0.0, boiler_heat=0.0, aux_power=800.0)
DRIVERS = ("bms_modbus", "bms_opcua", "bmcs")

# --- PromQL: the metric names an expression selects ------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "atan2", "inf", "nan",
}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (a small lexer, enough for our expressions:
    strings, label matchers, ranges, grouping clauses and function names are not metric names)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)   # strings
    s = re.sub(r"\{[^}]*\}", " ", s)                                     # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                    # range / subquery windows
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    s = re.sub(r"\boffset\s+\S+", " ", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(0)
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # 1e5, 3.6e6
        rest = s[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if word.lower() in _KEYWORDS or word.startswith("$"):
            continue
        names.add(word)
    return names


def test_metric_names_lexer():
    assert metric_names('rate(a_total{x="b_c"}[5m]) / on(instance) sum by (le) (b{y=~"q|r"})') == {"a_total", "b"}
    assert metric_names("1 - x / 3.6e6 and on(instance, point) y{role=\"z\"} offset 1d") == {"x", "y"}
    assert metric_names('histogram_quantile(0.9, sum by (le) (rate(h_bucket[$__rate_interval])))') == {"h_bucket"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(d: dict) -> list[dict]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def targets(d: dict) -> list[tuple[str, str]]:
    """(panel title / refId, expr) of every query in the dashboard."""
    return [(f"{p['title']} / {t.get('refId')}", t["expr"]) for p in panels(d) for t in p.get("targets", [])]


# --- a plant feeding DaemonMetrics ----------------------------------------------------------------

def _snapshot_values(i: int) -> dict[str, float]:
    """Changing but plausible values (within every point's rate limit at one fake second a tick)."""
    w = math.sin(i / 5.0)
    servers = {f"srv{k}_power": 4000.0 + 300.0 * math.sin(i / 4.0 + k) for k in range(1, 9)}
    return dict(METERED, **servers, it_supply_temp=35.0 + 0.5 * w, it_return_temp=43.0 + 0.5 * w,
                consumer_heat=30000.0 + 2000.0 * w, dump_heat=1000.0 + 500.0 * w, boiler_heat=500.0,
                tank_top_temp=40.0 + 0.2 * w)


class SteppedPlant:
    """The real Controller stepped on step_helpers snapshots, handing each result to DaemonMetrics
    as the daemon does (fake clock: one second per tick; wall time between ticks is `period_s`)."""

    def __init__(self):
        self.ctrl = make_controller()
        self.site = self.ctrl.site
        self.metrics = DaemonMetrics(self.site)
        self.state = self.ctrl.initial_state(0.0)
        self.i = 0
        self.requests = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def tick(self) -> None:
        t = float(self.i)
        start = time.perf_counter()
        res = self.ctrl.step(self.state, snap(self.site, t, **_snapshot_values(self.i)), [], t)
        self.requests += 3
        health = {n: DriverHealth(name=n, kind=self.site.drivers[n].kind, connected=True,
                                  requests_total=self.requests, errors_total=self.i // 10,
                                  reconnects_total=self.i // 25) for n in DRIVERS}
        self.metrics.observe_tick(res, health, time.perf_counter() - start, False)
        self.state = res.state
        self.i += 1

    def start(self, period_s: float) -> None:
        def loop():
            try:
                while not self._stop.wait(period_s):
                    self.tick()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.error = exc
        self._thread = threading.Thread(target=loop, name="stepped-plant", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def exported_names(plant: SteppedPlant) -> set[str]:
    """Every sample name in a scrape (histogram _bucket/_sum/_count, counter _total included)."""
    text = generate_latest(plant.metrics.registry).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


# --- (a) names ------------------------------------------------------------------------------------

def test_every_panel_query_uses_only_metrics_the_daemon_exports():
    plant = SteppedPlant()
    for _ in range(5):
        plant.tick()
    exported = exported_names(plant) | PROMETHEUS_SYNTHETIC
    d = dashboard()
    queries = targets(d)
    assert len(queries) > 30
    unknown = {(where, n) for where, expr in queries for n in metric_names(expr) if n not in exported}
    assert not unknown, f"queries use metrics the daemon does not export: {sorted(unknown)}"
    # The template variable's query, too.
    for var in d["templating"]["list"]:
        m = re.search(r"label_values\((\w+)", var["definition"])
        assert m and m.group(1) in exported


def test_dashboard_shape():
    d = dashboard()
    ps = panels(d)
    ids = [p["id"] for p in ps]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in ps:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == DATASOURCE_UID, p["title"]
            assert 'instance="$instance"' in t["expr"], f"{p['title']}: every query filters on the site variable"
            assert "[1m]" in t["expr"] or "$__rate_interval" in t["expr"] or not re.search(
                r"\b(rate|irate)\(", t["expr"]), f"{p['title']}: rate() over $__rate_interval"
    # The top row answers the seed article's questions at a glance.
    titles = {p["title"] for p in ps}
    for want in ("Mode", "Latched trips", "IT power", "Recovered heat", "IT loop dT", "Consumer",
                 "Tank state of charge", "ERF", "Tick duration"):
        assert want in titles


# --- (b) every query returns data from a real Prometheus ---------------------------------------------

# Start-up (~1 s) + discovery delay (~5 s) + a 1 s scrape interval, with room for a slow CI box.
UP_DEADLINE_S = 30.0
# Scrapes before the rate windows (30 s) hold enough samples: 4 scrapes at 1 s.
MIN_SCRAPES = 5
DATA_DEADLINE_S = 30.0


def query(api_port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{api_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:  # 400: the expression does not parse / evaluate
        body = json.load(exc)
        raise AssertionError(f"{expr}\n  -> {body.get('errorType')}: {body.get('error')}") from None
    assert body["status"] == "success", body
    return body["data"]["result"]


def grafana_to_promql(expr: str, instance: str, range_s: int) -> str:
    """What Grafana sends for this target: its variables filled in."""
    return (expr.replace("$__rate_interval", "30s").replace("$__range", f"{range_s}s")
            .replace("$__interval", "5s").replace("$instance", instance))


@pytest.mark.skipif(PROMETHEUS is None,
                    reason="prometheus not installed (apt-get install --no-install-recommends prometheus)")
def test_every_panel_query_returns_data_from_a_real_prometheus(tmp_path):
    plant = SteppedPlant()
    plant.tick()
    stop_http = plant.metrics.serve("127.0.0.1", 0)
    plant.start(period_s=0.2)
    instance = f"127.0.0.1:{stop_http.port}"
    api_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        f"    static_configs:\n      - targets: ['{instance}']\n"
    )
    log_path = tmp_path / "prometheus.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{api_port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    try:
        deadline = time.monotonic() + UP_DEADLINE_S
        up: list = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                up = query(api_port, f'up{{job="{JOB}"}} == 1')
            except OSError:
                up = []  # the API is not listening yet
            if up:
                break
            time.sleep(0.25)
        assert up, f"no successful scrape within {UP_DEADLINE_S} s:\n" + log_path.read_text()

        # Wait for enough scrapes that every rate window has at least two samples.
        deadline = time.monotonic() + DATA_DEADLINE_S
        n = 0.0
        while time.monotonic() < deadline:
            r = query(api_port, f'count_over_time(up{{job="{JOB}"}}[1m])')
            n = float(r[0]["value"][1]) if r else 0.0
            if n >= MIN_SCRAPES:
                break
            time.sleep(0.5)
        assert n >= MIN_SCRAPES, f"only {n:g} scrapes within {DATA_DEADLINE_S} s"
        assert plant.error is None, plant.error

        range_s = max(int(time.monotonic() - started), 10)
        empty, failed = [], []
        for where, expr in targets(dashboard()):
            q = grafana_to_promql(expr, instance, range_s)
            try:
                result = query(api_port, q)
            except AssertionError as exc:
                failed.append(f"{where}: {exc}")
                continue
            if not result:
                empty.append(f"{where}: {q}")
        assert not failed, "queries Prometheus refused:\n" + "\n".join(failed)
        assert not empty, "queries with no data:\n" + "\n".join(empty)
        # The data is live: the ticks advanced while Prometheus watched.
        r = query(api_port, f'changes(heatctl_heartbeat{{instance="{instance}"}}[1m])')
        assert float(r[0]["value"][1]) >= 3
    finally:
        plant.stop()
        proc.kill()
        proc.wait(timeout=10)
        log.close()
        stop_http()
