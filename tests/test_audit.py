"""The SQLite audit store: WAL, append-only events, configs, energy counters, per-minute history."""

from __future__ import annotations

import sqlite3

import pytest
import structlog

from controller.daemon.audit import AuditEvent, AuditStore, counters_from_json, counters_to_json
from controller.core.metering import EnergyCounters

@pytest.fixture(autouse=True)
def _default_structlog():
    # Another verb's in-process test may leave structlog bound to a closed capture stream.
    structlog.reset_defaults()
    yield



@pytest.fixture
def store(tmp_path):
    s = AuditStore(tmp_path / "state")
    yield s
    s.close()


def test_database_is_in_wal_mode(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_events_are_appended_and_queried_newest_last(store):
    store.record([AuditEvent(100.0 + i, "mode_changed", f"m{i}", mode="normal", cause="c", user="u", uid=1000,
                             reason="r", fields={"dest": "bypass", "n": i}) for i in range(10)])
    events, total = store.events(limit=3)
    assert total == 10 and [e.message for e in events] == ["m7", "m8", "m9"]
    assert events[0].fields == {"dest": "bypass", "n": 7} and events[0].uid == 1000
    events, total = store.events(since_ts=105.0, limit=100)
    assert total == 5 and events[0].message == "m5"
    assert store.events(kinds=["trip"])[1] == 0
    d = events[0].as_dict()
    assert d["time"].endswith("Z") and d["kind"] == "mode_changed"


def test_the_event_log_is_never_truncated(store):
    for batch in range(20):
        store.record([AuditEvent(float(batch * 1000 + i), "reading_bad", "x") for i in range(1000)])
    assert store.events(limit=1)[1] == 20_000


def test_a_failed_write_is_kept_and_retried(tmp_path):
    s = AuditStore(tmp_path / "state")
    other = sqlite3.connect(s.path, timeout=0)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    s.db.execute("PRAGMA busy_timeout = 0")
    s.record([AuditEvent(1.0, "trip", "held back")])
    assert s.pending == 1
    other.execute("ROLLBACK")
    other.close()
    s.record([AuditEvent(2.0, "trip", "next")])
    assert s.pending == 0
    assert [e.message for e in s.events()[0]] == ["held back", "next"]
    s.close()


def test_energy_counters_round_trip_exactly(store):
    assert store.load_energy() is None
    e = EnergyCounters(it_j=1.5e9, captured_j=1.2e9, delivered_j=1.0e9 + 0.123456789, unmetered_s=3.0)
    store.save_energy(e, 1234.5, 99, "abc")
    store.save_energy(e, 1234.5, 99, "abc")  # one row, updated in place
    assert store.load_energy() == (e, 1234.5)
    assert store.db.execute("SELECT COUNT(*) FROM energy").fetchone()[0] == 1


def test_counters_json_tolerates_other_versions():
    e = counters_from_json('{"it_j": 5, "some_future_counter_j": 7}')
    assert e.it_j == 5.0 and e.delivered_j == 0.0
    assert counters_from_json(counters_to_json(EnergyCounters(aux_j=2.0))).aux_j == 2.0


def test_configs_keep_full_text_and_refusals(store):
    a = store.record_config(1.0, "/etc/heatctl/site.yaml", "aa", "tick_period_s: 1.0\n", True, cause="start-up")
    b = store.record_config(2.0, "/etc/heatctl/site.yaml", "bb", "tick_period_s: [\n", False,
                            ["site.yaml:1: YAML syntax error"], cause="SIGHUP")
    assert (a, b) == (1, 2)
    recs = store.configs()
    assert [r.accepted for r in recs] == [True, False]
    assert store.config(2).problems == "site.yaml:1: YAML syntax error"
    assert store.config(1).text == "tick_period_s: 1.0\n"
    assert store.config(3) is None


def test_config_text_stored_once_per_sha256(store):
    big = "site: x\n" + "# padding\n" * 50_000  # a restart or a hostile reload repeats the same bytes
    for i in range(5):
        store.record_config(float(i), "/etc/heatctl/site.yaml", "same", big, i % 2 == 0, cause="SIGHUP")
    store.record_config(9.0, "/etc/heatctl/site.yaml", "other", "site: y\n", True)
    stored = [r[0] for r in store.db.execute("SELECT length(text) FROM configs ORDER BY id")]
    assert stored == [len(big), 0, 0, 0, 0, len("site: y\n")]
    assert [r.text == big for r in store.configs()[:5]] == [True] * 5
    assert store.config(4).text == big and store.config(6).text == "site: y\n"


def test_history_rows(store):
    row = dict(minute=29_000_000, ts=29_000_000 * 60.0, mode="normal", samples=60, degraded_s=0.0,
               it_w=32000.0, captured_w=30000.0, transferred_w=29000.0, delivered_w=28000.0, to_tank_w=0.0,
               dumped_w=0.0, boiler_w=0.0, it_supply_c=35.0, b_supply_c=41.0, consumer_supply_c=40.0,
               consumer_setpoint_c=40.0, boiler_on_s=0.0, counters=counters_to_json(EnergyCounters()))
    store.write_history(row)
    rows = store.history()
    assert len(rows) == 1 and rows[0]["delivered_w"] == 28000.0


def test_read_only_open(tmp_path):
    with pytest.raises(FileNotFoundError):
        AuditStore(tmp_path / "none", read_only=True)
    s = AuditStore(tmp_path / "state")
    s.record([AuditEvent(1.0, "daemon_start", "x")])
    s.close()
    ro = AuditStore(tmp_path / "state", read_only=True)
    assert ro.events()[1] == 1
    with pytest.raises(sqlite3.OperationalError):
        ro.db.execute("INSERT INTO events(ts, kind, message) VALUES (1, 'x', 'y')")
    ro.close()
