"""The daemon (`heatctl run`): the thin I/O shell around the pure control step.

One asyncio loop, one tick every `tick_period_s` on absolute deadlines:

  1. read every driver concurrently, each bounded (its own budget, and the tick's read window);
     a driver that does not answer in time, is still busy, has crashed or is restarting gives
     LOST readings for its points, never old values;
  2. freeze them into a Snapshot and call `Controller.step(state, snapshot, requests, now)` with
     `now` from the same monotonic clock the drivers stamp their readings with;
  3. write the commands (actuator points only), grouped by driver, bounded by the tick's write window;
  4. publish: audit the step's events, answer the API requests fed into this tick, metrics, status,
     energy counters every `ENERGY_EVERY_TICKS` ticks, one history row per minute; then, and only
     then, WATCHDOG=1 to systemd (a hung loop stops pinging and gets killed).

A tick that runs past its next deadline is an overrun: counted, logged (rate-limited), and the
missed deadlines are skipped, not made up in a burst, so the next tick starts within one period of
the end of the late one.

Driver calls are never cancelled mid-protocol on a tick deadline (a cancelled Modbus transaction can
leave the client out of step); a call that outlives the window keeps running while the tick goes on
without it, and the driver is "busy" (LOST) until it returns. A call that raises is a crash: the
driver is closed and started again with a backoff, its points LOST meanwhile; a call that hangs
beyond `HUNG_AFTER_TICKS` ticks is cancelled and treated the same way.

Signals: SIGTERM/SIGINT write the safe state (the step's safe outputs, with any latched trip's
actions on top: a leak trip's pumps-off must survive the shutdown), save the energy counters and
audit, and exit 0. SIGHUP reloads the config between ticks: an invalid file is refused (its problem
lines logged and audited) and the running config stays; a valid one gets a new Controller, and the
energy counters, latched trips, overrides (where their points still exist), mode and loop outputs
carry over (`carry_over`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import math
import os
import signal
import stat
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import structlog

from controller.daemon.api_server import OPERATOR_GROUP, ApiServer, Authorizer, Caller
from controller.daemon.audit import ENERGY_EVERY_TICKS, AuditEvent, AuditStore, counters_to_json, iso
from controller.daemon.dead_time import DeadTime, previous_end
from controller.daemon.lateness import Lateness
from controller.daemon.persistence import DatabaseWriter
from controller.core.commands import OutputSource
from controller.site.loader import MAX_CONFIG_BYTES, ConfigError, LoadedConfig, load_config
from controller.core.events import Event
from controller.core.metering import EnergyCounters
from controller.core.modes import Mode
from controller.core.plan import adjustments
from controller.core.readings import Reading, Snapshot
from controller.daemon.gc_pauses import freeze_long_lived
from controller.core.requests import Request, TripTestRequest
from controller.site.roles import Role
from controller.core.state import ControllerState
from controller.core.step import Controller, StepResult
from controller.core import trips as trips_mod
from controller.core.alarms import AlarmRequest, Alarms
from controller.daemon.status import STABILITY_WINDOW_S, _Minute, _Sample, build_status  # noqa: F401
from controller.daemon.supervision import DriverSupervisor, driver_budget_s  # noqa: F401 - tests import it from here
from controller.daemon.systemd_notify import SystemdNotifier
from drivers.base import Driver, WriteResult

try:  # written in parallel; until it lands the daemon runs without metrics
    from controller.daemon.metrics import DaemonMetrics  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the tree
    DaemonMetrics = None  # type: ignore[assignment,misc]

log = structlog.get_logger("heatctl.daemon")

DEFAULT_STATE_DIR = "/var/lib/heatctl"
# Share of the tick spent waiting for reads; writes must be done by WRITE_END_FRACTION. The rest is
# the step (~1 ms) and publishing, with margin for the event loop.
READ_WINDOW_FRACTION = 0.6
WRITE_END_FRACTION = 0.9
# Overrun log lines: at most one per this many seconds, with the count since the last one.
OVERRUN_LOG_EVERY_S = 10.0
# More readings than this going bad (or recovering) in one tick are logged as one line per kind, with
# the count and the first few points: a driver that misses one read on a 1,000-point site would
# otherwise print 1,000 lines, and printing them cost ~60 us each, on the tick (bench_scale.py's
# profile). Every one is still audited, one row per point.
READING_EVENTS_LOGGED_EACH = 10
# The history's throttled flag: IT power within this of the cap (W, or share of the cap) means the
# cap holds the servers back. 500 W: servers follow a lowered limit with a ~5 s lag, and the cap loop
# hands power back at 50 W/s, so a capped site runs 250 W under its cap at most while it recovers.
THROTTLE_MARGIN_W = 500.0
THROTTLE_MARGIN_SHARE = 0.02
# The capacity envelope is recomputed this often (s): it forecasts hours, and its history query
# (7 days of minutes, grouped by hour) costs a few ms, too much for every tick.
ENVELOPE_EVERY_S = 300.0
ENVELOPE_HISTORY_EVERY_S = 3600.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
DriverFactory = Callable[[LoadedConfig, Clock], Mapping[str, Driver]]


# --- scheduling -------------------------------------------------------------------------------

def schedule_next(deadline: float, end: float, period: float) -> tuple[float, int]:
    """The next tick's deadline after the tick due at `deadline` ended at `end`, and how many
    deadlines were skipped. Deadlines stay on the grid deadline + k * period; a late tick skips the
    deadlines it ran through (no burst to catch up), so the next one is never more than one period
    after `end`."""
    nxt = deadline + period
    if end < nxt:
        return nxt, 0
    missed = int(math.floor((end - deadline) / period))
    nxt = deadline + (missed + 1) * period
    if nxt <= end:  # floating point at an exact multiple
        nxt += period
        missed += 1
    return nxt, missed


# --- drivers ----------------------------------------------------------------------------------

def _no_driver_factory(loaded: LoadedConfig, clock: Clock) -> Mapping[str, Driver]:
    # The daemon knows drivers only by their interface (drivers.base): the composition root
    # (`heatctl run`: drivers.registry.build_drivers) injects the concrete ones.
    raise StartupError("no driver factory given: the daemon is started by `heatctl run`, which builds "
                       "the site's drivers")


# --- config reload ----------------------------------------------------------------------------

def carry_over(old: ControllerState, ctrl: Controller, now: float) -> tuple[ControllerState, list[str]]:
    """The running state adapted to a new Controller (a reloaded config), and notes of what was
    dropped. Energy counters always carry over; latched trips where the trip still exists;
    overrides where the point is still an actuator and the value in its range (the remaining time
    is kept); mode, hold, validation history and each loop's last output (its PID restarts
    bumplessly from it, with the new gains)."""
    notes: list[str] = []
    init = ctrl.initial_state(now, old.energy)
    site = ctrl.site
    trips = {}
    for name, st in old.trips.items():
        if name in site.trips:
            trips[name] = st
        elif st.latched:
            notes.append(f"latched trip {name} dropped: no longer configured")
    overrides = {}
    for point, ov in old.overrides.items():
        if point not in ctrl.actuators:
            notes.append(f"override {point} dropped: no longer an actuator")
            continue
        lo, hi = site.points[point].range
        if not lo <= ov.value <= hi:
            notes.append(f"override {point} = {ov.value:g} dropped: outside the new range [{lo:g}, {hi:g}]")
            continue
        overrides[point] = ov
    loops = {}
    for name, runner in ctrl.runners.items():
        prev = old.loops.get(name)
        loops[name] = runner.initial_state(prev.output) if prev is not None and prev.output is not None \
            else init.loops[name]
    outputs = dict(init.outputs)
    outputs.update({p: v for p, v in old.outputs.items() if p in ctrl.actuators})
    history = {n: h for n, h in old.history.items() if n in ctrl.reading_points}
    state = dataclasses.replace(
        init, tick=old.tick, last_now=old.last_now, started=old.started, mode=old.mode,
        mode_since=old.mode_since, mode_cause=old.mode_cause, held=old.held, trips=trips,
        overrides=overrides, history=history, loops=loops, outputs=outputs, heartbeat=old.heartbeat,
        degrade_causes=old.degrade_causes, causes_clear_since=old.causes_clear_since,
        tank_soc=old.tank_soc, boiler_on=old.boiler_on,
        # The BMS's last word on its fallback and the heartbeat's check go on across a reload.
        bms_fallback=old.bms_fallback, heartbeat_check=old.heartbeat_check)
    return state, notes


def refused_record(path: str) -> tuple[str, str]:
    """A refused config's text and sha256 for the config history, or ("", "") for a file that is
    not a small regular file: that one is never read whole (it may be /dev/zero, a FIFO or
    gigabytes); its problem line says what it is. Called in the reload's worker thread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return "", ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CONFIG_BYTES:
            return "", ""
        with os.fdopen(fd, "rb") as f:
            fd = -1
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        return "", ""
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        return "", ""
    return raw.decode("utf-8", errors="replace"), hashlib.sha256(raw).hexdigest()


