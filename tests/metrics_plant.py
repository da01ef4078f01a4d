"""The daemon's metrics fed by the in-process Controller, for the tests of what reads them (the
Grafana dashboard, the Prometheus alert rules): SteppedPlant steps the real Controller on changing
snapshots and hands each result to DaemonMetrics as the daemon does (with the operator alarms and
the capacity envelope); exported_names() is every sample name a scrape of it shows; metric_names()
the metric names a PromQL expression selects.
"""

from __future__ import annotations

import math
import re
import threading
import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.core import envelope
from controller.core.alarms import Alarms
from controller.core.readings import Quality
from controller.daemon.metrics import DaemonMetrics
from controller.daemon.runtime import ENVELOPE_EVERY_S
from controller.site.roles import Role
from drivers.base import DriverHealth
from tests.step_helpers import make_controller, snap

# Series Prometheus makes itself for each target (not exported by the daemon).
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                        "scrape_samples_post_metric_relabeling", "scrape_series_added"}
# Heat meters and submeters on top of step_helpers.GOOD, so that the energy counters integrate.
METERED = dict(consumer_heat=30000.0, dump_heat=0.0, boiler_heat=0.0, aux_power=800.0)
DRIVERS = ("bms_modbus", "bms_opcua", "bmcs")
# The tank top reading is BAD from this tick on: after its 30 s on-delay (one fake second a tick)
# the reference config's tank_top_sensor_bad alarm (low priority, owner facilities) is active, and
# it stays unacknowledged.
TANK_TOP_FAILS_AT = 3
FAILING_ALARM = "tank_top_sensor_bad"
# A week of history as audit.hourly_means gives it (UTC hour -> mean demand W, mean ambient degC,
# minutes): the pool takes most at night, the afternoon is warmest.
HOURLY_HISTORY = {h: (30000.0 + 6000.0 * math.cos(2 * math.pi * (h - 3) / 24),
                      10.0 + 4.0 * math.cos(2 * math.pi * (h - 15) / 24), 7 * 60) for h in range(24)}

# --- PromQL: the metric names an expression selects ------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "atan2", "inf", "nan",
}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (a small lexer, enough for our expressions:
    strings, label matchers, ranges, grouping clauses and function names are not metric names)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)   # strings
    s = re.sub(r"\{[^}]*\}", " ", s)                                     # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                    # range / subquery windows
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    s = re.sub(r"\boffset\s+\S+", " ", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(0)
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # 1e5, 3.6e6
        rest = s[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if word.lower() in _KEYWORDS or word.startswith("$"):
            continue
        names.add(word)
    return names


# --- a plant feeding DaemonMetrics ----------------------------------------------------------------

def _snapshot_values(i: int) -> dict[str, float]:
    """Changing but plausible values (within every point's rate limit at one fake second a tick)."""
    w = math.sin(i / 5.0)
    servers = {f"srv{k}_power": 4000.0 + 300.0 * math.sin(i / 4.0 + k) for k in range(1, 9)}
    return dict(METERED, **servers, it_supply_temp=35.0 + 0.5 * w, it_return_temp=43.0 + 0.5 * w,
                consumer_heat=30000.0 + 2000.0 * w, dump_heat=1000.0 + 500.0 * w, boiler_heat=500.0,
                tank_top_temp=40.0 + 0.2 * w)


class SteppedPlant:
    """The real Controller stepped on step_helpers snapshots, handing each result to DaemonMetrics
    as the daemon does, with the alarms and the capacity envelope (fake clock: one second per tick;
    wall time between ticks is `period_s`)."""

    def __init__(self):
        self.ctrl = make_controller()
        self.site = self.ctrl.site
        self.metrics = DaemonMetrics(self.site)
        self.state = self.ctrl.initial_state(0.0)
        self.alarms = Alarms(self.site)
        self.alarm_state = self.alarms.initial_state(0.0)
        self.alarm_view: dict = {}
        self.envelope_limits = envelope.limits_from_site(self.site)
        self.envelope_due = -math.inf
        self.carryable_w: tuple[float, ...] = ()
        self.i = 0
        self.requests = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def tick(self) -> None:
        t = float(self.i)
        start = time.perf_counter()
        bad = {"tank_top_temp": Quality.BAD} if self.i >= TANK_TOP_FAILS_AT else None
        res = self.ctrl.step(self.state, snap(self.site, t, bad=bad, **_snapshot_values(self.i)), [], t)
        self.requests += 3
        health = {n: DriverHealth(name=n, kind=self.site.drivers[n].kind, connected=True,
                                  requests_total=self.requests, errors_total=self.i // 10,
                                  reconnects_total=self.i // 25) for n in DRIVERS}
        # As Daemon._evaluate_alarms: the alarms on this step's result, then their view to the metrics.
        inputs = self.alarms.inputs_from(res, (), {n: h.reconnects_total for n, h in health.items()})
        self.alarm_state, _ = self.alarms.evaluate(self.alarm_state, inputs, [], t)
        self.alarm_view = self.alarms.view(self.alarm_state, t)
        self.metrics.observe_alarms(self.alarm_view)
        self.metrics.observe_tick(res, health, time.perf_counter() - start, False)
        if t >= self.envelope_due:
            self.envelope_due = t + ENVELOPE_EVERY_S
            self._estimate_envelope(res, t)
        self.state = res.state
        self.i += 1

    def _role_value(self, res, role: Role) -> float | None:
        names = self.ctrl.idx.get(role, ())
        c = res.checked.get(names[0]) if len(names) == 1 else None
        return c.value if c is not None and c.good else None

    def _estimate_envelope(self, res, t: float) -> None:
        """As Daemon._update_envelope: the forecast from the week's hour-of-day means (else the
        current readings), the tank's state of charge, the site's limits."""
        fc, basis = envelope.forecast_from_history(
            HOURLY_HISTORY, int(t // 3600) % 24, self._role_value(res, Role.CONSUMER_DEMAND),
            self._role_value(res, Role.AMBIENT_TEMP))
        soc = res.flows.tank_soc if res.flows is not None else None
        self.carryable_w = envelope.estimate(self.envelope_limits, soc, fc, basis).carryable_w
        self.metrics.observe_envelope(self.carryable_w)

    def alarm_active(self, name: str) -> bool:
        return any(a["name"] == name and a["state"] in ("unacknowledged", "acknowledged")
                   for a in self.alarm_view.get("alarms", []))

    def start(self, period_s: float) -> None:
        def loop():
            try:
                while not self._stop.wait(period_s):
                    self.tick()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.error = exc
        self._thread = threading.Thread(target=loop, name="stepped-plant", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def exported_names(plant: SteppedPlant) -> set[str]:
    """Every sample name in a scrape (histogram _bucket/_sum/_count, counter _total included)."""
    text = generate_latest(plant.metrics.registry).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
