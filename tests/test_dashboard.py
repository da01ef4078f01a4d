"""The Grafana dashboard (docs/grafana/heatctl-dashboard.json) against the daemon's real metrics.

(a) Every metric name in every panel query is one DaemonMetrics really exports: the names come from
    a scrape of DaemonMetrics fed by the in-process Controller (as tests/test_metrics.py does), never
    from a hand-written list.
(b) A real Prometheus scrapes a DaemonMetrics endpoint fed by a background thread that steps the real
    Controller every 0.2 s on changing snapshots; once Prometheus holds enough samples for rates,
    every panel query (Grafana's `$__rate_interval`, `$__range` and `$instance` filled in) returns a
    non-empty result through the HTTP API. That also proves each expression parses.

The feeder does what the daemon does after each step (controller/daemon/runtime.py): the real operator
alarms (controller.core.alarms.Alarms) are evaluated on the step's result and their view observed, and
the capacity envelope (controller/core/envelope.py) is estimated every ENVELOPE_EVERY_S of its clock from
a week of hour-of-day means and observed. The tank top sensor fails early on, so the reference
config's `tank_top_sensor_bad` alarm is active while Prometheus watches (the active-alarm panels
have a row to show).

(b) needs /usr/bin/prometheus (Debian: `apt-get install --no-install-recommends prometheus`) and is
skipped without it. Runtime ~20-25 s: Prometheus's first scrape lands ~5-6 s after start, then
rate windows need a few scrapes.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.engines import free_port, which
from tests.metrics_plant import (FAILING_ALARM, PROMETHEUS_SYNTHETIC, TANK_TOP_FAILS_AT,
                                 SteppedPlant, exported_names, metric_names)

PROMETHEUS = which("prometheus")  # None: (b) is skipped
ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "heatctl-dashboard.json"
# The panels name the datasource through the dashboard variable `datasource`, whose default is
# the import input DS_PROMETHEUS (Grafana asks for it on import; provisioning takes the default).
DATASOURCE_UID = "${datasource}"
# The Prometheus job name the dashboard and the alert rules assume (docs/prometheus/README.md).
JOB = "heatctl"


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
        if var["type"] == "datasource":
            continue  # the datasource picker, no query
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
    # The service summary (everything before the second row) holds the alarms and the envelope, and
    # no placeholder is left.
    second_row = next(k for k, p in enumerate(d["panels"]) if k > 0 and p["type"] == "row")
    top = {p["title"]: p for p in d["panels"][1:second_row]}
    for want in ("Active alarms", "Active alarms: who responds", "24-hour capacity envelope",
                 "Next 24 h: lowest carryable IT power"):
        assert want in top, f"{want} not in the service summary"
    assert not [p["title"] for p in ps if p["type"] == "text"], "placeholder text panels left"

    def exprs(title: str) -> str:
        return " ".join(t["expr"] for t in top[title]["targets"])

    assert "heatctl_alarm_active" in exprs("Active alarms") and "by (priority)" in exprs("Active alarms")
    assert "owner" in exprs("Active alarms: who responds")
    assert "heatctl_envelope_carryable_watts" in exprs("24-hour capacity envelope")
    assert "min by" in exprs("Next 24 h: lowest carryable IT power")
    # No two panels overlap on the grid.
    cells = set()
    for p in ps:
        g = p["gridPos"]
        here = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not here & cells, f"{p['title']} overlaps another panel"
        cells |= here


def test_feeder_raises_an_alarm_and_estimates_the_envelope():
    plant = SteppedPlant()
    for _ in range(TANK_TOP_FAILS_AT + 40):
        plant.tick()
    assert plant.alarm_active(FAILING_ALARM)
    assert len(plant.carryable_w) == 24 and all(w > 0 for w in plant.carryable_w)
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(plant.metrics.registry).decode())}
    active = {s.labels["alarm"]: s for s in fams["heatctl_alarm_active"].samples}
    assert active[FAILING_ALARM].value == 1.0 and active[FAILING_ALARM].labels["owner"] == "facilities"
    assert sum(s.value for s in active.values()) == 1.0
    assert fams["heatctl_alarm_flood"].samples[0].value >= 1.0
    env = {s.labels["hour"]: s.value for s in fams["heatctl_envelope_carryable_watts"].samples}
    assert env == {str(h): w for h, w in enumerate(plant.carryable_w)}


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
    # Tick (fast, before any Prometheus) until the failing sensor's alarm is active: from the first
    # scrape on, the active-alarm panels have a row.
    while not plant.alarm_active(FAILING_ALARM):
        assert plant.i < TANK_TOP_FAILS_AT + 100, "the tank top alarm never went active"
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
        # The alarm and the envelope arrived as they were observed.
        r = query(api_port, f'heatctl_alarm_active{{instance="{instance}"}} == 1')
        assert [(s["metric"]["alarm"], s["metric"]["owner"]) for s in r] == [(FAILING_ALARM, "facilities")]
        r = query(api_port, f'count(heatctl_envelope_carryable_watts{{instance="{instance}"}} > 0)')
        assert r and float(r[0]["value"][1]) == 24
    finally:
        plant.stop()
        proc.kill()
        proc.wait(timeout=10)
        log.close()
        stop_http()


def test_dashboard_imports_through_a_datasource_input():
    d = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    assert d["__inputs"][0]["pluginId"] == "prometheus"
    var = next(v for v in d["templating"]["list"] if v["name"] == "datasource")
    assert var["type"] == "datasource" and var["query"] == "prometheus"
    assert var["current"]["value"] == "${DS_PROMETHEUS}"
    # No hard-coded datasource uid is left anywhere (only Grafana's built-in annotations source).
    uids = re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text())
    assert set(uids) <= {"heatctl-operations", "-- Grafana --", "${datasource}"}, set(uids)
