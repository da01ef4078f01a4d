"""Driver supervision: the daemon's one fan-out over its drivers.

Each `DriverSupervisor` owns one driver: at most one call in flight, a call that raises is a crash
(the driver is closed and restarted on the shared backoff), a call that outlives HUNG_AFTER_TICKS
ticks is hung (cancelled, restarted), and an outage (every point LOST for OUTAGE_AFTER_S) is
declared once and its recovery once.

Reads run across ticks when they must. A read still in flight when the tick's read window closes is
not cancelled (a call is never cut mid-protocol); it serves the next tick instead of a new one, and
this tick gets the readings of the driver's last completed read, with their own timestamps: the
step's validation judges their age against each point's max_age_s like any reading, so an old value
is never taken for a fresh one. That holds only while the call in flight is within the driver's own
read budget (its timeouts plus a margin); past it, and for a driver that crashed or is restarting,
the points are LOST. A big site whose 64 BMCs take 50-100 ms to read thus keeps readings 0.1-0.2 s
old at a 100 ms tick instead of losing every point of the driver in half the ticks
(bench/bench_scale.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Mapping

import structlog

from controller.core.readings import Quality, Reading
from drivers.backoff import Backoff
from drivers.base import Driver, DriverHealth, WriteResult, read_budget_s

log = structlog.get_logger("heatctl.daemon")

Clock = Callable[[], float]

# A driver call running longer than this many ticks (and at least HUNG_MIN_S) is hung: cancelled
# and the driver restarted. Well beyond any driver's own timeouts (0.1-2 s).
HUNG_AFTER_TICKS = 10
HUNG_MIN_S = 5.0
# Restart backoff for a crashed driver: 0.5 s doubling to 30 s (a BMC that crashed takes minutes
# to come back; hammering it with restarts only slows that down).
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
# Bounds on driver start/close at start-up, restart and shutdown (s).
START_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 2.0
# Added to a driver's own read budget before the daemon stops waiting for it.
READ_MARGIN_S = 0.1
# A driver that has not delivered a reading since it was started is "connecting", not "down", for
# this long: OPC-UA subscriptions take a few hundred ms to deliver their first values, and an outage
# and recovery in the audit at every start-up would only be noise. Past it, the outage is declared.
CONNECT_GRACE_S = 5.0
# A driver is declared down (audited, logged) only after every one of its points has been LOST for
# this long and at least two reads running: one read skipped because a slow write was still in
# flight is a lost tick (the step sees LOST readings), not an outage worth an audit entry.
OUTAGE_AFTER_S = 1.0


def driver_budget_s(driver: Driver) -> float:
    """How long one read of `driver` may take by its own rules, plus a margin."""
    return read_budget_s(driver) + READ_MARGIN_S


class DriverSupervisor:
    """One driver: at most one call in flight, crash and hang detection, restart with backoff,
    and outage / recovery noticed once each (not every tick)."""

    def __init__(self, name: str, driver: Driver, clock: Clock):
        self.name = name
        self.driver = driver
        self.clock = clock
        self.budget_s = driver_budget_s(driver)
        self.reading_points = tuple(driver.points)
        self.task: asyncio.Task | None = None
        self.task_started: float = 0.0
        self.task_kind = ""
        self.crashed: str | None = None       # why, while crashed or restarting
        self.restart_task: asyncio.Task | None = None
        self.backoff = Backoff(RESTART_MIN_S, RESTART_MAX_S)
        self.restarts_total = 0
        self.crashes_total = 0
        self.outage: str | None = None         # reason, while every point is LOST
        self.outage_since: float | None = None
        self.created = clock()
        self.ever_good = False
        self.lost_since: float | None = None   # all points LOST since (not yet an outage)
        self.lost_reads = 0
        self.last_read_s: float | None = None
        self.write_failing: dict[str, str] = {}
        self.writes_skipped_total = 0
        # The last completed read's readings (module docstring); None after a crash or restart.
        self.latest: dict[str, Reading] | None = None
        self.reads_carried_total = 0  # ticks served by the last completed read (one in flight)

    # -- lifecycle --

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self.driver.start(), START_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a driver that cannot start is a crashed driver
            self._crash(f"start failed: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for t in (self.task, self.restart_task):
            if t is not None and not t.done():
                t.cancel()
        try:
            await asyncio.wait_for(self.driver.close(), CLOSE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.warning("driver_close_failed", driver=self.name, error=f"{type(exc).__name__}: {exc}")

    def _crash(self, why: str) -> None:
        self.latest = None  # a crashed driver's last readings say nothing about the plant now
        self.crashes_total += 1
        if self.crashed is None:
            log.error("driver_crashed", driver=self.name, error=why, restart_in_s=self.backoff.delay_s)
        self.crashed = why
        self.backoff.failure(self.clock())

    def supervise(self, period: float) -> None:
        """Called each tick: notice a finished crashed call, a hung call; start a due restart."""
        if self.task is not None and self.task.done():
            kind = self.task_kind
            result = self._collect(self.task)
            if kind == "read" and isinstance(result, dict):
                self.latest = result  # finished after its window: the freshest readings there are
        if self.task is not None and not self.task.done():
            hung_after = max(HUNG_AFTER_TICKS * period, HUNG_MIN_S, 3 * self.budget_s)
            if self.clock() - self.task_started > hung_after:
                self.task.cancel()
                self.task = None
                self._crash(f"{self.task_kind} hung for more than {hung_after:.0f} s")
        if self.crashed is not None and self.restart_task is None and self.backoff.ready(self.clock()) \
                and (self.task is None or self.task.done()):
            self.restart_task = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        self.restarts_total += 1
        log.info("driver_restarting", driver=self.name, after=self.crashed)
        try:
            await asyncio.wait_for(self.driver.close(), CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - it crashed; its close may fail too
            pass
        try:
            await asyncio.wait_for(self.driver.start(), START_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            self.restart_task = None
            self._crash(f"restart failed: {type(exc).__name__}: {exc}")  # logged once per outage
            return
        log.info("driver_restarted", driver=self.name)
        self.crashed = None
        self.restart_task = None

    def _collect(self, task: asyncio.Task) -> Any:
        """A finished call's result, or None after recording a crash."""
        self.task = None if task is self.task else self.task
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is not None:
            self._crash(f"{self.task_kind} raised {type(exc).__name__}: {exc}")
            return None
        if self.crashed is None:
            self.backoff.success()
        return task.result()

    # -- calls --

    def unavailable(self) -> str | None:
        if self.crashed is not None:
            return f"driver {self.name} crashed ({self.crashed}); restarting"
        if self.task is not None and not self.task.done():
            return f"driver {self.name} busy: its {self.task_kind} from {self.clock() - self.task_started:.1f} s ago has not returned"
        return None

    def begin(self, kind: str, coro: Awaitable[Any]) -> asyncio.Task | None:
        if kind == "read" and self.task_kind == "read" and self.task is not None and not self.task.done() \
                and self.crashed is None:
            # The read from an earlier tick is still in flight: it is this tick's read too.
            if asyncio.iscoroutine(coro):
                coro.close()
            return self.task
        if self.unavailable() is not None:
            if asyncio.iscoroutine(coro):
                coro.close()
            return None
        self.task = asyncio.ensure_future(coro)
        started = self.task_started = self.clock()
        self.task_kind = kind
        if kind == "read":
            def done(t: asyncio.Task) -> None:
                if not t.cancelled() and t.exception() is None:
                    self.last_read_s = self.clock() - started
            self.task.add_done_callback(done)
        return self.task

    def lost_all(self, reason: str) -> dict[str, Reading]:
        now = self.clock()
        return {n: Reading.lost(p.config.unit, now, reason) for n, p in self.driver.points.items()}

    def finish_read(self, task: asyncio.Task | None, reason_if_none: str) -> dict[str, Reading]:
        """The readings of this tick's read: the driver's, with every missing point LOST."""
        readings: dict[str, Reading] | None = None
        if task is not None and task.done():
            result = self._collect(task)
            if isinstance(result, dict):
                readings = dict(result)
                self.latest = result
            elif self.crashed is not None:
                reason_if_none = f"driver {self.name} crashed ({self.crashed})"
        elif self.latest is not None and self._in_flight_within_budget():
            self.reads_carried_total += 1
            readings = dict(self.latest)  # their own timestamps: validation judges their age
        if readings is None:
            return self.lost_all(reason_if_none)
        now = self.clock()
        for n, p in self.driver.points.items():
            if n not in readings:
                readings[n] = Reading.lost(p.config.unit, now, "not returned by driver")
        return readings

    def _in_flight_within_budget(self) -> bool:
        """A call is in flight (this tick's read, or a write or read from an earlier tick), the
        driver is not crashed, and the call is not yet past the driver's own read budget."""
        return (self.crashed is None and self.task is not None and not self.task.done()
                and self.clock() - self.task_started <= self.budget_s)

    def note_outage(self, readings: Mapping[str, Reading], now: float) -> tuple[str, str] | None:
        """('driver_outage'|'driver_recovered', message) when the driver's state changes."""
        mine = [readings[n] for n in self.reading_points if n in readings]
        if not mine:
            return None
        all_lost = all(r.quality is Quality.LOST for r in mine)
        if not all_lost:
            self.ever_good = True
            self.lost_since, self.lost_reads = None, 0
        else:
            if self.lost_since is None:
                self.lost_since = now
            self.lost_reads += 1
            if not self.ever_good and now - self.created < CONNECT_GRACE_S:
                return None  # still connecting (see CONNECT_GRACE_S)
        if all_lost and self.outage is None:
            if self.lost_reads < 2 or now - self.lost_since < OUTAGE_AFTER_S:
                return None  # not yet an outage (see OUTAGE_AFTER_S)
            reason = mine[0].reason or "lost"
            self.outage, self.outage_since = reason, self.lost_since
            return "driver_outage", (f"driver {self.name}: no readings for {now - self.lost_since:.1f} s "
                                     f"({reason})")
        if not all_lost and self.outage is not None:
            was, since = self.outage, self.outage_since
            self.outage, self.outage_since = None, None
            return "driver_recovered", (f"driver {self.name}: readings again after "
                                        f"{now - (since or now):.1f} s ({was})")
        return None

    def note_writes(self, results: list[WriteResult]) -> None:
        for r in results:
            if not r.ok and r.point not in self.write_failing:
                log.warning("write_failed", driver=self.name, point=r.point, value=r.value, reason=r.reason)
                self.write_failing[r.point] = r.reason
            elif r.ok and r.point in self.write_failing:
                log.info("write_recovered", driver=self.name, point=r.point, was=self.write_failing.pop(r.point))
        if results and "*" in self.write_failing:
            log.info("writes_resumed", driver=self.name, was=self.write_failing.pop("*"))

    def status(self) -> dict[str, Any]:
        try:
            h = self.driver.health()
        except Exception:  # noqa: BLE001
            h = DriverHealth(self.name, self.driver.kind)
        now = self.clock()
        if self.crashed is not None:
            state = "restarting" if self.restart_task is not None else "crashed"
        elif self.outage is not None:
            state = "down"
        elif not self.ever_good:
            state = "connecting"
        else:
            state = "up"
        return {
            "kind": self.driver.kind, "state": state, "connected": bool(h.connected),
            "outage": self.outage, "outage_for_s": None if self.outage_since is None else now - self.outage_since,
            "crashed": self.crashed, "restarts_total": self.restarts_total,
            "last_error": h.last_error, "errors_total": h.errors_total,
            "reconnects_total": h.reconnects_total, "writes_failed_total": h.writes_failed_total,
            "write_failing": dict(self.write_failing), "last_read_s": self.last_read_s,
            "reads_carried_total": self.reads_carried_total,
            "points": len(self.driver.points),
        }