def _driver_fingerprint(loaded: LoadedConfig) -> str:
    """What the drivers are built from: their configs and their points' sources and units."""
    site = loaded.site
    parts = [repr(sorted((n, d.model_dump_json()) for n, d in site.drivers.items())),
             repr(sorted((n, s.model_dump_json(), site.points[n].unit, tuple(site.points[n].range))
                         for n, s in loaded.sources.items()))]
    return "\n".join(parts)


# --- requests ---------------------------------------------------------------------------------

@dataclass
class _Pending:
    request: Request
    caller: Caller
    future: asyncio.Future


def verdict(req: Request, events: list[Event]) -> tuple[bool | None, str, Event | None]:
    """The step's (or the alarm evaluation's) verdict on `req` among this tick's events, found by
    the request id that every answering event echoes: (accepted, refusal, event)."""
    for e in events:
        if e.fields.get("request_id") != req.request_id:
            continue
        if e.kind == "request_refused":
            return False, str(e.fields.get("refusal", "")), e
        return True, "", e
    return None, "", None


# --- status helpers ---------------------------------------------------------------------------

def _event_level(e: Event) -> str:
    if e.kind == "trip":
        return "error"
    if e.kind in ("request_refused", "reading_bad", "bms_fallback", "heartbeat_fault") or (
            e.kind == "mode_changed" and e.fields.get("dest") == Mode.SAFE_DEGRADE.value):
        return "warning"
    return "info"


# --- the daemon -------------------------------------------------------------------------------

@dataclass
class RuntimeOptions:
    config_path: str
    state_dir: str = DEFAULT_STATE_DIR
    socket_path: str | None = None
    metrics_addr: tuple[str, int] | None = None
    authorizer: Authorizer | None = None
    socket_group: str | None = OPERATOR_GROUP  # the API socket's group (mode 0660); issue 15
    energy_every_ticks: int = ENERGY_EVERY_TICKS


class StartupError(Exception):
    """The daemon cannot start; one line for the operator."""


