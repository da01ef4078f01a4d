"""Prometheus metrics of the running daemon: what the plant and the controller are doing, per tick.

The daemon calls `observe_tick` once per completed tick with the step's result and its drivers'
health, `observe_config_reload` after each SIGHUP, and `serve` once at start-up. Everything here is
cheap on the tick path: `observe_tick` keeps references to the (immutable) step result, copies the
drivers' counters and updates a few running totals; the per-point families are built from that
snapshot at scrape time, under a lock, so a scrape never sees half a tick.

Naming follows Prometheus conventions: base units in the name (`_celsius`, `_watts`,
`_cubic_meters_per_second`, `_pascals`, `_ratio`, `_joules_total`, `_seconds`). A point's value is
converted from its configured unit by a pure scale factor (pct -> ratio 0..1, kW -> W, m3/h -> m3/s,
bar -> Pa), so that differences (PID terms, dT in K) convert the same way.

Cardinality is bounded: every label value comes from the site config (points, trips, loops,
drivers) or from a fixed enum in this module, and every series exists from construction. A point,
trip, loop or driver the config does not name is ignored, never turned into a new series.

Counters mirror totals kept elsewhere (the energies in `EnergyCounters`, which the daemon restores
at start-up; the drivers' error counts): they advance by the positive difference between successive
observations, so a total that goes backwards (a restored older state file, a driver rebuilt after a
reload) never makes a counter go down. The energy counters appear with the first tick, at the
restored total: exposing 0 before it and the restored total after would read as a huge increase.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import platform
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Callable, Iterable, Iterator, Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, ProcessCollector
from prometheus_client import make_wsgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from controller import __version__
from controller.core.commands import OutputSource
from controller.site.models import SiteConfig
from controller.site.checks import point_kind
from controller.core.modes import Mode
from controller.site.roles import PointKind
from controller.core.step import StepResult
from drivers.base import DriverHealth

NAN = float("nan")

# Configured unit -> (metric family suffix, scale factor to the base unit, HELP text).
# Scale only, no offsets: a difference converts exactly as a value does.
UNIT_FAMILIES: dict[str, tuple[str, float, str]] = {
    "degC": ("celsius", 1.0, "degrees Celsius"),
    # A temperature difference: 1 K == 1 degC of difference; kept apart so that it is not
    # mistaken for an absolute temperature.
    "K": ("kelvin", 1.0, "kelvin (a temperature difference)"),
    "W": ("watts", 1.0, "watts"),
    "kW": ("watts", 1000.0, "watts"),
    "m3/h": ("cubic_meters_per_second", 1.0 / 3600.0, "cubic metres per second"),
    "pct": ("ratio", 0.01, "a ratio 0..1 (configured in percent)"),
    "bar": ("pascals", 1e5, "pascals (configured in bar)"),
    "bool": ("bool", 1.0, "0 or 1"),
    # Dimensionless. Not `_count`: that suffix belongs to histograms and summaries.
    "count": ("value", 1.0, "a dimensionless number"),
}

# A reading's verdict, reduced to a fixed set (Checked.reason is free text: it carries values and
# driver messages, and must never become a label). Order: first prefix that matches wins.
QUALITIES: tuple[str, ...] = ("good", "missing", "lost", "uncertain", "bad", "nan", "out_of_range",
                              "stale", "frozen", "rate")
_REASON_PREFIXES: tuple[str, ...] = ("missing", "uncertain", "bad", "nan", "out_of_range", "stale",
                                     "frozen", "rate", "lost")

OUTPUT_DRIVERS: tuple[str, ...] = tuple(s.value for s in (
    OutputSource.AUTO, OutputSource.OVERRIDE, OutputSource.TRIP, OutputSource.SAFE_DEGRADE,
    OutputSource.STARTUP))

HEAT_FLOWS: tuple[tuple[str, str], ...] = (
    ("captured", "captured_w"), ("transferred", "transferred_w"), ("delivered", "delivered_w"),
    ("to_tank", "to_tank_w"), ("dumped", "dumped_w"), ("boiler", "boiler_w"),
)

ENERGY_KINDS: tuple[str, ...] = ("it", "captured", "transferred", "delivered", "stored_in",
                                 "stored_out", "dumped", "boiler", "aux")

# PID terms spelled out: promtool's lint reads `_d` as an abbreviated unit (days).
LOOP_TERMS: tuple[str, ...] = ("setpoint", "measurement", "output", "proportional", "integral", "derivative")

# The event kinds the step emits (controller/core/events.py, controller/core/step.py); anything else is
# counted as "other" so that a new kind can never add a series at run time.
EVENT_KINDS: tuple[str, ...] = (
    "mode_changed", "trip", "trip_clear", "trip_reset", "trip_acked", "trip_test",
    "request_accepted", "request_refused", "override_set", "override_cleared", "override_expired",
    "reading_bad", "reading_recovered", "other",
)

# Tick durations: a 100 ms tick should finish in a few ms, a 1 s tick in well under 100 ms; the
# top buckets catch a tick that overran either period (several seconds: a stalled driver).
TICK_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25,
                                   0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)

# Lateness is mostly event-loop jitter (sub-millisecond) until something blocks the loop; the upper
# buckets match TICK_BUCKETS so a late tick and a long tick read on the same scale.
LATENESS_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def quality_of(good: bool, reason: str) -> str:
    """The fixed quality class of a reading verdict (one of QUALITIES)."""
    if good:
        return "good"
    for prefix in _REASON_PREFIXES:
        if reason.startswith(prefix):
            return prefix
    # validation.py passes a LOST reading's driver reason through unprefixed ("timeout", ...).
    return "lost"


def _f(v: float | None, scale: float = 1.0) -> float:
    """A value for exposition: NaN where there is none (a bad reading is not zero)."""
    return NAN if v is None else float(v) * scale


class _MirroredCounter:
    """A counter that follows an external running total by its positive increments."""

    __slots__ = ("value", "_last")

    def __init__(self, start: float = 0.0, last: float | None = None):
        self.value = start
        self._last = last

    def follow(self, total: float) -> None:
        if self._last is not None and total > self._last:
            self.value += total - self._last
        elif self._last is None:
            self.value = total
        self._last = total


@dataclass(frozen=True)
class _DriverSnap:
    up: bool
    requests: int
    errors: int
    reconnects: int
    write_failures: int


class _TickCollector:
    """Per-point, per-trip, per-loop, per-driver families built from the last observed tick."""

    def __init__(self, site: SiteConfig):
        self.lock = threading.Lock()
        self.result: StepResult | None = None
        self.last_tick_wall: float | None = None
        self.points = dict(site.points)
        self.readings = tuple(n for n in site.points if point_kind(site, n) is PointKind.READING)
        self.actuators = tuple(n for n in site.points if point_kind(site, n) is PointKind.ACTUATOR)
        self.trips = tuple(site.trips)
        self.trip_thresholds = tuple(
            (name, t.point, level, v) for name, t in site.trips.items()
            if t.point is not None and t.point in self.points
            for level, v in (("alarm", t.alarm), ("limit", t.limit)) if v is not None)
        pw = site.power
        self.power_settings = (("max", pw.max_w), ("floor", pw.floor_w),
                               ("safe_degrade", pw.safe_degrade_w), ("idle", pw.idle_w))
        self.loop_units = {
            name: (self._unit(getattr(site.loops, name).measurement),
                   self._unit(getattr(site.loops, name).output))
            for name in ("it_delta_t", "consumer_supply", "dump", "power_cap")
        }
        self.driver_kinds = {name: d.kind for name, d in site.drivers.items()}
        self.drivers: dict[str, _DriverSnap] = {n: _DriverSnap(False, 0, 0, 0, 0) for n in self.driver_kinds}
        self.driver_counters = {n: {k: _MirroredCounter() for k in ("requests", "errors", "reconnects",
                                                                    "write_failures")}
                                for n in self.driver_kinds}
        self.energy: dict[str, _MirroredCounter] | None = None
        self.metered = _MirroredCounter()
        self.unmetered = _MirroredCounter()
        self.events = {k: 0 for k in EVENT_KINDS}
        self.site_name = site.site.name
        self.tick_period_s = site.tick_period_s

    def _unit(self, point: str) -> tuple[str, float, str]:
        return UNIT_FAMILIES.get(self.points[point].unit, ("value", 1.0, "unit " + self.points[point].unit))

    def scale(self, point: str) -> float:
        return self._unit(point)[1]

    # --- updates, on the tick path ---------------------------------------------------------------

    def observe(self, result: StepResult, drivers: Mapping[str, DriverHealth]) -> None:
        e = result.state.energy
        snaps = {}
        for name, h in drivers.items():
            if name in self.drivers:
                snaps[name] = _DriverSnap(bool(h.connected), int(h.requests_total), int(h.errors_total),
                                          int(h.reconnects_total), int(h.writes_failed_total))
        with self.lock:
            self.result = result
            self.last_tick_wall = time.time()
            if self.energy is None:
                self.energy = {k: _MirroredCounter() for k in ENERGY_KINDS}
            for k, c in self.energy.items():
                c.follow(getattr(e, f"{k}_j"))
            self.metered.follow(e.metered_s)
            self.unmetered.follow(e.unmetered_s)
            for name, s in snaps.items():
                self.drivers[name] = s
                c = self.driver_counters[name]
                c["requests"].follow(s.requests)
                c["errors"].follow(s.errors)
                c["reconnects"].follow(s.reconnects)
                c["write_failures"].follow(s.write_failures)
            for ev in result.events:
                kind = ev.kind if ev.kind in self.events else "other"
                self.events[kind] += 1

    # --- exposition, at scrape time --------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        # Names only: lets the registry catch a clash without building the families.
        for m in self._families(None, describe=True):
            yield m

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            result = self.result
            state = dict(
                wall=self.last_tick_wall,
                drivers=dict(self.drivers),
                driver_counters={n: {k: c.value for k, c in cs.items()} for n, cs in self.driver_counters.items()},
                energy=None if self.energy is None else {k: c.value for k, c in self.energy.items()},
                metered=self.metered.value, unmetered=self.unmetered.value,
                events=dict(self.events),
            )
        yield from self._families(result, state=state)

    def _families(self, r: StepResult | None, describe: bool = False,
                  state: dict | None = None) -> Iterable[Metric]:
        G, C = GaugeMetricFamily, CounterMetricFamily
        st = state or {}
        res_state = r.state if r is not None else None

        # Site, config-derived information.
        info = G("heatctl_point_info", "Each configured point: unit as configured and as exposed, kind.",
                 labels=["point", "unit", "base_unit", "kind", "role", "critical"])
        if not describe:
            readings, actuators = frozenset(self.readings), frozenset(self.actuators)
            for name, p in self.points.items():
                kind = "reading" if name in readings else "actuator" if name in actuators else "other"
                info.add_metric([name, p.unit, self._unit(name)[0], kind, p.role or "", str(p.critical).lower()], 1)
        yield info

        # Points: value in base units (one family per unit), good, quality, bad time.
        fams: dict[str, GaugeMetricFamily] = {}
        for name in self.readings:
            suffix, _, help_unit = self._unit(name)
            if suffix not in fams:
                fams[suffix] = G(f"heatctl_point_{suffix}",
                                 f"Validated reading in {help_unit}; NaN while the reading is bad.",
                                 labels=["point"])
        good = G("heatctl_point_good", "1 while the reading passes validation, else 0.", labels=["point"])
        quality = G("heatctl_point_quality", "The reading's verdict: 1 for its current class, 0 for the others.",
                    labels=["point", "quality"])
        bad_for = G("heatctl_point_bad_seconds", "How long the reading has been bad (0 while good).",
                    labels=["point"])
        if not describe:
            checked = r.checked if r is not None else {}
            for name in self.readings:
                suffix, scale, _ = self._unit(name)
                c = checked.get(name)
                if c is None:
                    v, ok, q, bad_s = NAN, False, "missing", 0.0
                else:
                    v, ok, q, bad_s = _f(c.value if c.good else None, scale), c.good, quality_of(c.good, c.reason), c.bad_for_s
                fams[suffix].add_metric([name], v)
                good.add_metric([name], 1.0 if ok else 0.0)
                for qq in QUALITIES:
                    quality.add_metric([name, qq], 1.0 if qq == q else 0.0)
                bad_for.add_metric([name], bad_s)
        yield from fams.values()
        yield good
        yield quality
        yield bad_for

        # Outputs.
        out_v = G("heatctl_output_value", "Commanded actuator value in its base unit (see heatctl_point_info).",
                  labels=["point"])
        out_d = G("heatctl_output_driver", "Who drives the actuator this tick: 1 for the current source, 0 for the others.",
                  labels=["point", "driver"])
        if not describe:
            cmds = r.commands if r is not None else {}
            for name in self.actuators:
                o = cmds.get(name)
                out_v.add_metric([name], NAN if o is None else o.value * self.scale(name))
                cur = None if o is None else o.source.value
                for d in OUTPUT_DRIVERS:
                    out_d.add_metric([name, d], 1.0 if d == cur else 0.0)
        yield out_v
        yield out_d

        # Trips.
        latched = G("heatctl_trip_latched", "1 while the trip is latched (until its condition clears and it is acknowledged).",
                    labels=["trip"])
        active = G("heatctl_trip_active", "1 while the trip's condition holds.", labels=["trip"])
        acked = G("heatctl_trip_acknowledged", "1 once a latched trip has been acknowledged.", labels=["trip"])
        if not describe:
            trips = res_state.trips if res_state is not None else {}
            for t in self.trips:
                ts = trips.get(t)
                latched.add_metric([t], 1.0 if ts is not None and ts.latched else 0.0)
                active.add_metric([t], 1.0 if ts is not None and ts.active else 0.0)
                acked.add_metric([t], 1.0 if ts is not None and ts.acked else 0.0)
        yield latched
        yield active
        yield acked

        # Trip thresholds and the site's power settings, from the config: a dashboard draws limits
        # and the throttled share (1 - cap / max) without copying the site's numbers.
        thr: dict[str, GaugeMetricFamily] = {}
        for t, point, _level, _v in self.trip_thresholds:
            suffix, _, help_unit = self._unit(point)
            if suffix not in thr:
                thr[suffix] = G(f"heatctl_trip_threshold_{suffix}",
                                f"Trip thresholds (alarm, limit) in {help_unit}, from the site config.",
                                labels=["trip", "point", "level"])
        power_cfg = G("heatctl_power_config_watts",
                      "The site's IT power settings (W): max and floor of the cap, safe_degrade cap, idle.",
                      labels=["setting"])
        if not describe:
            for t, point, level, v in self.trip_thresholds:
                thr[self._unit(point)[0]].add_metric([t, point, level], v * self.scale(point))
            for setting, v in self.power_settings:
                power_cfg.add_metric([setting], v)
        yield from thr.values()
        yield power_cfg

        # Mode details beyond the heatctl_mode enum.
        held = G("heatctl_mode_held", "1 while an operator holds the mode (automatic transitions suspended).")
        started = G("heatctl_started", "1 once a complete, valid snapshot has been seen since start-up.")
        causes = G("heatctl_safe_degrade_causes", "Number of safe_degrade causes present this tick.")
        overrides = G("heatctl_overrides_active", "Number of operator overrides in force.")
        heartbeat = G("heatctl_heartbeat", "The heartbeat value written to the BMS (wraps at its range).")
        if not describe and res_state is not None:
            held.add_metric([], 1.0 if res_state.held else 0.0)
            started.add_metric([], 1.0 if res_state.started else 0.0)
            causes.add_metric([], float(len(res_state.degrade_causes)))
            overrides.add_metric([], float(len(res_state.overrides)))
            heartbeat.add_metric([], float(res_state.heartbeat))
        elif not describe:
            for g in (held, started, causes, overrides):
                g.add_metric([], 0.0)
            heartbeat.add_metric([], NAN)
        yield from (held, started, causes, overrides, heartbeat)

        # Loops, in base units of their measurement and output points.
        loop_g = {term: G(f"heatctl_loop_{term}",
                          f"PID loop {term}, in base units ({'measurement' if term in ('setpoint', 'measurement') else 'output'} side); NaN while unknown.",
                          labels=["loop"]) for term in LOOP_TERMS}
        loop_held = G("heatctl_loop_held", "1 while the loop is held (manual, no valid measurement).", labels=["loop"])
        if not describe:
            loops = r.loops if r is not None else {}
            for name, (m_unit, o_unit) in self.loop_units.items():
                lr = loops.get(name)
                ms, os_ = m_unit[1], o_unit[1]
                if lr is None:
                    for term in LOOP_TERMS:
                        loop_g[term].add_metric([name], NAN)
                    loop_held.add_metric([name], 0.0)
                    continue
                loop_g["setpoint"].add_metric([name], _f(lr.setpoint, ms))
                loop_g["measurement"].add_metric([name], _f(lr.measurement, ms))
                loop_g["output"].add_metric([name], _f(lr.output, os_))
                loop_g["proportional"].add_metric([name], _f(lr.p, os_))
                loop_g["integral"].add_metric([name], _f(lr.i, os_))
                loop_g["derivative"].add_metric([name], _f(lr.d, os_))
                loop_held.add_metric([name], 1.0 if lr.held else 0.0)
        yield from loop_g.values()
        yield loop_held

        # Heat flows.
        flow = G("heatctl_heat_flow_watts", "Heat flow (W); NaN where its inputs are bad. to_tank < 0: discharging.",
                 labels=["flow"])
        it_p = G("heatctl_it_power_watts", "IT electrical power, sum of the servers (W); NaN if any reading is bad.")
        aux_p = G("heatctl_aux_power_watts", "Pumps and fans electrical power (W); NaN where not measured.")
        est = G("heatctl_heat_delivered_estimated", "1 while the delivered heat is estimated (no consumer heat meter).")
        soc = G("heatctl_tank_state_of_charge_ratio", "Buffer tank state of charge 0..1; NaN while not measurable.")
        erf = G("heatctl_erf_ratio", "Energy reuse factor since commissioning (ISO/IEC 30134-6): delivered / (IT + aux).")
        if not describe:
            f = r.flows if r is not None else None
            for label, attr in HEAT_FLOWS:
                flow.add_metric([label], _f(getattr(f, attr) if f is not None else None))
            it_p.add_metric([], _f(f.it_w if f is not None else None))
            aux_p.add_metric([], _f(f.aux_w if f is not None else None))
            est.add_metric([], 1.0 if f is not None and f.delivered_estimated else 0.0)
            soc.add_metric([], _f(f.tank_soc if f is not None else None))
            erf.add_metric([], _f(res_state.energy.erf if res_state is not None else None))
        yield from (flow, it_p, aux_p, est, soc, erf)

        # Energies: counters, present from the first tick on (see the module docstring).
        energy = C("heatctl_energy_joules", "Energy since commissioning (J), mirrored from the persisted counters.",
                   labels=["kind"])
        metered = C("heatctl_energy_metered_seconds", "Time integrated into the energy counters.")
        unmetered = C("heatctl_energy_unmetered_seconds", "Time not integrated (bad inputs, gaps): energy unknown.")
        if not describe and st.get("energy") is not None:
            for k in ENERGY_KINDS:
                energy.add_metric([k], st["energy"][k])
            metered.add_metric([], st["metered"])
            unmetered.add_metric([], st["unmetered"])
        yield from (energy, metered, unmetered)

        events = C("heatctl_events", "Events emitted by the control step, by kind.", labels=["kind"])
        if not describe:
            for k, n in st["events"].items():
                events.add_metric([k], float(n))
        yield events

        # Drivers.
        d_info = G("heatctl_driver_info", "Each configured driver and its protocol.", labels=["driver", "kind"])
        d_up = G("heatctl_driver_up", "1 while the driver's connection is up.", labels=["driver"])
        d_counters = {
            "requests": C("heatctl_driver_requests", "Requests sent by the driver.", labels=["driver"]),
            "errors": C("heatctl_driver_errors", "Failed driver requests.", labels=["driver"]),
            "reconnects": C("heatctl_driver_reconnects", "Driver reconnections.", labels=["driver"]),
            "write_failures": C("heatctl_driver_write_failures", "Actuator writes not confirmed by read-back.",
                                labels=["driver"]),
        }
        if not describe:
            for name, kind in self.driver_kinds.items():
                d_info.add_metric([name, kind], 1.0)
                d_up.add_metric([name], 1.0 if st["drivers"][name].up else 0.0)
                for k, fam in d_counters.items():
                    fam.add_metric([name], float(st["driver_counters"][name][k]))
        yield d_info
        yield d_up
        yield from d_counters.values()

        last = G("heatctl_last_tick_timestamp_seconds", "Wall-clock time of the last completed tick (Unix seconds).")
        period = G("heatctl_tick_period_seconds", "Configured control period.")
        if not describe:
            last.add_metric([], NAN if st.get("wall") is None else st["wall"])
            period.add_metric([], self.tick_period_s)
        yield last
        yield period


class _AlarmCollector:
    """Alarm families from the last `Alarms.view` the daemon observed. Labels: alarm names from the
    config, states, priorities, owners and NE 107 classes from controller.core.alarms' fixed tuples; every
    series exists from construction (alarms normal, points good until the first tick says otherwise)."""

    def __init__(self, site: SiteConfig):
        from controller.core.alarms import Alarms
        self.lock = threading.Lock()
        self.alarms = Alarms(site)
        self.view: dict | None = None

    def observe(self, view: dict) -> None:
        with self.lock:
            self.view = view

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            view = self.view
        yield from self._families(view)

    def _families(self, view: dict | None) -> Iterable[Metric]:
        from controller.core.alarms import NE107_CLASSES, STATES
        G, C = GaugeMetricFamily, CounterMetricFamily
        rows = {a["name"]: a for a in (view or {}).get("alarms", [])}
        active = G("heatctl_alarm_active", "1 while the alarm is active and annunciated (unacknowledged or "
                   "acknowledged; not shelved or out of service).", labels=["alarm", "priority", "owner"])
        state = G("heatctl_alarm_state", "The alarm's ISA-18.2 state: 1 for the current one, 0 for the others.",
                  labels=["alarm", "state"])
        chatter = C("heatctl_alarm_chatter", "Activations of the alarm while chattering (3 or more in a minute).",
                    labels=["alarm"])
        flood = G("heatctl_alarm_flood", "Most alarms annunciated to one operator (owner) in the last 10 minutes; "
                  "more than 10 is a flood (EEMUA 191, ISA-18.2).")
        ne107 = G("heatctl_point_ne107", "The point's NAMUR NE 107 status: 1 for its current class (failure, "
                  "function_check, out_of_specification, maintenance_required, good), 0 for the others.",
                  labels=["point", "class"])
        for name, spec in self.alarms.specs.items():
            a = rows.get(name)
            cur = a["state"] if a is not None else "normal"
            active.add_metric([name, spec.priority, spec.owner],
                              1.0 if cur in ("unacknowledged", "acknowledged") else 0.0)
            for st in STATES:
                state.add_metric([name, st], 1.0 if st == cur else 0.0)
            chatter.add_metric([name], float(a["chatter_total"] if a is not None else 0))
        flood.add_metric([], float(max((view or {}).get("flood", {}).values(), default=0)))
        classes = (view or {}).get("ne107") or {}
        for point in self.alarms.points:
            cur = classes.get(point, "good")
            for cls in NE107_CLASSES:
                ne107.add_metric([point, cls], 1.0 if cls == cur else 0.0)
        yield from (active, state, chatter, flood, ne107)


class _PlanMetrics:
    """The 24-hour plan (controller/daemon/planning.py): plan against actual, the solve, the fallback.

    Every series exists from construction, NaN (gauges) or 0 (counters) until the daemon plans: a
    site without a plan shows NaN, not a made-up 0. `source` is "plan" or "actual"; the actual batch
    power is the flexible jobs' allocation in Slurm times the per-node power (the plant meters the
    servers, not the jobs). The counters mirror the PlanKeeper's totals (advance by the difference)."""

    def __init__(self, r: CollectorRegistry):
        self.in_force = Gauge("heatctl_plan_in_force", "1 if a 24-hour plan is in force, 0 on the rules.",
                              registry=r)
        self.soc = Gauge("heatctl_plan_tank_soc_ratio",
                         "Tank state of charge 0..1: the plan's target for this slot, and the actual.",
                         labelnames=["source"], registry=r)
        self.batch = Gauge("heatctl_plan_batch_power_watts",
                           "Batch IT power: the plan's budget for this slot, and the running flexible jobs'.",
                           labelnames=["source"], registry=r)
        self.age = Gauge("heatctl_plan_age_seconds", "Age of the last valid plan.", registry=r)
        self.solve_s = Gauge("heatctl_plan_solve_duration_seconds", "Duration of the last plan solve.",
                             registry=r)
        self.solve_ok = Gauge("heatctl_plan_last_solve_successful",
                              "1 if the last plan solve gave a plan that was taken, 0 if it failed or was late.",
                              registry=r)
        self.solves = Counter("heatctl_plan_solves", "Plan solves by result: accepted, failed, late.",
                              labelnames=["result"], registry=r)
        self.fallbacks = Counter("heatctl_plan_fallbacks",
                                 "Times the last valid plan ran out and today's rules took over.", registry=r)
        for g in (self.in_force, self.age, self.solve_s, self.solve_ok):
            g.set(NAN)
        for src in ("plan", "actual"):
            self.soc.labels(source=src).set(NAN)
            self.batch.labels(source=src).set(NAN)
        self._last = {k: 0.0 for k in ("accepted", "failed", "late", "fallbacks")}
        for k in ("accepted", "failed", "late"):
            self.solves.labels(result=k)

    def observe(self, v: dict) -> None:
        self.in_force.set(1.0 if v.get("in_force") else 0.0)
        self.soc.labels(source="plan").set(_f(v.get("planned_soc")))
        self.soc.labels(source="actual").set(_f(v.get("actual_soc")))
        self.batch.labels(source="plan").set(_f(v.get("planned_batch_w")))
        self.batch.labels(source="actual").set(_f(v.get("actual_batch_w")))
        self.age.set(_f(v.get("age_s")))
        ok = v.get("solve_ok")
        self.solve_ok.set(NAN if ok is None else (1.0 if ok else 0.0))
        self.solve_s.set(_f(v.get("solve_s")))
        for k, last in self._last.items():
            total = float(v.get(k, 0))
            step, self._last[k] = total - last, total
            if step > 0:
                (self.fallbacks if k == "fallbacks" else self.solves.labels(result=k)).inc(step)


