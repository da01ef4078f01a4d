"""The Prometheus alert rules (docs/prometheus/heatctl-alerts.yaml): promtool accepts them, their
unit tests pass and cover every alert firing and not firing, every alert carries the labels and
annotations the on-call routing needs, its runbook exists, and its metrics are ones the daemon
really exports (names from a scrape of DaemonMetrics fed by the in-process Controller).

promtool comes with Debian's `prometheus` package; the promtool tests are skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.metrics_plant import PROMETHEUS_SYNTHETIC, SteppedPlant, exported_names, metric_names

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "docs" / "prometheus"
RULES = PROM_DIR / "heatctl-alerts.yaml"
TEST_FILES = (PROM_DIR / "heatctl-alerts.test.yaml", PROM_DIR / "heatctl-erf.test.yaml")
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_PREFIX = "https://heatctl.invalid/"  # placeholder for the repository URL (README: Operations)

PROMTOOL = shutil.which("promtool") or next(
    (p for p in ("/usr/bin/promtool",) if os.access(p, os.X_OK)), None)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install --no-install-recommends prometheus)")


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def alerts() -> dict[str, dict]:
    return {r["alert"]: r for r in rules() if "alert" in r}


@needs_promtool
def test_promtool_check_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_promtool_test_rules():
    r = subprocess.run([PROMTOOL, "test", "rules", *map(str, TEST_FILES)], capture_output=True, text=True,
                       timeout=120, cwd=PROM_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAILED" not in r.stdout


def test_unit_tests_cover_every_alert_firing_and_not_firing():
    firing: set[str] = set()
    quiet: set[str] = set()
    for f in TEST_FILES:
        for t in yaml.safe_load(f.read_text())["tests"]:
            for case in t.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = set(alerts())
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def test_every_alert_has_severity_owner_annotations_and_a_runbook():
    for name, r in alerts().items():
        labels, ann = r.get("labels", {}), r.get("annotations", {})
        assert labels.get("severity") in ("page", "ticket"), name
        assert labels.get("owner") in ("facilities", "it_operations", "both"), name
        assert ann.get("summary") and ann.get("description"), name
        url = ann.get("runbook_url", "")
        assert url.startswith(RUNBOOK_PREFIX + "docs/runbooks/"), f"{name}: {url}"
        assert (ROOT / url[len(RUNBOOK_PREFIX):]).is_file(), f"{name}: runbook {url} does not exist"


def test_rules_use_only_metrics_the_daemon_exports():
    plant = SteppedPlant()
    for _ in range(5):
        plant.tick()
    records = {r["record"] for r in rules() if "record" in r}
    exported = exported_names(plant) | PROMETHEUS_SYNTHETIC | records
    unknown = {(r.get("alert") or r.get("record"), n) for r in rules() for n in metric_names(r["expr"])
               if n not in exported}
    assert not unknown, f"rules use metrics the daemon does not export: {sorted(unknown)}"


def test_runbooks_named_by_the_seed_article_exist():
    for name in ("loss-of-network", "loss-of-power", "leak", "overheating", "pump-failure", "controller-fault"):
        text = (RUNBOOKS / f"{name}.md").read_text()
        assert re.search(r"safe state", text, re.I), f"{name}.md names no safe state"
