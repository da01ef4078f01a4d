"""The daemon's audit log and persistent state: one SQLite database in WAL mode in the state directory.

Tables:
  events   every mode transition with its cause, trip, trip reset and ack, override set / expired /
           cleared, refused request, trip test, config load, driver outage and recovery, daemon
           start and stop. Append-only: nothing here deletes or rotates rows (the log is never
           truncated; an operator who must prune does so deliberately with sqlite3).
  configs  every configuration the daemon was asked to load: path, sha256, full text, accepted or
           refused with its problem lines. Any earlier configuration can be shown, compared and
           restored (`heatctl config-history`). A text is stored once per sha256: a later load of
           the same bytes (every restart, a hostile 4 MB file sent on every SIGHUP) stores an empty
           text and is read back from the first row that holds it, so the table grows by a row,
           not by a copy.
  energy   one row: the energy counters (totals since commissioning, never deltas), written every
           `ENERGY_EVERY_TICKS` ticks and at shutdown, read at start-up. Because totals are stored,
           a restart can neither double-count nor lose more than the ticks since the last write
           (a crash or SIGKILL loses at most that many ticks of metering; SIGTERM loses none).
  history  one compact row per wall-clock minute (mode, IT power, heat flows, supply temperatures,
           energy counters at the end of the minute), for monthly SLA reports.

WAL with synchronous=NORMAL: a commit does not wait for fsync (a tick must not stall on the disk),
and the database stays consistent after a power cut; at most the last commits are lost, which the
energy bound above already allows for. Shutdown checkpoints the WAL.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import structlog

from controller.core.metering import EnergyCounters

log = structlog.get_logger(__name__)

DB_NAME = "heatctl.sqlite3"
SCHEMA_VERSION = 1
# Energy counters are written every this many ticks (and at shutdown). Every tick: the write goes
# through the database writer's thread (coalesced: only the newest counters wait), never inside
# the tick, so a crash loses at most the tick in flight; the time until the next start is then
# recorded as unmetered. One small UPDATE in WAL mode costs ~0.1 ms of the writer thread.
ENERGY_EVERY_TICKS = 1
# Events that could not be written (disk full, database locked) are kept in memory and retried;
# past this many the oldest are dropped, and that is logged loudly with the count, never silently.
MAX_PENDING_EVENTS = 100_000

# History columns added for the monthly SLA report and the capacity envelope (NULL in older rows):
#   period_s               the tick period the minute's samples were taken at (samples x period_s
#                          = seconds of the minute the controller saw; less than 60 is a partial minute)
#   throttled_s            seconds the IT power cap held the servers (cap within THROTTLE margin of
#                          IT power and below the site's max): compute availability
#   consumer_supply_min_c  the lowest consumer supply temperature of the minute
#   below_setpoint_s       seconds the consumer supply was below its setpoint while the consumer was
#                          available and demanding; deficit_ks the K.s of that shortfall
#   demand_w, ambient_c, tank_soc, power_cap_w   minute means: the envelope's forecast inputs
HISTORY_EXTRA_COLUMNS = {
    "period_s": "REAL", "throttled_s": "REAL", "consumer_supply_min_c": "REAL",
    "below_setpoint_s": "REAL", "deficit_ks": "REAL", "demand_w": "REAL", "ambient_c": "REAL",
    "tank_soc": "REAL", "power_cap_w": "REAL",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    mode TEXT, point TEXT, trip TEXT, cause TEXT,
    user TEXT, uid INTEGER, reason TEXT,
    fields TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS configs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    problems TEXT NOT NULL DEFAULT '',
    cause TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS configs_sha256 ON configs(sha256);
CREATE TABLE IF NOT EXISTS energy(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ts REAL NOT NULL,
    tick INTEGER NOT NULL,
    config_sha256 TEXT NOT NULL,
    counters TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history(
    minute INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    mode TEXT NOT NULL,
    samples INTEGER NOT NULL,
    degraded_s REAL NOT NULL,
    it_w REAL, captured_w REAL, transferred_w REAL, delivered_w REAL, to_tank_w REAL,
    dumped_w REAL, boiler_w REAL,
    it_supply_c REAL, b_supply_c REAL, consumer_supply_c REAL, consumer_setpoint_c REAL,
    boiler_on_s REAL NOT NULL DEFAULT 0,
    counters TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AuditEvent:
    """One row of the audit log. `ts` is wall-clock time (s since the epoch, UTC)."""

    ts: float
    kind: str
    message: str
    mode: str | None = None
    point: str | None = None
    trip: str | None = None
    cause: str | None = None
    user: str | None = None
    uid: int | None = None
    reason: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fields"] = dict(self.fields)
        d["time"] = iso(self.ts)
        return d


@dataclass(frozen=True)
class ConfigRecord:
    id: int
    ts: float
    path: str
    sha256: str
    text: str
    accepted: bool
    problems: str
    cause: str


def iso(ts: float) -> str:
    """Wall-clock seconds -> ISO 8601 UTC with milliseconds."""
    t = time.gmtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int((ts % 1) * 1000):03d}Z"


def counters_to_json(e: EnergyCounters) -> str:
    return json.dumps(dataclasses.asdict(e), sort_keys=True)


def counters_from_json(text: str) -> EnergyCounters:
    """Counters from their stored JSON; a field this version does not know is ignored, one it
    misses starts at 0 (a newer or older daemon reading the same database)."""
    data = json.loads(text)
    names = {f.name for f in dataclasses.fields(EnergyCounters)}
    return EnergyCounters(**{k: float(v) for k, v in data.items() if k in names})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return getattr(value, "value", None) if hasattr(value, "value") else str(value)


class AuditStore:
    """The SQLite database; every method is synchronous and short (called between control ticks)."""

    def __init__(self, state_dir: str | Path, *, read_only: bool = False):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.read_only = read_only
        self._pending: list[AuditEvent] = []
        self._dropped = 0
        if read_only:
            if not self.path.exists():
                raise FileNotFoundError(f"no audit database at {self.path}")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))
            self._add_history_columns()
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        """Write what is pending, checkpoint the WAL into the main file, close."""
        if not self.read_only:
            self.flush()
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("audit_checkpoint_failed", error=str(exc))
        self.db.close()

    # --- events -----------------------------------------------------------------------------

    def record(self, events: Iterable[AuditEvent]) -> None:
        """Append events in one transaction. A failed write keeps them for the next try."""
        self._pending.extend(events)
        self.flush()

    def queue(self, events: Iterable[AuditEvent]) -> None:
        """Add events to be written by the next `flush` (the database writer's retry unit)."""
        self._pending.extend(events)

    def flush(self) -> bool:
        if not self._pending:
            return True
        rows = [(e.ts, e.kind, e.message, e.mode, e.point, e.trip, e.cause, e.user, e.uid, e.reason,
                 json.dumps(_jsonable(dict(e.fields)), sort_keys=True)) for e in self._pending]
        try:
            with self._tx():
                self.db.executemany(
                    "INSERT INTO events(ts, kind, message, mode, point, trip, cause, user, uid, reason, fields)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        except sqlite3.Error as exc:
            if len(self._pending) > MAX_PENDING_EVENTS:
                drop = len(self._pending) - MAX_PENDING_EVENTS
                del self._pending[:drop]
                self._dropped += drop
                log.critical("audit_events_dropped", dropped=drop, dropped_total=self._dropped,
                             error=str(exc), database=str(self.path))
            log.error("audit_write_failed", pending=len(self._pending), error=str(exc),
                      database=str(self.path))
            return False
        self._pending.clear()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def events(self, since_ts: float | None = None, limit: int = 50,
               kinds: Iterable[str] | None = None) -> tuple[list[AuditEvent], int]:
        """The newest `limit` events since `since_ts` (oldest first), and how many matched in all."""
        where, args = [], []
        if since_ts is not None:
            where.append("ts >= ?")
            args.append(since_ts)
        kinds = list(kinds or [])
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.db.execute(f"SELECT COUNT(*) FROM events{clause}", args).fetchone()[0]
        rows = self.db.execute(f"SELECT * FROM events{clause} ORDER BY id DESC LIMIT ?",
                               [*args, int(limit)]).fetchall()
        out = [AuditEvent(ts=r["ts"], kind=r["kind"], message=r["message"], mode=r["mode"],
                          point=r["point"], trip=r["trip"], cause=r["cause"], user=r["user"],
                          uid=r["uid"], reason=r["reason"], fields=json.loads(r["fields"]))
               for r in reversed(rows)]
        return out, total

    # --- configurations ---------------------------------------------------------------------

    def record_config(self, ts: float, path: str, sha256: str, text: str, accepted: bool,
                      problems: Iterable[str] = (), cause: str = "") -> int:
        with self._tx():
            if text and self._config_text(sha256) == text:
                text = ""  # already held by an earlier row (module docstring)
            cur = self.db.execute(
                "INSERT INTO configs(ts, path, sha256, text, accepted, problems, cause) VALUES (?,?,?,?,?,?,?)",
                (ts, path, sha256, text, 1 if accepted else 0, "\n".join(problems), cause))
        return int(cur.lastrowid)

    def _config_text(self, sha256: str) -> str | None:
        r = self.db.execute("SELECT text FROM configs WHERE sha256 = ? AND text != '' ORDER BY id LIMIT 1",
                            (sha256,)).fetchone()
        return None if r is None else r["text"]

    def configs(self) -> list[ConfigRecord]:
        rows = self.db.execute("SELECT * FROM configs ORDER BY id").fetchall()
        return [self._config(r) for r in rows]

    def config(self, config_id: int) -> ConfigRecord | None:
        r = self.db.execute("SELECT * FROM configs WHERE id = ?", (config_id,)).fetchone()
        return self._config(r) if r is not None else None

    def _config(self, r: sqlite3.Row) -> ConfigRecord:
        text = r["text"] or self._config_text(r["sha256"]) or ""
        return ConfigRecord(r["id"], r["ts"], r["path"], r["sha256"], text, bool(r["accepted"]),
                            r["problems"], r["cause"])

    # --- energy counters --------------------------------------------------------------------

    def save_energy(self, counters: EnergyCounters, ts: float, tick: int, config_sha256: str) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO energy(id, ts, tick, config_sha256, counters) VALUES (1,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET ts=excluded.ts, tick=excluded.tick,"
                " config_sha256=excluded.config_sha256, counters=excluded.counters",
                (ts, tick, config_sha256, counters_to_json(counters)))

    def load_energy(self) -> tuple[EnergyCounters, float] | None:
        """The last saved counters and when they were saved, or None on a fresh database."""
        r = self.db.execute("SELECT ts, counters FROM energy WHERE id = 1").fetchone()
        if r is None:
            return None
        return counters_from_json(r["counters"]), float(r["ts"])

    # --- latched trips ----------------------------------------------------------------------

    def save_latched_trips(self, trips: Mapping[str, Mapping[str, Any]], ts: float) -> None:
        """Latched trips (name -> cause, acked): a restart must not act as an acknowledgement."""
        with self._tx():
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES ('latched_trips', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (json.dumps({"ts": ts, "trips": trips}),))

    def load_latched_trips(self) -> dict[str, dict[str, Any]]:
        r = self.db.execute("SELECT value FROM meta WHERE key = 'latched_trips'").fetchone()
        if r is None:
            return {}
        return dict(json.loads(r["value"]).get("trips", {}))

    # --- per-minute history -----------------------------------------------------------------

    def _add_history_columns(self) -> None:
        """Columns added after the first release (SLA report, capacity envelope): added in place to
        an older database; its old rows read them as NULL ("not recorded"), never as 0."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(history)").fetchall()}
        for name, kind in HISTORY_EXTRA_COLUMNS.items():
            if name not in have:
                self.db.execute(f"ALTER TABLE history ADD COLUMN {name} {kind}")

    def write_history(self, row: Mapping[str, Any]) -> None:
        cols = ["minute", "ts", "mode", "samples", "degraded_s", "it_w", "captured_w", "transferred_w",
                "delivered_w", "to_tank_w", "dumped_w", "boiler_w", "it_supply_c", "b_supply_c",
                "consumer_supply_c", "consumer_setpoint_c", "boiler_on_s", "counters",
                *HISTORY_EXTRA_COLUMNS]
        with self._tx():
            self.db.execute(
                f"INSERT OR REPLACE INTO history({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [row.get(c) for c in cols])

    def hourly_means(self, since_minute: int) -> dict[int, tuple[float | None, float | None, int]]:
        """UTC hour of day -> (mean demand W, mean ambient degC, minutes) since `since_minute`:
        the capacity envelope's forecast (rows without a demand are left out)."""
        rows = self.db.execute(
            "SELECT (minute / 60) % 24 AS h, AVG(demand_w), AVG(ambient_c), COUNT(*) FROM history"
            " WHERE minute >= ? AND demand_w IS NOT NULL GROUP BY h", (since_minute,)).fetchall()
        return {int(r[0]): (r[1], r[2], int(r[3])) for r in rows}

    def history(self, since_minute: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM history" + (" WHERE minute >= ?" if since_minute is not None else "") + " ORDER BY minute"
        rows = self.db.execute(q, () if since_minute is None else (since_minute,)).fetchall()
        return [dict(r) for r in rows]

    # ----------------------------------------------------------------------------------------

    def _tx(self):
        return _Transaction(self.db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT / ROLLBACK (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