class DaemonMetrics:
    """All of the daemon's metrics, in their own registry (never the process-global one)."""

    def __init__(self, site: SiteConfig, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # The controller starts in safe_degrade: listed first, it is the Enum's state until a tick.
        states = [Mode.SAFE_DEGRADE.value] + [m.value for m in Mode if m is not Mode.SAFE_DEGRADE]
        self.mode = Enum("heatctl_mode", "Operating mode.", states=states, registry=r)
        self.tick_duration = Histogram("heatctl_tick_duration_seconds",
                                       "Time to complete one tick: read, step, write.",
                                       buckets=TICK_BUCKETS, registry=r)
        self.tick_lateness = Histogram("heatctl_tick_lateness_seconds",
                                       "How late a tick started against its deadline on the tick grid.",
                                       buckets=LATENESS_BUCKETS, registry=r)
        self.overruns = Counter("heatctl_tick_overruns", "Ticks that took longer than the tick period.",
                                registry=r)
        self.ticks = Counter("heatctl_ticks", "Completed ticks since the daemon started.", registry=r)
        self.reloads = Counter("heatctl_config_reloads", "Configuration reloads (SIGHUP), by result.",
                               labelnames=["result"], registry=r)
        for result in ("ok", "refused"):
            self.reloads.labels(result=result)
        self.reload_ok = Gauge("heatctl_config_last_reload_successful",
                               "1 if the last configuration reload was applied, 0 if it was refused.",
                               registry=r)
        self.reload_ok.set(1)  # the running config is the one that passed start-up checks
        self.build = Info("heatctl_build", "Build information.", registry=r)
        self.build.info({"version": __version__, "python_version": platform.python_version(),
                         "site": site.site.name, "policy": site.site.policy.value})
        ProcessCollector(namespace="", registry=r)
        self._ticks = _TickCollector(site)
        r.register(self._ticks)
        self.envelope = Gauge("heatctl_envelope_carryable_watts",
                              "IT power the site can carry without throttling, per hour ahead (0..23).",
                              labelnames=["hour"], registry=r)
        for h in range(24):  # bounded labels, created at start-up (NaN until the first estimate)
            self.envelope.labels(hour=str(h)).set(NAN)
        self._alarms = _AlarmCollector(site)
        r.register(self._alarms)
        self._plan = _PlanMetrics(r)

    def observe_tick(self, result: StepResult, drivers: Mapping[str, DriverHealth], tick_duration_s: float,
                     overrun: bool) -> None:
        """Record one completed tick. Cheap: the per-point families are built at scrape time."""
        self._ticks.observe(result, drivers)
        self.mode.state(result.state.mode.value)
        self.tick_duration.observe(tick_duration_s)
        self.ticks.inc()
        if overrun:
            self.overruns.inc()

    def observe_lateness(self, lateness_s: float) -> None:
        """How late one tick started against its grid deadline (controller/daemon/lateness.py)."""
        self.tick_lateness.observe(lateness_s)

    def observe_alarms(self, view: dict) -> None:
        """Record the alarms after a tick (controller.core.alarms.Alarms.view)."""
        self._alarms.observe(view)

    def observe_envelope(self, carryable_w) -> None:
        """The 24-hour capacity envelope: carryable IT power per hour ahead (controller/core/envelope.py)."""
        for h, w in enumerate(carryable_w[:24]):
            self.envelope.labels(hour=str(h)).set(w)

    def observe_plan(self, view: dict) -> None:
        """The 24-hour plan against the plant, after each tick (controller/daemon/planning.plan_vs_actual)."""
        self._plan.observe(view)

    def observe_config_reload(self, ok: bool) -> None:
        """Record a reload attempt: ok (applied) or refused (the running config stays)."""
        self.reloads.labels(result="ok" if ok else "refused").inc()
        self.reload_ok.set(1 if ok else 0)

    def serve(self, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None,
              basic_auth: tuple[str, str] | None = None) -> Callable[[], None]:
        """Serve /metrics on exactly `host`:`port` in a background thread; returns the stop function.

        The returned object is callable (stop; idempotent) and carries `.host` and `.port` (the bound
        port, useful with port 0). TLS needs both `tls_cert` and `tls_key` (PEM files). Basic auth is
        refused without TLS on a non-loopback address: the password would cross the network in clear.
        """
        return MetricsServer(self.registry, host, port, tls_cert or SERVER_SECURITY.get("tls_cert"),
                             tls_key or SERVER_SECURITY.get("tls_key"),
                             basic_auth or SERVER_SECURITY.get("basic_auth"))


# TLS and basic auth for the process's metrics server, set once by the composition root (`heatctl
# run --metrics-tls-cert/--metrics-tls-key/--metrics-basic-auth-file`) before the daemon starts, so
# that the runtime, which only knows where to serve, needs no security options of its own.
SERVER_SECURITY: dict = {}


def configure_server_security(tls_cert: str | None = None, tls_key: str | None = None,
                              basic_auth: tuple[str, str] | None = None) -> None:
    SERVER_SECURITY.clear()
    SERVER_SECURITY.update({k: v for k, v in (("tls_cert", tls_cert), ("tls_key", tls_key),
                                              ("basic_auth", basic_auth)) if v is not None})


# --- the HTTP server -----------------------------------------------------------------------------

class _Handler(WSGIRequestHandler):
    # A client that connects and says nothing must not hold a thread for ever.
    timeout = 10.0

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - scrapes are not log events
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _server_class(host: str) -> type[_Server]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return type("_MetricsServer", (_Server,), {"address_family": family})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def basic_auth_app(app: Callable, user: str, password: str, realm: str = "heatctl") -> Callable:
    """A WSGI wrapper that answers 401 unless the request carries these Basic credentials."""
    expected_user, expected_pw = user.encode(), password.encode()

    def wrapped(environ, start_response):
        header = environ.get("HTTP_AUTHORIZATION", "")
        ok = False
        if header[:6].lower() == "basic ":
            try:
                got_user, _, got_pw = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                got_user, got_pw = b"", b""
            # Both compared in constant time, and both always compared.
            ok = hmac.compare_digest(got_user, expected_user) & hmac.compare_digest(got_pw, expected_pw)
        if not ok:
            start_response("401 Unauthorized", [("WWW-Authenticate", f'Basic realm="{realm}"'),
                                                ("Content-Type", "text/plain; charset=utf-8")])
            return [b"authentication required\n"]
        return app(environ, start_response)

    return wrapped


class MetricsServer:
    """The /metrics endpoint in a thread. Calling the object stops it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, tls_cert: str | None,
                 tls_key: str | None, basic_auth: tuple[str, str] | None):
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("metrics TLS needs both a certificate and a key")
        if basic_auth is not None and tls_cert is None and not _is_loopback(host):
            raise ValueError(f"metrics basic auth on {host} without TLS would send the password in clear; "
                             "configure a TLS certificate and key")
        app = make_wsgi_app(registry)
        if basic_auth is not None:
            app = basic_auth_app(app, *basic_auth)
        self._server = make_server(host.strip("[]"), port, app, server_class=_server_class(host),
                                   handler_class=_Handler)
        if tls_cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(tls_cert, tls_key)
            # The handshake happens in the request thread, not in the accept loop, so that one
            # slow client cannot stall every scrape.
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.host = host
        self.port = self._server.server_address[1]
        # poll_interval: how long stop() may wait for the accept loop to notice (default 0.5 s).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="heatctl-metrics", daemon=True)
        self._thread.start()
        self._stopped = False
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
