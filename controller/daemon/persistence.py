"""The database writer: one thread owns the SQLite write connection; the tick only hands it jobs.

Why: SQLite waits for a lock (another process's write transaction: a backup, `heatctl report` on a
busy disk, an operator's sqlite3 shell) inside the calling thread. Written from the tick, one such
lock stalled the control loop and the control socket for seconds. Here the tick calls `submit`,
which appends to a bounded queue and returns at once; the writer thread runs the jobs in order and
retries a job that failed on a locked or busy database until it succeeds, so nothing already queued
is lost. A blocked database is reported once when it starts and once when it clears (log, and the
`state()` that status and metrics show); shutdown flushes the queue within a bound.

A job is a callable taking the writer's `AuditStore` and returning True when done (False or a
`sqlite3.Error`: not yet, retry). Jobs with the same `coalesce` key replace a queued one that has
not started (the energy counters: only the newest matters), which keeps the queue short during a
long lock.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable

import structlog

from controller.daemon.audit import AuditStore

log = structlog.get_logger("heatctl.persistence")

Job = Callable[[AuditStore], bool]

# Queue bound: a 30 s lock at a 100 ms tick queues ~300 audit/energy/history jobs (energy coalesced);
# 20,000 leaves two orders of magnitude of margin and bounds memory to a few MB of rows.
MAX_QUEUED_JOBS = 20_000
# Pause between retries of a job that met a locked database (s). The connection's own busy timeout
# (AuditStore: 2 s) already waits inside each attempt; this only keeps a failing disk from spinning.
RETRY_PAUSE_S = 0.05
# How long shutdown waits for the queue to drain before it gives up (s); what is left is logged.
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WriterState:
    queued: int
    dropped: int
    written: int
    # Seconds the current job has been failing (0: writes flow).
    blocked_s: float
    last_error: str


class _Entry:
    __slots__ = ("name", "job", "coalesce")

    def __init__(self, name: str, job: Job, coalesce: str | None):
        self.name, self.job, self.coalesce = name, job, coalesce


class DatabaseWriter:
    """Runs database jobs in its own thread, in submission order (module docstring)."""

    def __init__(self, open_store: Callable[[], AuditStore], *, max_queued: int = MAX_QUEUED_JOBS,
                 clock: Callable[[], float] = time.monotonic):
        self._open_store = open_store
        self._max = max_queued
        self._clock = clock
        self._queue: collections.deque[_Entry] = collections.deque()
        self._by_key: dict[str, _Entry] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._written = 0
        self._blocked_since: float | None = None
        self._last_error = ""
        self._idle = threading.Event()
        self._idle.set()

    # --- the tick's side: never waits -------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heatctl-db-writer", daemon=True)
        self._thread.start()

    def submit(self, name: str, job: Job, *, coalesce: str | None = None) -> bool:
        """Queue `job`; False (and counted as dropped) only when the queue is full."""
        with self._cond:
            if coalesce is not None and coalesce in self._by_key:
                self._by_key[coalesce].job = job  # not started yet: the newest values win
                return True
            if len(self._queue) >= self._max:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.critical("database_queue_full", dropped_total=self._dropped, job=name,
                                 queued=len(self._queue))
                return False
            entry = _Entry(name, job, coalesce)
            self._queue.append(entry)
            if coalesce is not None:
                self._by_key[coalesce] = entry
            self._idle.clear()
            self._cond.notify()
        return True

    def state(self) -> WriterState:
        with self._cond:
            blocked = 0.0 if self._blocked_since is None else self._clock() - self._blocked_since
            return WriterState(len(self._queue), self._dropped, self._written, blocked, self._last_error)

    def wait_idle(self, timeout_s: float) -> bool:
        """For shutdown and tests: True once every queued job is written."""
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued (up to `timeout_s`), then stop the thread and close its connection."""
        if self._thread is None:
            return
        self.wait_idle(timeout_s)
        with self._cond:
            self._stopping = True
            left = len(self._queue)
            self._cond.notify()
        if left:
            log.error("database_queue_not_flushed", left=left, error=self._last_error)
        self._thread.join(timeout=timeout_s)
        self._thread = None

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        store = None
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._idle.set()
                    self._cond.wait()
                if self._stopping:
                    break
                entry = self._queue[0]
                if entry.coalesce is not None and self._by_key.get(entry.coalesce) is entry:
                    # Started: a newer value now queues behind it instead of changing it mid-write.
                    del self._by_key[entry.coalesce]
            try:
                if store is None:
                    store = self._open_store()
                done = bool(entry.job(store))
                error = "" if done else "write not completed"
            except sqlite3.Error as exc:
                done, error = False, f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bug in a job: logged, never retried forever
                log.error("database_job_failed", job=entry.name, error=f"{type(exc).__name__}: {exc}")
                done, error = True, ""
            with self._cond:
                if done:
                    self._queue.popleft()
                    self._written += 1
                    if self._blocked_since is not None:
                        log.warning("database_writes_resumed", blocked_s=round(self._clock() - self._blocked_since, 3),
                                    queued=len(self._queue))
                        self._blocked_since = None
                    continue
                if self._blocked_since is None:
                    self._blocked_since = self._clock()
                    log.error("database_writes_blocked", job=entry.name, error=error, queued=len(self._queue))
                self._last_error = error
                self._cond.wait(RETRY_PAUSE_S)
        if store is not None:
            try:
                store.close()
            except Exception as exc:  # noqa: BLE001
                log.error("database_close_failed", error=str(exc))
