"""KPIs of a closed-loop run, the same for every controller, and the trace they are plotted from.

Energies come from the plant's own meters (`simulations.plant.model.Meters`, exact books), never from the
controller's estimates, so heatctl and the baseline are measured with one ruler.

| KPI | meaning |
| --- | --- |
| it_kwh, captured_kwh | IT electrical energy; the part of it that entered the liquid loop |
| delivered_kwh | net recovered heat into the consumer circuit (building loop + tank discharge) |
| useful_kwh, reused_kwh | heat the consumer took up to its demand at each moment; that minus the boiler's: recovered heat that was wanted (what the bound bounds) |
| iae_below_kh, iae_above_kh | supply_iae_kh split: K.h below setpoint (= comfort_deficit_kh) and above it |
| dumped_kwh, boiler_kwh | heat rejected by the dry cooler; heat the consumer's boiler had to add |
| erf | Energy Reuse Factor (ISO/IEC 30134-6): delivered / (IT + pumps + fans) |
| demand_met_share | share of the heat the consumer received that was recovered: delivered / (delivered + boiler) |
| throttled_hours, it_lost_kwh | compute availability: time the cap was below what the workload wanted, and the IT energy not run |
| throttled_safe_hours | of throttled_hours, the part in safe_degrade (a trip, the start-up hold) or with the controller down, and after it while the cap, climbing at its slew rate, could not yet be back (SafeThrottling) |
| comfort_deficit_kh | K.h of consumer supply below its required temperature while it demands heat (BOPTEST's tdis) |
| supply_iae_kh, max_overshoot_k | integral of |supply - setpoint| while demanding; the worst excursion above it |
| trips, hours_above_alarm, hours_above_limit | trips fired; time at or above each high trip's alarm and limit (true values) |
| mode_hours, mode_changes, mode_changes_per_day | time in each mode; chatter |
| actuator_travel | sum of |delta| of each pump, valve and fan command (% of travel), and boiler switchings: wear |
| fallback_hours | time the plant's BMS ran on its own heartbeat fallback |
| monthly | the energies per calendar month (from the trace) |
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field

from simulations.scenarios.profiles import MONTH_NAMES, month_of

# Trace energy columns (kWh per trace interval, the interval starting at t_s[i]).
ENERGY_KEYS = ("it", "captured", "delivered", "to_tank", "from_tank", "dumped", "boiler", "aux", "demand", "it_lost",
               "useful")


@dataclass
class Kpis:
    hours: float
    it_kwh: float
    captured_kwh: float
    delivered_kwh: float
    to_tank_kwh: float
    from_tank_kwh: float
    dumped_kwh: float
    boiler_kwh: float
    pumps_fans_kwh: float
    demand_kwh: float
    erf: float
    mode_hours: dict[str, float]
    mode_changes: int
    trips: dict[str, int]
    hours_above_limit: dict[str, float]
    supply_iae_kh: float
    comfort_deficit_kh: float
    throttled_hours: float
    it_lost_kwh: float
    energy_balance_error: float
    max_it_supply_c: float
    # (simulated seconds, kind, message, fields): faults, mode changes, trips, refusals.
    timeline: list[tuple[float, str, str, dict]] = field(default_factory=list)
    controller: str = "heatctl"
    start_s: float = 0.0
    tick_s: float = 0.0
    demand_met_share: float = 0.0
    max_overshoot_k: float = 0.0
    hours_above_alarm: dict[str, float] = field(default_factory=dict)
    mode_changes_per_day: float = 0.0
    actuator_travel: dict[str, float] = field(default_factory=dict)
    fallback_hours: float = 0.0
    restarts: int = 0
    monthly: list[dict] = field(default_factory=list)
    # Heat the consumer took that it wanted (at most its demand at each moment), and of that the part
    # the boiler did not supply: the recovered heat that counts, what the bound bounds.
    useful_kwh: float = 0.0
    reused_kwh: float = 0.0
    # IAE split: below setpoint is comfort lost, above it is heat pushed where nobody asked for it.
    iae_below_kh: float = 0.0
    iae_above_kh: float = 0.0
    # Of throttled_hours, the part in safe_degrade (a trip, the start-up hold) or with the controller
    # down, and the climb back after it (SafeThrottling): where capping is the safe state's job, not
    # a cost of control.
    throttled_safe_hours: float = 0.0

    @property
    def events(self) -> list[str]:
        """The timeline as lines: the simulated date and time (UTC), the hours since the run began."""
        return [f"{sim_time_label(t)} (+{(t - self.start_s) / 3600:.2f} h): {msg}"
                for t, _, msg, _ in self.timeline]

    @property
    def safe_degrade_hours(self) -> float:
        return self.mode_hours.get("safe_degrade", 0.0)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        d["events"] = self.events
        return d


@dataclass
class Trace:
    """Samples every `every_s` for plots and tests (simulated seconds since 1 January 00:00).

    Instantaneous values at t_s[i]; `energy_kwh[key][i]` is the energy over the interval that
    starts at t_s[i] (to the next sample, or the end of the run), from the plant's meters.
    """

    t_s: list[float] = field(default_factory=list)
    mode: list[str] = field(default_factory=list)
    consumer_supply_c: list[float] = field(default_factory=list)
    it_supply_c: list[float] = field(default_factory=list)
    it_power_w: list[float] = field(default_factory=list)
    power_cap_w: list[float] = field(default_factory=list)
    tank_soc: list[float] = field(default_factory=list)
    setpoint_c: list[float] = field(default_factory=list)
    b_supply_c: list[float] = field(default_factory=list)
    b_return_c: list[float] = field(default_factory=list)
    tank_top_c: list[float] = field(default_factory=list)
    ambient_c: list[float] = field(default_factory=list)
    demand_w: list[float] = field(default_factory=list)
    true_soc: list[float] = field(default_factory=list)
    energy_kwh: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in ENERGY_KEYS})


class SafeThrottling:
    """Kpis.throttled_safe_hours, tick by tick: the throttled time that is the safe state's.

    Throttled in a safe state (safe_degrade: a trip, the start-up hold; or the controller down) counts
    whole. A throttled stretch that goes on after the safe state ends counts only while the cap
    could not yet be back: while a cap climbing at `climb_w_per_s` (the cap loop's slew limit,
    site.loops.power_cap.rate_up_per_s, controller.core.loops) from the last safe tick's cap, starting
    at that tick's end, would still be below what the workload wants (at most `cap_max_w`). Starting
    at that tick's end is exact when a tick shows the cap commanded the tick before, and leaves at
    most one tick of leeway when it already shows its own command. From the first
    tick the climb would have got there, the rest of the stretch is control's (the cap loop held
    power back for its own reasons), even if the workload then asks for more. The stretch ends, and
    nothing more is carried, at the first tick not throttled.

    Before, the whole stretch counted as the safe state's to its end: a long throttle after a trip
    would have hidden there.
    """

    def __init__(self, climb_w_per_s: float, cap_max_w: float, safe_at_start: bool = True):
        if not climb_w_per_s > 0:
            raise ValueError(f"climb_w_per_s must be > 0, not {climb_w_per_s!r}")
        self.climb_w_per_s = climb_w_per_s
        self.cap_max_w = cap_max_w
        self.seconds = 0.0
        # Carrying a stretch that began in a safe state (a run starts in the start-up hold), and the
        # (time, cap) the climb starts from: the end of the last safe tick and its cap; None before
        # the first tick of a run that starts outside a safe state's tick (its cap at that tick).
        self._carrying = safe_at_start
        self._climb_from: tuple[float, float] | None = None

    def add(self, t: float, dt: float, safe: bool, throttled: bool, cap_w: float, wanted_w: float) -> None:
        """One tick [t, t + dt): in a safe state or not, throttled or not, the effective cap and what
        the workload wanted (W)."""
        if safe:
            if throttled:
                self.seconds += dt
            self._carrying = True
            self._climb_from = (t + dt, cap_w)
            return
        if not throttled:
            self._carrying = False
            self._climb_from = None
            return
        if not self._carrying:
            return
        if self._climb_from is None:
            self._climb_from = (t, cap_w)
        t0, cap0 = self._climb_from
        if cap0 + self.climb_w_per_s * (t - t0) < min(wanted_w, self.cap_max_w):
            self.seconds += dt
        else:
            self._carrying = False

    def restart_count(self) -> None:
        """Count from zero from here (a warm-up ends); what is being carried goes on."""
        self.seconds = 0.0


def monthly(trace: Trace) -> list[dict]:
    """Energies per calendar month (kWh), summed over the trace intervals that start in it."""
    rows: dict[int, dict] = {}
    for i, t in enumerate(trace.t_s):
        m = month_of(t)
        row = rows.setdefault(m, {"month": MONTH_NAMES[m], **{k: 0.0 for k in ENERGY_KEYS}})
        for k in ENERGY_KEYS:
            row[k] += trace.energy_kwh[k][i]
    return [rows[m] for m in sorted(rows)]


def demand_met_share(delivered_kwh: float, boiler_kwh: float) -> float:
    total = delivered_kwh + boiler_kwh
    return delivered_kwh / total if total > 0 else math.nan


def sim_time_label(t_s: float) -> str:
    """Simulated time as a date: scenarios count seconds from 1 January 00:00 of a non-leap year
    (simulations.scenarios: start_s is the time of year), shown without a year and marked UTC."""
    t = _dt.datetime(2001, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=t_s)
    return t.strftime("%d %b %H:%M UTC")

