"""What a plan is made from: per-slot forecasts, the batch queue, and the site's thermal limits.

The forecasts are the envelope's (controller.core.envelope: demand and ambient from the same hour of
the last 7 days) resampled to 15-minute slots; the IT power the site runs anyway (idle power and
interactive services, which are never held) comes the same way from history; the queue comes from
the workload manager (pending and running batch jobs, their remaining work and deadlines).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.envelope import EnvelopeLimits, HourForecast, limits_from_site
from controller.core.plan import HORIZON_SLOTS, SLOT_S
from controller.site.models import SiteConfig


@dataclass(frozen=True)
class QueuedJob:
    """A batch job as the planner sees it. `remaining_wh`: the IT energy it still needs above idle."""

    job_id: str
    remaining_wh: float
    deadline_s: float
    max_w: float                 # its power at full width (nodes x per-node power above idle)
    preemptible: bool = True
    running: bool = False        # a running job that is not preemptible must keep running


@dataclass(frozen=True)
class PlanInputs:
    now_s: float
    tank_soc: float | None
    demand_w: tuple[float, ...]          # per slot
    ambient_c: tuple[float, ...]         # per slot
    fixed_it_w: tuple[float, ...]        # per slot: idle + interactive, never held
    batch_max_w: tuple[float, ...]       # per slot: the most batch power the free nodes can take
    queue: tuple[QueuedJob, ...]
    limits: EnvelopeLimits
    slot_s: float = SLOT_S
    # Deadlines are planned this much early: the workload manager's own guard has room left.
    deadline_guard_s: float = 3600.0
    # Value of a kWh left in the tank at the horizon's end, relative to a kWh of boiler avoided now
    # (the next plan will use it; below 1 because it may be lost or not needed).
    terminal_tank_value: float = 0.5
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def slots(self) -> int:
        return len(self.demand_w)

    def slot_start(self, i: int) -> float:
        return self.first_slot_s + i * self.slot_s

    @property
    def first_slot_s(self) -> float:
        return (self.now_s // self.slot_s) * self.slot_s


def slots_from_hours(hourly: list[HourForecast], slots: int = HORIZON_SLOTS,
                     slot_s: float = SLOT_S) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Hourly forecasts (the envelope's) to per-slot demand and ambient (each slot takes its hour)."""
    per_hour = max(int(round(3600.0 / slot_s)), 1)
    dem, amb = [], []
    for i in range(slots):
        h = hourly[min(i // per_hour, len(hourly) - 1)]
        dem.append(h.demand_w)
        amb.append(h.ambient_c)
    return tuple(dem), tuple(amb)


def site_limits(site: SiteConfig) -> EnvelopeLimits:
    return limits_from_site(site)
