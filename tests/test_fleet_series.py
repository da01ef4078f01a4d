"""The site's metric series count is bounded, so a fleet is a known load on the central store.

Counted on the exposition one daemon serves (its own registry, as `heatctl run --metrics` serves it)
for the reference plant and every shipped template. Every label set comes from the config or a fixed
tuple (points, trips, drivers, loops, alarms, 24 envelope hours, event kinds): nothing grows with time.
Measured 2026-12: reference plant 849 series, largest template (container-district) 945.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from controller.daemon.metrics import DaemonMetrics
from controller.site.loader import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [ROOT / "config" / "reference-plant.yaml", *sorted((ROOT / "config" / "templates").glob("*.yaml"))]
# The stated bound per site (docs/fleet/README.md): 1,200 series. A thousand sites scraped every
# 15 s are then at most 1.2 M active series and 80 k samples/s on the central store.
MAX_SERIES_PER_SITE = 1200


def series_count(config: Path) -> int:
    text = generate_latest(DaemonMetrics(load_config(config).site).registry).decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_site_series_count_is_bounded(config):
    n = series_count(config)
    assert 100 < n <= MAX_SERIES_PER_SITE, f"{config.name}: {n} series (bound {MAX_SERIES_PER_SITE})"
