"""The monthly report's unmetered gaps and its "what it covers" line, on a hand-made database.

The kill campaign (test_kill_campaign.py) proves the gaps against a real daemon; this table covers
the report's own rules: nested gaps merged, gaps clipped to the period, a daemon that recorded
nothing lately listed as an open gap, availability given as a range over the gaps, and the period,
tick, version and config hash stated.
"""

from __future__ import annotations

import json

import pytest

from controller import __version__
from controller.core.metering import EnergyCounters
from controller.daemon.audit import AuditEvent, AuditStore, counters_to_json
from controller.ops.monthly_report import build_report, to_markdown

T0 = 1767225600.0  # 2026-01-01T00:00Z
DAY = 86400.0
CRASH = "daemon killed or crashed (no clean stop recorded)"


def gap(store: AuditStore, a: float, b: float, cause: str = CRASH) -> None:
    store.record([AuditEvent(b, "unmetered_gap", f"unmetered {b - a:.1f} s", cause=cause,
                             fields={"from": a, "to": b, "seconds": b - a, "started_at": b - 1.0,
                                     "startup_s": 1.0})])


def history(store: AuditStore, minutes: range, period_s: float = 1.0) -> None:
    for i, m in enumerate(minutes):
        e = EnergyCounters(metered_s=60.0 * (i + 1), delivered_j=1.0e6 * (i + 1))
        store.write_history({"minute": m, "ts": m * 60.0, "mode": "normal", "samples": int(60 / period_s),
                             "degraded_s": 0.0, "period_s": period_s, "throttled_s": 0.0,
                             "counters": counters_to_json(e)})


@pytest.fixture
def store(tmp_path):
    s = AuditStore(tmp_path)
    s.record_config(T0 - DAY, "/etc/heatctl/site.yaml", "a" * 64, "text", True, cause="start-up")
    s.record_config(T0 + DAY, "/etc/heatctl/site.yaml", "b" * 64, "text", True, cause="SIGHUP")
    s.record_config(T0 + DAY + 5, "/etc/heatctl/bad.yaml", "c" * 64, "text", False, cause="SIGHUP")
    m0 = int(T0 // 60)
    history(s, range(m0, m0 + 120))
    gap(s, T0 - 100.0, T0 + 20.0)                      # clipped at the period start
    gap(s, T0 + 3600.0, T0 + 3610.0)                   # audited, counters not yet persisted ...
    gap(s, T0 + 3600.0, T0 + 3625.0)                   # ... so the next start's gap contains it
    gap(s, T0 + 7200.0, T0 + 7230.5, "daemon stopped")
    s.save_energy(EnergyCounters(), T0 + 2 * DAY, 1, "b" * 64)  # the last persisted tick
    yield s
    s.close()


def test_gaps_merged_clipped_and_the_open_one_listed(store):
    rep = build_report(store, T0, T0 + 3 * DAY, "t", now=T0 + 10 * DAY)
    u = rep["unmetered"]
    got = [(g["from_ts"] - T0, g["to_ts"] - T0, g["clipped"], g.get("open", False)) for g in u["gaps"]]
    assert got == [(0.0, 20.0, True, False), (3600.0, 3625.0, False, False), (7200.0, 7230.5, False, False),
                   (2 * DAY, 3 * DAY, True, True)]
    assert u["count"] == 4 and u["open"]
    assert u["hours"] * 3600 == pytest.approx(20.0 + 25.0 + 30.5 + DAY)
    assert u["gaps"][2]["cause"] == "daemon stopped" and CRASH in u["gaps"][1]["cause"]
    # Availability over the whole period is a range: the gaps' servers may or may not have been held back.
    k = rep["compute"]
    lo, hi = k["availability_range"]
    assert k["availability"] == 1.0 and hi == 1.0 and lo < 1.0
    md = to_markdown(rep)
    assert "## Unmetered gaps" in md and "4 gap(s)" in md and "(still open)" in md
    assert "| 2026-01-01T01:00:00.000Z | 2026-01-01T01:00:25.000Z | 25.0 s | " + CRASH in md


def test_a_running_daemon_has_no_open_gap(store):
    rep = build_report(store, T0, T0 + 3 * DAY, "t", now=T0 + 2 * DAY + 30.0)
    assert not rep["unmetered"]["open"] and rep["unmetered"]["count"] == 3


def test_the_report_says_what_it_covers(store):
    rep = build_report(store, T0, T0 + 2 * DAY, "2026-01-01_2026-01-03", now=T0 + 2 * DAY)
    meta = rep["meta"]
    assert meta["period"]["start"] == "2026-01-01 00:00 UTC" and meta["period"]["end"] == "2026-01-03 00:00 UTC"
    assert meta["period"]["hours"] == 48.0
    assert meta["tick_s"] == 1.0 and meta["heatctl_version"] == __version__
    # The config in force at the end, and every accepted one in force during the period (not the refused).
    assert meta["config_sha256"] == "b" * 64
    assert [c["sha256"][0] for c in meta["configs"]] == ["a", "b"]
    line = to_markdown(rep).splitlines()[2]
    assert line == (f"Period: 2026-01-01 00:00 UTC to 2026-01-03 00:00 UTC (48 h), tick 1 s, heatctl "
                    f"{__version__}, config /etc/heatctl/site.yaml (sha256 bbbbbbbbbbbb); 1 other config(s) "
                    "in force during the period, listed in the JSON")
    json.dumps(rep)  # plain data


def test_no_history_still_says_what_it_covers(tmp_path):
    s = AuditStore(tmp_path)
    rep = build_report(s, T0, T0 + DAY, "empty", now=T0 + DAY)
    s.close()
    assert rep["meta"]["tick_s"] is None and rep["meta"]["config"] is None
    assert "tick n/a" in to_markdown(rep) and "config n/a" in to_markdown(rep)