class Daemon:
    """The running controller. `clock` (monotonic), `wall` (epoch seconds) and `sleep` are injected
    so that tests drive ticks on a fake clock; `driver_factory` so that tests use fake drivers."""

    def __init__(self, options: RuntimeOptions, loaded: LoadedConfig, *, clock: Clock = time.monotonic,
                 wall: Clock = time.time, sleep: Sleep | None = None,
                 driver_factory: DriverFactory | None = None,
                 notifier: SystemdNotifier | None = None, metrics: Any = "auto"):
        self.options = options
        self.loaded = loaded
        self.clock = clock
        self.wall = wall
        self._sleep_fn = sleep
        self.driver_factory = driver_factory or _no_driver_factory
        self.notifier = notifier if notifier is not None else SystemdNotifier(clock=clock)
        self._metrics_arg = metrics
        self.metrics: Any = None
        self._metrics_stop: Callable[[], None] | None = None
        self.ctrl = Controller(loaded.site)
        self.state: ControllerState | None = None
        # Operator alarms, evaluated after each step on this clock (controller/core/alarms.py).
        self.alarms = Alarms(loaded.site)
        self.alarm_state = self.alarms.initial_state(clock())
        self.alarm_failures_total = 0
        self.last: StepResult | None = None
        self.supervisors: dict[str, DriverSupervisor] = {}
        self.point_driver: dict[str, str] = {}
        # `audit` is the read side (start-up, the API's queries); every write goes through `db`,
        # whose thread owns its own connection, so the tick never waits for SQLite.
        self.audit: AuditStore | None = None
        self.db: DatabaseWriter | None = None
        self._request_seq = 0
        # Verified values of the last tick's writes (point -> value), for the step's applied_outputs.
        self._applied: dict[str, float] = {}
        self.api: ApiServer | None = None
        self._pending: list[_Pending] = []
        self._stopping = False
        self._reload_requested = False
        self._reload_task: asyncio.Future | None = None  # a SIGHUP's config load, in a worker thread
        self._refused_record: tuple[str, str] | None = None  # a refused file's (text, sha256)
        self._stop_why = "stop requested"
        self._wake = asyncio.Event()
        self._ready = False
        self._status_text = ""
        self._fingerprint = _driver_fingerprint(loaded)
        # tick statistics
        self.ticks = 0
        self.overruns_total = 0
        self.lateness = Lateness()
        self.skipped_total = 0
        self.tick_failures_total = 0
        self.last_tick_s = 0.0
        self._tick_durations: collections.deque[tuple[float, float]] = collections.deque()
        self._saved_latched: dict[str, dict[str, Any]] | None = None
        self._overruns_unlogged = 0
        self._overrun_logged_at: float | None = None
        self.tick_starts: list[float] = []  # the last few, for tests and status
        self.started_wall = wall()
        self.started_mono = clock()
        self.reloads_ok = 0
        self.reloads_refused = 0
        self.last_reload: dict[str, Any] | None = None
        self._samples: collections.deque[_Sample] = collections.deque()
        self._minute: _Minute | None = None
        self._ticks_since_energy = 0
        self._dead = DeadTime(None, 0.0, "")
        self._tick_wall: float | None = None  # wall time of the last completed tick
        self._safe_written_at_start = False
        # The Slurm lever (controller/daemon/workload.py), built in start() when the config has workload:.
        self.workload: Any = None
        # The 24-hour plan (controller/daemon/planning.py), built in start() when the site plans.
        self.planner: Any = None

    # -- properties --

    @property
    def period(self) -> float:
        return float(self.ctrl.site.tick_period_s)

    # -- start-up and shutdown --

    async def start(self) -> None:
        """Open the audit store, restore the energy counters, start the drivers, write the safe
        state, open the API. Raises StartupError with one line."""
        try:
            self.audit = AuditStore(self.options.state_dir)
        except (OSError, Exception) as exc:  # sqlite3.Error, PermissionError
            raise StartupError(f"cannot open the state database in {self.options.state_dir}: {exc}") from None
        restored = self.audit.load_energy()
        energy = restored[0] if restored else EnergyCounters()
        # From the last persisted tick to this run's first metered tick nobody metered: counted as
        # unmetered and audited when metering resumes (dead_time.py), never guessed as heat.
        self._dead = DeadTime(restored[1] if restored else None, self.wall(), previous_end(self.audit))
        now = self.clock()
        self.state = self.ctrl.initial_state(now, energy)
        state_dir = self.options.state_dir
        self.db = DatabaseWriter(lambda: AuditStore(state_dir), clock=self.clock)
        self.db.start()
        from controller.daemon.workload import build_workload
        self.workload = build_workload(self.loaded.site, self._audit, self.wall)
        from controller.daemon.planning import build_planner
        self.planner = build_planner(self.loaded.site, self._audit, self.wall)
        self._restore_latched_trips(now)
        self._record_config(self.wall(), self.loaded.path, self.loaded.sha256, self.loaded.text,
                            True, cause="start-up")
        self._audit([AuditEvent(self.wall(), "daemon_start",
                                f"heatctl started (pid {os.getpid()}), config {self.loaded.path} "
                                f"sha256 {self.loaded.sha256[:12]}, energy counters "
                                + (f"restored from {iso(restored[1])}" if restored else "new"),
                                mode=self.state.mode.value,
                                fields={"pid": os.getpid(), "config": self.loaded.path,
                                        "sha256": self.loaded.sha256,
                                        "energy_restored": restored is not None,
                                        "delivered_j": energy.delivered_j})])
        self._audit_waivers("start-up")
        log.info("daemon_start", config=self.loaded.path, sha256=self.loaded.sha256[:12],
                 state_dir=self.options.state_dir, energy_restored=restored is not None,
                 delivered_kwh=round(energy.delivered_j / 3.6e6, 3), tick_period_s=self.period)
        # The socket and the metrics first: a daemon that cannot serve them exits before it has
        # touched a single actuator (a restart loop must not keep rewriting the plant's outputs).
        if self.options.socket_path:
            self.api = ApiServer(self.options.socket_path, self, self.options.authorizer,
                                 socket_group=self.options.socket_group)
            try:
                await self.api.start()
            except OSError as exc:
                raise StartupError(f"cannot open the control socket {self.options.socket_path}: "
                                   f"{exc.strerror or exc}") from None
        self._setup_metrics()
        try:
            self.supervisors = self._build_supervisors(self.loaded)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        await asyncio.gather(*(s.start() for s in self.supervisors.values()))
        self.state = dataclasses.replace(self.state, cap_before_start=await self._read_cap_before_start())
        # The safe state first, held until the step sees a complete, valid snapshot.
        await self._write_values(self._safe_values(), "start-up safe state")
        self._safe_written_at_start = True

    def _setup_metrics(self) -> None:
        if self._metrics_arg is None:
            return
        if self._metrics_arg != "auto":
            self.metrics = self._metrics_arg
        elif DaemonMetrics is not None:
            try:
                self.metrics = DaemonMetrics(self.ctrl.site)
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the controller
                log.error("metrics_unavailable", error=f"{type(exc).__name__}: {exc}")
                self.metrics = None
        elif self.options.metrics_addr:
            log.warning("metrics_unavailable", error="controller.daemon.metrics is not installed; running without metrics")
        if self.metrics is not None and self.options.metrics_addr:
            host, port = self.options.metrics_addr
            try:
                self._metrics_stop = self.metrics.serve(host, port)
                log.info("metrics_listening", host=host, port=port)
            except Exception as exc:  # noqa: BLE001
                raise StartupError(f"cannot serve metrics on {host}:{port}: {exc}") from None

    def _build_supervisors(self, loaded: LoadedConfig) -> dict[str, DriverSupervisor]:
        drivers = self.driver_factory(loaded, self.clock)
        sups = {n: DriverSupervisor(n, d, self.clock) for n, d in drivers.items()}
        self.point_driver = {p: n for n, s in sups.items() for p in s.driver.points}
        return sups

    async def _read_cap_before_start(self) -> float | None:
        """The site cap the BMCs hold now, before the start-up safe state caps them (None: not
        read): the cap loop starts from it when the first valid snapshot shows the IT loop inside
        its limits (a bumpless start: a restart does not throttle compute). One bounded read."""
        point = self.ctrl.role.get(Role.POWER_CAP)
        sup = self.supervisors.get(self.point_driver.get(point or "", ""))
        if point is None or sup is None:
            return None
        task = sup.begin("read", sup.driver.read())
        if task is None:
            return None
        t0 = self.clock()
        await asyncio.wait({task}, timeout=sup.budget_s)
        r = sup.finish_read(task, "no answer before the start-up safe state").get(point)
        value = r.value if r is not None and r.good else None
        log.info("cap_before_start", point=point, watts=value, read_s=round(self.clock() - t0, 3),
                 reason=None if value is not None else (r.reason if r is not None else "not read"))
        return value

    def _safe_values(self) -> dict[str, float]:
        """The safe state: the step's safe outputs, with every latched trip's actions on top."""
        values = dict(self.ctrl.safe_outputs)
        if self.state is not None:
            for point, (value, _trip) in trips_mod.trip_outputs(self.ctrl.site, self.state.trips).items():
                values[point] = value
        return values

    async def _write_values(self, values: Mapping[str, float], why: str,
                            timeout_s: float | None = None, wait_busy: bool = True) -> list[WriteResult]:
        """Write actuator values grouped by driver and wait for them (bounded). With `wait_busy`
        (start-up, shutdown) a driver still busy with a call is waited for, bounded, first; in a
        tick it is skipped (it is already LOST for this tick) and that is logged once."""
        groups: dict[str, dict[str, float]] = {}
        for point, value in values.items():
            name = self.point_driver.get(point)
            if name is not None:
                groups.setdefault(name, {})[point] = value
        tasks = {}
        for name, cmds in groups.items():
            sup = self.supervisors[name]
            t = sup.begin("write", sup.driver.write(cmds))
            if t is None and wait_busy:
                # busy or crashed: wait for the running call (bounded), then try once more
                if sup.task is not None and not sup.task.done():
                    await asyncio.wait({sup.task}, timeout=sup.budget_s * 2)
                    sup.supervise(self.period)
                t = sup.begin("write", sup.driver.write(cmds))
            if t is None:
                sup.writes_skipped_total += 1
                if "*" not in sup.write_failing:
                    reason = sup.unavailable() or "unavailable"
                    sup.write_failing["*"] = reason
                    log.warning("write_skipped", driver=name, why=why, reason=reason)
                continue
            tasks[name] = t
        if not tasks:
            return []
        timeout = timeout_s if timeout_s is not None else max(2 * s.budget_s for s in self.supervisors.values())
        await asyncio.wait(tasks.values(), timeout=timeout)
        results: list[WriteResult] = []
        for name, t in tasks.items():
            sup = self.supervisors[name]
            if t.done():
                res = sup._collect(t)
                if isinstance(res, list):
                    results.extend(res)
                    sup.note_writes(res)
            else:
                log.warning("write_late", driver=name, why=why)
        return results

    async def shutdown(self, why: str = "SIGTERM") -> None:
        """Write the safe state, save counters and audit, close everything. Never raises."""
        self.notifier.stopping(f"stopping ({why}): writing the safe state")
        log.info("daemon_stopping", why=why)
        for p in self._pending:
            if not p.future.done():
                p.future.set_result({"ok": False, "error": "the daemon is shutting down; request not applied"})
        self._pending.clear()
        if self.api is not None:
            await self.api.close()
        if self.workload is not None:
            await self.workload.close()
        if self.planner is not None:
            await self.planner.close()
        written: list[WriteResult] = []
        if self.supervisors:
            try:
                written = await self._write_values(self._safe_values(), "shutdown safe state")
            except Exception as exc:  # noqa: BLE001
                log.error("safe_state_write_failed", error=f"{type(exc).__name__}: {exc}")
        failed = [r.point for r in written if not r.ok]
        if self.audit is not None and self.state is not None:
            if self._dead.open:
                self._close_dead_time(self._tick_wall if self._tick_wall is not None else self.wall(),
                                      "stop (no metered tick in this run)")
            self._save_energy()
            self._flush_minute()
            self._audit([AuditEvent(self.wall(), "daemon_stop",
                                    f"heatctl stopped ({why}); safe state written"
                                    + (f" except {', '.join(failed)}" if failed else ""),
                                    mode=self.state.mode.value, cause=why,
                                    fields={"safe_state": self._safe_values(), "write_failed": failed,
                                            "delivered_j": self.state.energy.delivered_j,
                                            "ticks": self.ticks})])
        await asyncio.gather(*(s.close() for s in self.supervisors.values()))
        if self._metrics_stop is not None:
            try:
                self._metrics_stop()
            except Exception:  # noqa: BLE001
                pass
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.audit is not None:
            self.audit.close()
            self.audit = None
        self.notifier.close()
        log.info("daemon_stopped", why=why, safe_state_failed=failed)

    # -- signals --

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def request_stop(self, why: str = "stop requested") -> None:
        if not self._stopping:
            log.info("stop_requested", why=why)
        self._stopping = True
        self._stop_why = why
        self._wake.set()

    def request_reload(self) -> None:
        log.info("reload_requested", config=self.options.config_path)
        self._reload_requested = True
        self._wake.set()

    # -- the loop --

    async def _sleep(self, delay: float) -> None:
        if self._sleep_fn is not None:
            await self._sleep_fn(delay)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def run(self, max_ticks: int | None = None) -> None:
        """Tick until asked to stop (or `max_ticks`, for tests); then shut down."""
        deadline = self.clock()
        try:
            while not self._stopping:
                while not self._stopping and self.clock() < deadline:
                    await self._sleep(deadline - self.clock())
                    await self._reload_between_ticks()
                if self._stopping:
                    break
                await self._reload_between_ticks()
                start = self.clock()
                late = self.lateness.record(deadline, start)
                if self.metrics is not None:
                    self.metrics.observe_lateness(late)
                self.tick_starts.append(start)
                del self.tick_starts[:-100]
                completed = await self.tick()
                end = self.clock()
                nxt, skipped = schedule_next(deadline, end, self.period)
                self._account(start, end, deadline, skipped, completed)
                deadline = nxt
                if max_ticks is not None and self.ticks >= max_ticks:
                    break
        finally:
            await self.shutdown(self._stop_why)

    def _account(self, start: float, end: float, deadline: float, skipped: int, completed: bool) -> None:
        duration = end - start
        self.last_tick_s = duration
        self._tick_durations.append((end, duration))
        while self._tick_durations and self._tick_durations[0][0] < end - 60.0:
            self._tick_durations.popleft()
        overrun = skipped > 0
        if overrun:
            self.overruns_total += 1
            self.skipped_total += skipped
            self._overruns_unlogged += 1
            if self._overrun_logged_at is None or end - self._overrun_logged_at >= OVERRUN_LOG_EVERY_S:
                log.warning("tick_overrun", duration_s=round(duration, 4), period_s=self.period,
                            skipped=skipped, overruns_since_last_log=self._overruns_unlogged,
                            overruns_total=self.overruns_total)
                self._overrun_logged_at = end
                self._overruns_unlogged = 0
        if self.metrics is not None and self.last is not None and completed:
            try:
                self.metrics.observe_tick(self.last, {n: s.driver.health() for n, s in self.supervisors.items()},
                                          duration, overrun)
            except Exception as exc:  # noqa: BLE001 - metrics never stop the controller
                log.error("metrics_failed", error=f"{type(exc).__name__}: {exc}")
        if completed:
            # Only a completed tick feeds the watchdog: a loop that hangs or fails stops pinging.
            if not self._ready:
                self._ready = True
                self.notifier.ready(self._status_line())
                log.info("ready", first_tick_s=round(duration, 4), frozen_objects=freeze_long_lived())
            self.notifier.watchdog()

    async def tick(self) -> bool:
        """One control tick. True when it completed (read, step, write, publish)."""
        assert self.state is not None
        period = self.period
        t0 = self.clock()
        pending, self._pending = self._pending, []
        try:
            # 1. read
            for sup in self.supervisors.values():
                sup.supervise(period)
            read_end = t0 + READ_WINDOW_FRACTION * period
            tasks: dict[str, asyncio.Task | None] = {}
            for name, sup in self.supervisors.items():
                tasks[name] = sup.begin("read", sup.driver.read())
            live = [t for t in tasks.values() if t is not None]
            if live:
                # Each driver gets its own budget, but none outlives the tick's read window.
                longest = max(self.supervisors[n].budget_s for n, t in tasks.items() if t is not None)
                await asyncio.wait(live, timeout=max(0.0, min(read_end - self.clock(), longest)))
            readings: dict[str, Reading] = {}
            driver_events: list[tuple[str, str, str]] = []
            now = self.clock()
            for name, sup in self.supervisors.items():
                t = tasks[name]
                if t is None:
                    reason = sup.unavailable() or f"driver {name} unavailable"
                else:
                    reason = f"driver {name}: no answer within the tick's read window ({read_end - t0:.2f} s)"
                rs = sup.finish_read(t, reason)
                readings.update(rs)
                change = sup.note_outage(rs, now)
                if change is not None:
                    driver_events.append((name, *change))
            snapshot = Snapshot(now, readings)

            # 2. step
            requests = [p.request for p in pending if not isinstance(p.request, AlarmRequest)]
            plan = self._plan_in_force()
            result = self.ctrl.step(self.state, snapshot, requests, now, applied_outputs=self._applied,
                                    plan=None if plan is None else adjustments(plan, self.wall()))

            # 3. write
            values = {p: o.value for p, o in result.commands.items() if p in self.ctrl.actuators}
            write_end = t0 + WRITE_END_FRACTION * period
            written = await self._write_values(values, "tick", timeout_s=max(0.0, write_end - self.clock()),
                                               wait_busy=False)
            # What the drivers verified reaches the loops' tracking next tick: a write that failed
            # or that the register rounded or clamped does not wind the integrators up.
            self._applied = {r.point: (r.readback if r.readback is not None else r.value)
                             for r in written if r.ok}
        except Exception as exc:  # noqa: BLE001 - a bug in a tick must not kill the loop
            self.tick_failures_total += 1
            log.exception("tick_failed", error=f"{type(exc).__name__}: {exc}")
            for p in pending:
                if not p.future.done():
                    p.future.set_result({"ok": False, "error": f"the tick failed ({type(exc).__name__}); "
                                                               "request not applied"})
            try:
                await self._write_values(self._safe_values(), "tick failed: safe state",
                                         timeout_s=max(0.0, t0 + WRITE_END_FRACTION * period - self.clock()),
                                         wait_busy=False)
            except Exception:  # noqa: BLE001
                pass
            return False

        # 4. publish
        result = self._evaluate_alarms(result, pending, now)
        self.state = result.state
        self.last = result
        self.ticks += 1
        self._publish(result, pending, driver_events, now)
        if self.workload is not None:  # starts a Slurm round beside the tick; never waits for it
            try:
                from controller.daemon.workload import situation_from
                self.workload.after_step(situation_from(self.ctrl.site, result, self.wall(), plan), now)
            except Exception as exc:  # noqa: BLE001 - the workload lever never stops the tick
                log.error("workload_failed", error=f"{type(exc).__name__}: {exc}")
        if self.planner is not None:  # starts a solve beside the tick when one is due; never waits
            try:
                from controller.daemon.planning import after_tick
                after_tick(self.planner, self, result)
            except Exception as exc:  # noqa: BLE001 - the planner never stops the tick
                log.error("planner_failed", error=f"{type(exc).__name__}: {exc}")
        return True

    def _plan_in_force(self) -> Any:
        """The 24-hour plan in force (None: today's rules); never fails the tick."""
        if self.planner is None:
            return None
        try:
            return self.planner.current(self.wall())
        except Exception as exc:  # noqa: BLE001 - a planner bug means the rules, not a failed tick
            log.error("planner_failed", error=f"{type(exc).__name__}: {exc}")
            return None

    def api_plan(self) -> dict[str, Any]:
        if self.planner is None:
            return {"plan": None, "in_force": False, "enabled": False, "fallback": "rules",
                    "note": "off: the site does not plan (planning.enabled, a workload: and a plant: section)"}
        return {**self.planner.view(self.wall()), "enabled": True}

    # -- publishing --

    def _publish(self, result: StepResult, pending: list[_Pending],
                 driver_events: list[tuple[str, str, str]], now: float) -> None:
        state = result.state
        wall = self._tick_wall = self.wall()
        if any(e.kind in ("trip", "trip_reset", "trip_acked") for e in result.events):
            try:
                self._save_latched_trips()  # at once: a crash right after a trip must not lose it
            except Exception as exc:  # noqa: BLE001 - the energy save retries it; never stop the tick
                log.error("latched_trips_save_failed", error=str(exc))
        uids = {p.request.user: p.caller.uid for p in pending}
        rows: list[AuditEvent] = []
        by_kind: dict[str, list[Event]] = {}
        for e in result.events:
            if e.kind in ("reading_bad", "reading_recovered"):
                by_kind.setdefault(e.kind, []).append(e)
        storms = {k: v for k, v in by_kind.items() if len(v) > READING_EVENTS_LOGGED_EACH}
        for e in result.events:
            f = e.fields
            cause = f.get("cause") or f.get("refusal")
            rows.append(AuditEvent(
                wall, e.kind, e.message, mode=state.mode.value, point=f.get("point"), trip=f.get("trip"),
                cause=None if cause is None else str(cause), user=f.get("user"),
                uid=uids.get(f.get("user")) if f.get("user") else None, reason=f.get("reason"),
                fields={k: v for k, v in f.items() if k not in ("point", "trip", "user", "reason")}))
            if e.kind in storms:
                continue
            ctx = {"point": f.get("point"), "trip": f.get("trip"), "cause": cause, "user": f.get("user"),
                   "reason": f.get("reason")}
            getattr(log, _event_level(e))(e.kind, message=e.message, mode=state.mode.value,
                                          **{k: v for k, v in ctx.items() if v is not None})
        for kind, evs in storms.items():
            reasons = sorted({str(e.fields.get("reason")) for e in evs if e.fields.get("reason")})
            getattr(log, _event_level(evs[0]))(
                kind, message=f"{len(evs)} readings: {kind.replace('_', ' ')}", mode=state.mode.value,
                points=len(evs), first_points=[e.fields.get("point") for e in evs[:5]],
                **({"reasons": reasons[:3]} if reasons else {}))
        for name, kind, message in driver_events:
            sup = self.supervisors[name]
            points = list(sup.reading_points)
            rows.append(AuditEvent(wall, kind, message, mode=state.mode.value, cause=sup.outage or message,
                                   fields={"driver": name, "points": points}))
            (log.warning if kind == "driver_outage" else log.info)(
                kind, driver=name, message=message, mode=state.mode.value, points=len(points))
        if rows:
            self._audit(rows)
        # Answer the API requests fed into this tick.
        for p in pending:
            accepted, refusal, ev = verdict(p.request, result.events)
            resp: dict[str, Any] = {"ok": accepted is True, "accepted": accepted is True, "tick": state.tick,
                                    "mode": state.mode.value, "held": state.held}
            if accepted is None:
                resp["error"] = "the step gave no verdict on this request"
            elif not accepted:
                resp["error"] = f"refused: {refusal}"
                resp["refusal"] = refusal
            if ev is not None:
                resp["message"] = ev.message
            if isinstance(p.request, TripTestRequest):
                resp["actions"] = {pt: {"value": o.value, "source": o.source.value, "why": o.why}
                                   for pt, o in result.commands.items() if o.source is OutputSource.TRIP}
                resp["events"] = [{"kind": e.kind, "message": e.message} for e in result.events
                                  if e.kind in ("trip", "trip_test", "mode_changed")]
            if not p.future.done():
                p.future.set_result(resp)
        # systemd status line on change
        line = self._status_line()
        if line != self._status_text:
            self._status_text = line
            if self._ready:
                self.notifier.status(line)
        if self._dead.open and state.started:
            self._close_dead_time(wall, "first metered tick")
        self._sample(result, now)
        self._history(result, wall)
        self._ticks_since_energy += 1
        if self._ticks_since_energy >= self.options.energy_every_ticks:
            self._save_energy()
        if now >= getattr(self, "_envelope_due", -math.inf):
            self._envelope_due = now + ENVELOPE_EVERY_S
            self._update_envelope(result, wall)

    def _update_envelope(self, result: StepResult, wall: float) -> None:
        """The 24-hour capacity envelope (controller/core/envelope.py), every ENVELOPE_EVERY_S: forecast
        from the last 7 days of history, else the current readings. Never fails the tick."""
        from controller.core import envelope as env

        limits = env.limits_from_site(self.ctrl.site)
        if limits is None:  # no plant description in the config: the envelope is off, not guessed
            self.envelope = None
            return
        try:
            # The 7-day hour-of-day means move little in an hour: queried hourly, not every estimate.
            # Queried by the database writer's thread: the result lands for a later estimate.
            if self.db is not None and wall >= getattr(self, "_envelope_hist_due", -math.inf):
                self._envelope_hist_due = wall + ENVELOPE_HISTORY_EVERY_S
                since = int(wall // 60) - 7 * 1440

                def query(store: AuditStore) -> bool:
                    self._envelope_hourly = store.hourly_means(since)
                    return True
                self.db.submit("envelope_history", query, coalesce="envelope_history")
            hourly = getattr(self, "_envelope_hourly", {})
            fc, basis = env.forecast_from_history(
                hourly, int(wall // 3600) % 24, self._role_value(result, Role.CONSUMER_DEMAND),
                self._role_value(result, Role.AMBIENT_TEMP))
            soc = result.flows.tank_soc if result.flows is not None else None
            e = env.estimate(limits, soc, fc, basis)
            self.envelope = {**e.as_dict(), "at": iso(wall),
                             "forecast": [{"demand_w": h.demand_w, "ambient_c": h.ambient_c} for h in fc]}
            observe = getattr(self.metrics, "observe_envelope", None)
            if observe is not None:
                observe(e.carryable_w)
        except Exception as exc:  # noqa: BLE001 - an estimate must never stop the controller
            log.error("envelope_failed", error=f"{type(exc).__name__}: {exc}")

    def api_envelope(self) -> dict[str, Any]:
        env = getattr(self, "envelope", None)
        if env is not None:
            return {"envelope": env}
        from controller.core.envelope import limits_from_site
        if limits_from_site(self.ctrl.site) is None:
            return {"envelope": None, "enabled": False,
                    "note": f"off: {self.loaded.path} has no plant: section (heat exchanger, dry cooler, "
                            "flows, servers) to compute it from"}
        return {"envelope": None, "enabled": True, "note": "not computed yet"}

    def _status_line(self) -> str:
        st = self.state
        if st is None:
            return "starting"
        latched = [n for n, t in st.trips.items() if t.latched]
        parts = [f"mode {st.mode.value}" + (" (held)" if st.held else "")]
        if not st.started:
            parts.append("waiting for a complete, valid snapshot")
        elif st.mode is Mode.SAFE_DEGRADE and st.mode_cause:
            parts.append(st.mode_cause[:120])
        if latched:
            parts.append(f"trips latched: {', '.join(latched)}")
        return "; ".join(parts)

    def _restore_latched_trips(self, now: float) -> None:
        """Trips latched before a restart stay latched: only an operator's ack resets them."""
        assert self.audit is not None and self.state is not None
        saved = self.audit.load_latched_trips()
        trips = dict(self.state.trips)
        restored = []
        for name, info in saved.items():
            if name not in self.ctrl.site.trips:
                continue
            trips[name] = trips_mod.TripState(latched=True, active=False, acked=bool(info.get("acked")), since=now,
                                    cause=f"latched before restart: {info.get('cause', '')}")
            restored.append(name)
        if restored:
            self.state = dataclasses.replace(self.state, trips=trips)
            self._audit([AuditEvent(self.wall(), "trips_restored",
                                    f"trips latched before the restart stay latched: {', '.join(restored)}"
                                    " (acknowledge to reset)", mode=self.state.mode.value,
                                    fields={"trips": restored})])
            log.warning("trips_restored", trips=restored)

    def _save_latched_trips(self) -> None:
        if self.audit is None or self.state is None:
            return
        latched = {n: {"cause": t.cause, "acked": t.acked} for n, t in self.state.trips.items() if t.latched}
        if latched != self._saved_latched and self.db is not None:
            wall = self.wall()
            self.db.submit("latched_trips", lambda store: store.save_latched_trips(latched, wall) or True,
                           coalesce="latched_trips")
            self._saved_latched = latched

    def _save_energy(self) -> None:
        if self.audit is None or self.state is None:
            return
        try:
            self._save_latched_trips()
            if self.db is not None and not self._dead.open:
                # Stamped with the last tick's time, also at shutdown: the counters account up to
                # that tick, and the next start counts the time after it as unmetered.
                wall = self._tick_wall if self._tick_wall is not None else self.wall()
                energy, tick, sha = self.state.energy, self.state.tick, self.loaded.sha256
                self.db.submit("energy", lambda store: store.save_energy(energy, wall, tick, sha) or True,
                               coalesce="energy")
            self._ticks_since_energy = 0
        except Exception as exc:  # noqa: BLE001 - logged; retried next time
            log.error("energy_save_failed", error=f"{type(exc).__name__}: {exc}")

    def _close_dead_time(self, wall: float, why_end: str) -> None:
        assert self.state is not None
        energy, ev = self._dead.close(self.state.energy, wall, self.state.mode.value, why_end)
        if ev is not None:
            self.state = dataclasses.replace(self.state, energy=energy)
            self._audit([ev])
            log.warning("unmetered_gap", seconds=round(ev.fields["seconds"], 1), since=iso(ev.fields["from"]),
                        cause=ev.cause)

    def _audit(self, rows: list[AuditEvent]) -> None:
        """Hand the rows to the database writer: never waits (persistence.py)."""
        if self.db is None or not rows:
            return
        rows = list(rows)
        queued = False

        def write(store: AuditStore) -> bool:
            nonlocal queued
            if not queued:  # a retry after a locked database must not add the rows twice
                store.queue(rows)
                queued = True
            return store.flush()
        self.db.submit("audit", write)

    def _record_config(self, *args, **kwargs) -> None:
        if self.db is not None:
            self.db.submit("config", lambda store: store.record_config(*args, **kwargs) or True)

    def forecast_now(self, result: StepResult) -> list:
        """The envelope's hourly forecast as of now (the plan's, at each solve): the last 7 days'
        hour-of-day means, else the present readings."""
        from controller.core import envelope as env
        fc, _basis = env.forecast_from_history(
            getattr(self, "_envelope_hourly", {}), int(self.wall() // 3600) % 24,
            self._role_value(result, Role.CONSUMER_DEMAND), self._role_value(result, Role.AMBIENT_TEMP))
        return fc

    def _role_value(self, result: StepResult, role: Role) -> float | None:
        names = self.ctrl.idx.get(role, ())
        if len(names) != 1:
            return None
        c = result.checked.get(names[0])
        return c.value if c is not None and c.good else None

    def _sample(self, result: StepResult, now: float) -> None:
        site = self.ctrl.site
        t_c = self._role_value(result, Role.CONSUMER_SUPPLY_TEMP)
        t_s, t_r = self._role_value(result, Role.IT_SUPPLY_TEMP), self._role_value(result, Role.IT_RETURN_TEMP)
        ce = None if t_c is None else t_c - site.loops.consumer_supply.setpoint
        de = None if t_s is None or t_r is None else (t_r - t_s) - site.policy_settings.it_delta_t_k
        outs = {p: o.value for p, o in result.commands.items() if p != self.ctrl.role.get(Role.HEARTBEAT)}
        self._samples.append(_Sample(now, ce, de, outs))
        while self._samples and self._samples[0].t < now - STABILITY_WINDOW_S:
            self._samples.popleft()

    def _history(self, result: StepResult, wall: float) -> None:
        minute = int(wall // 60)
        if self._minute is not None and self._minute.minute != minute:
            self._flush_minute()
        if self._minute is None:
            self._minute = _Minute(minute)
        m = self._minute
        m.samples += 1
        f = result.flows
        if f is not None:
            for k in ("it_w", "captured_w", "transferred_w", "delivered_w", "to_tank_w", "dumped_w", "boiler_w"):
                m.add(k, getattr(f, k))
        m.add("it_supply_c", self._role_value(result, Role.IT_SUPPLY_TEMP))
        m.add("b_supply_c", self._role_value(result, Role.B_SUPPLY_TEMP))
        m.add("consumer_supply_c", self._role_value(result, Role.CONSUMER_SUPPLY_TEMP))
        if result.state.mode is Mode.SAFE_DEGRADE:
            m.degraded_s += self.period
        boiler = result.commands.get(self.ctrl.role.get(Role.BOILER_ENABLE, ""))
        if boiler is not None and boiler.value >= 0.5:
            m.boiler_on_s += self.period
        self._history_sla(m, result)

    def _history_sla(self, m: _Minute, result: StepResult) -> None:
        """The SLA report's and the envelope's per-minute figures (audit.HISTORY_EXTRA_COLUMNS)."""
        site, f = self.ctrl.site, result.flows
        t_c = self._role_value(result, Role.CONSUMER_SUPPLY_TEMP)
        demand = self._role_value(result, Role.CONSUMER_DEMAND)
        avail = self._role_value(result, Role.CONSUMER_AVAILABLE)
        sp = site.loops.consumer_supply.setpoint
        if t_c is not None:
            m.low = t_c if m.low is None else min(m.low, t_c)
            if avail is not None and avail >= 0.5 and demand is not None and demand > 0 and t_c < sp:
                m.below_s += self.period
                m.deficit_ks += (sp - t_c) * self.period
        cap = result.commands.get(self.ctrl.role.get(Role.POWER_CAP, ""))
        # The cap in force while this tick's IT power was measured: the one written last tick.
        prev_cap, self._sla_prev_cap_w = getattr(self, "_sla_prev_cap_w", None), None if cap is None else cap.value
        if cap is not None:
            m.add("power_cap_w", cap.value)
        if prev_cap is not None and prev_cap < site.power.max_w - 1.0:
            # Throttled: the cap is below the site's max and the servers are pressed against it
            # (within THROTTLE_MARGIN of it: their power follows a lowered limit within seconds),
            # or the plant is in safe_degrade (servers may be down to idle or off by their own
            # protection: counted as held back, not as a light load).
            it_w = f.it_w if f is not None else None
            if result.state.mode is Mode.SAFE_DEGRADE or (
                    it_w is not None and it_w >= prev_cap - max(THROTTLE_MARGIN_W, THROTTLE_MARGIN_SHARE * prev_cap)):
                m.throttled_s += self.period
        m.add("demand_w", demand)
        m.add("ambient_c", self._role_value(result, Role.AMBIENT_TEMP))
        if f is not None:
            m.add("tank_soc", f.tank_soc)

    def _flush_minute(self) -> None:
        m, self._minute = self._minute, None
        if m is None or self.audit is None or self.state is None or m.samples == 0:
            return
        row = {k: m.mean(k) for k in ("it_w", "captured_w", "transferred_w", "delivered_w", "to_tank_w",
                                      "dumped_w", "boiler_w", "it_supply_c", "b_supply_c", "consumer_supply_c")}
        row.update(minute=m.minute, ts=m.minute * 60.0, mode=self.state.mode.value, samples=m.samples,
                   degraded_s=m.degraded_s, boiler_on_s=m.boiler_on_s,
                   period_s=self.period, throttled_s=m.throttled_s, consumer_supply_min_c=m.low,
                   below_setpoint_s=m.below_s, deficit_ks=m.deficit_ks, demand_w=m.mean("demand_w"),
                   ambient_c=m.mean("ambient_c"), tank_soc=m.mean("tank_soc"),
                   power_cap_w=m.mean("power_cap_w"),
                   consumer_setpoint_c=self.ctrl.site.loops.consumer_supply.setpoint,
                   counters=counters_to_json(self.state.energy))
        if self.db is not None:
            self.db.submit("history", lambda store: store.write_history(row) or True)

    # -- config reload --

    async def reload(self) -> bool:
        """Load the config file again (off the event loop); swap it in if valid. True if swapped."""
        self._reload_requested = False
        return await self._apply_reload(await self._load_off_loop())

    async def _reload_between_ticks(self) -> None:
        """Start a requested reload's load in a worker thread; swap a finished one in here, between
        ticks. Loading and checking a config (YAML, the models, the controller's set-up) can take long
        for a large or hostile file; on the loop it would hold the tick, so the loop keeps ticking on
        the running config until the load is done (the loader bounds its own time and memory)."""
        if self._reload_requested and self._reload_task is None:
            self._reload_requested = False
            self._reload_task = asyncio.ensure_future(self._load_off_loop())
        if self._reload_task is not None and self._reload_task.done():
            task, self._reload_task = self._reload_task, None
            await self._apply_reload(task.result())

    async def _load_off_loop(self) -> tuple[str, LoadedConfig | None, Controller | None, list[str]]:
        path = self.options.config_path

        def work() -> tuple[str, LoadedConfig | None, Controller | None, list[str]]:
            try:
                loaded = load_config(path)
                return path, loaded, Controller(loaded.site), []
            except ConfigError as exc:
                problems = list(exc.problems)
            except Exception as exc:  # noqa: BLE001 - a config the step cannot use is refused too
                problems = [f"{path}: the controller cannot use it: {type(exc).__name__}: {exc}"]
            # The refused file's text for the config history, read here too, not in the loop.
            self._refused_record = refused_record(path)
            return path, None, None, problems

        return await asyncio.to_thread(work)

    async def _apply_reload(self, result: tuple[str, LoadedConfig | None, Controller | None, list[str]]) -> bool:
        path, loaded, ctrl, problems = result
        wall = self.wall()
        if loaded is None or ctrl is None:
            return self._refuse_config(path, problems)
        assert self.state is not None
        new_fp = _driver_fingerprint(loaded)
        old_sups = self.supervisors
        rebuilt = new_fp != self._fingerprint
        if rebuilt:
            try:
                new_sups = {n: DriverSupervisor(n, d, self.clock)
                            for n, d in self.driver_factory(loaded, self.clock).items()}
            except ValueError as exc:
                self._refused_record = (loaded.text, loaded.sha256)
                return self._refuse_config(path, [str(exc)])
        state, notes = carry_over(self.state, ctrl, self.clock())
        old_sha = self.loaded.sha256
        if rebuilt:
            await asyncio.gather(*(s.close() for s in old_sups.values()))
            self.supervisors = new_sups
            self.point_driver = {p: n for n, s in new_sups.items() for p in s.driver.points}
            await asyncio.gather(*(s.start() for s in new_sups.values()))
        self.loaded, self.ctrl, self.state, self._fingerprint = loaded, ctrl, state, new_fp
        self.alarms = Alarms(loaded.site)
        if self.planner is not None or loaded.site.planning.enabled == "on":
            from controller.daemon.planning import rebuilt
            self.planner = rebuilt(self.planner, loaded.site, self._audit, self.wall)
        self.alarm_state = self.alarms.carry_over(self.alarm_state, self.clock())
        self.reloads_ok += 1
        self.last_reload = {"ok": True, "at": wall, "sha256": loaded.sha256, "notes": notes}
        self._record_config(wall, loaded.path, loaded.sha256, loaded.text, True, cause="SIGHUP")
        change = "unchanged" if loaded.sha256 == old_sha else f"{old_sha[:12]} -> {loaded.sha256[:12]}"
        msg = (f"config reloaded from {path}: sha256 {change}"
               + (", drivers rebuilt" if rebuilt else "") + ("; " + "; ".join(notes) if notes else ""))
        self._audit([AuditEvent(wall, "config_loaded", msg, mode=state.mode.value, cause="SIGHUP",
                                fields={"path": path, "sha256": loaded.sha256, "previous_sha256": old_sha,
                                        "drivers_rebuilt": rebuilt, "notes": notes})])
        self._audit_waivers("SIGHUP")
        log.info("config_loaded", path=path, sha256=loaded.sha256[:12], previous=old_sha[:12],
                 drivers_rebuilt=rebuilt, notes=notes, mode=state.mode.value)
        self._observe_reload(True)
        if self._ready:
            freeze_long_lived()  # the new config is long-lived, the old one garbage (gc_pauses)
        return True

    def _audit_waivers(self, cause: str) -> None:
        """Each safety rule the loaded config waives (its `waive:` entries), in the audit log."""
        rows = [AuditEvent(self.wall(), "config_waiver", r.line_text(), cause=cause, reason=r.reason,
                           fields=r.as_dict()) for r in self.loaded.waived]
        if rows:
            self._audit(rows)
            log.warning("config_waivers", count=len(rows), rules=sorted({r.rule for r in self.loaded.waived}))

    def _refuse_config(self, path: str, problems: list[str]) -> bool:
        wall = self.wall()
        self.reloads_refused += 1
        self.last_reload = {"ok": False, "at": wall, "problems": problems}
        text, sha = self._refused_record or ("", "")
        self._refused_record = None
        self._record_config(wall, path, sha, text, False, problems, cause="SIGHUP")
        mode = self.state.mode.value if self.state else None
        self._audit([AuditEvent(wall, "config_refused",
                                f"config reload refused, still running sha256 {self.loaded.sha256[:12]}: "
                                f"{len(problems)} problem(s): {problems[0] if problems else ''}",
                                mode=mode, cause="SIGHUP",
                                fields={"path": path, "sha256": sha, "problems": problems,
                                        "running_sha256": self.loaded.sha256})])
        log.error("config_refused", path=path, running_sha256=self.loaded.sha256[:12], problems=problems, mode=mode)
        self._observe_reload(False)
        return False

    def _observe_reload(self, ok: bool) -> None:
        if self.metrics is not None:
            try:
                self.metrics.observe_config_reload(ok)
            except Exception as exc:  # noqa: BLE001
                log.error("metrics_failed", error=f"{type(exc).__name__}: {exc}")

    # -- API handler --

    def api_refused(self, op: str, caller: Caller, why: str, reason: str) -> None:
        mode = self.state.mode.value if self.state else None
        self._audit([AuditEvent(self.wall(), "request_refused", f"{op} from {caller.user} refused: {why}",
                                mode=mode, cause=why, user=caller.user, uid=caller.uid, reason=reason or None,
                                fields={"request": op, "refusal": why, "pid": caller.pid})])
        log.warning("request_refused", request=op, user=caller.user, uid=caller.uid, refusal=why, mode=mode)

    async def api_change(self, request: Request, caller: Caller) -> dict[str, Any]:
        if self._stopping:
            return {"ok": False, "error": "the daemon is shutting down; request not applied"}
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        # A daemon-wide id that the step echoes on its answer (never 0: 0 is "no id").
        self._request_seq += 1
        request = dataclasses.replace(request, request_id=self._request_seq)
        self._pending.append(_Pending(request, caller, fut))
        return await fut

    def api_events(self, since: float | None, limit: int) -> dict[str, Any]:
        if self.audit is None:
            return {"events": [], "total": 0}
        events, total = self.audit.events(since, limit)
        return {"events": [e.as_dict() for e in events], "total": total,
                "pending_writes": self.db.state().queued if self.db is not None else 0}

    def api_status(self) -> dict[str, Any]:
        st = build_status(self)
        if self.workload is not None:
            st["workload"] = self.workload.status()
        if self.planner is not None:
            v = self.planner.view(self.wall())
            st["plan"] = {k: v[k] for k in ("in_force", "fallback", "age_s", "last_solve", "counters", "note")}
        return st

    def api_alarms(self) -> dict[str, Any]:
        return self.alarms.view(self.alarm_state, self.clock())

    # -- alarms --

    def _evaluate_alarms(self, result: StepResult, pending: list[_Pending], now: float) -> StepResult:
        """Evaluate the alarms on this tick's result; their events join the step's (audited, and
        answering the alarm requests of this tick). A failure here is logged and counted, and never
        fails the control tick: alarms tell, they do not control."""
        reqs = [p.request for p in pending if isinstance(p.request, AlarmRequest)]
        try:
            down, reconnects = set(), {}
            for name, sup in self.supervisors.items():
                if sup.outage is not None or sup.crashed is not None:
                    down.add(name)
                try:
                    reconnects[name] = int(sup.driver.health().reconnects_total)
                except Exception:  # noqa: BLE001 - a driver's health is best effort
                    pass
            if self.workload is not None and self.workload.down:
                down.add("slurm")  # the alarm signal driver_down:slurm
            inputs = self.alarms.inputs_from(result, down, reconnects)
            self.alarm_state, events = self.alarms.evaluate(self.alarm_state, inputs, reqs, now)
        except Exception as exc:  # noqa: BLE001
            self.alarm_failures_total += 1
            log.exception("alarms_failed", error=f"{type(exc).__name__}: {exc}")
            return result
        observe = getattr(self.metrics, "observe_alarms", None)
        if observe is not None:
            try:
                observe(self.alarms.view(self.alarm_state, now))
            except Exception as exc:  # noqa: BLE001 - metrics never stop the controller
                log.error("metrics_failed", error=f"{type(exc).__name__}: {exc}")
        return dataclasses.replace(result, events=[*result.events, *events]) if events else result


async def run_daemon(options: RuntimeOptions, loaded: LoadedConfig, **kwargs: Any) -> int:
    """Start, tick until SIGTERM/SIGINT, shut down. The exit code: 0 after a clean stop."""
    daemon = Daemon(options, loaded, **kwargs)
    daemon.install_signal_handlers()
    try:
        await daemon.start()
    except StartupError as exc:
        log.error("startup_failed", error=str(exc))
        await daemon.shutdown("start-up failed")
        raise
    await daemon.run()
    return 0
