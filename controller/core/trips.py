"""Hard trip limits: evaluated every tick from validated readings, latched, and acknowledged.

This module knows nothing of modes, loops or overrides, and nothing can switch a trip off: the
step applies every latched trip's actions to the outputs after everything else has been decided.
A trip latches the tick its condition is seen and stays latched until its condition has cleared
and an operator has acknowledged it (in either order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from controller.site.models import SiteConfig, TripConfig
from controller.core.validation import Checked


@dataclass(frozen=True, slots=True)
class TripState:
    latched: bool = False
    # The condition holds this tick.
    active: bool = False
    acked: bool = False
    since: float | None = None
    cause: str = ""


NOT_TRIPPED = TripState()


def condition(name: str, trip: TripConfig, leak_points: tuple[str, ...], checked: Mapping[str, Checked],
              critical: tuple[str, ...], it_power_w: float | None) -> str | None:
    """The trip's condition now: a one-line cause if it holds, else None.

    A trip whose reading is bad cannot see its condition; the sensor_lost trip and safe_degrade
    cover that case, so a bad reading alone never fires a high/low trip.
    """
    if trip.kind in ("high", "low"):
        c = checked.get(trip.point or "")
        if c is None or not c.good or trip.limit is None:
            return None
        if trip.kind == "high" and c.value >= trip.limit:  # type: ignore[operator]
            return f"{trip.point} = {c.value:.2f} >= limit {trip.limit:g}"
        if trip.kind == "low" and c.value <= trip.limit:  # type: ignore[operator]
            return f"{trip.point} = {c.value:.2f} <= limit {trip.limit:g}"
        return None
    if trip.kind == "leak":
        wet = [n for n in leak_points
               if checked.get(n) is not None and checked[n].good and checked[n].value >= 0.5]  # type: ignore[operator]
        return f"leak detected by {', '.join(wet)}" if wet else None
    if trip.kind == "low_flow":
        c = checked.get(trip.point or "")
        if c is None or not c.good or trip.limit is None or it_power_w is None:
            return None
        if c.value < trip.limit and it_power_w > (trip.it_idle_w or 0.0):  # type: ignore[operator]
            return f"{trip.point} = {c.value:.2f} < {trip.limit:g} with IT power {it_power_w:.0f} W"
        return None
    if trip.kind == "sensor_lost":
        lost = [f"{n} ({checked[n].reason})" for n in critical
                if n in checked and not checked[n].good and checked[n].bad_for_s >= trip.grace_s]
        return f"critical reading bad: {', '.join(lost)}" if lost else None
    return None


def update(prev: TripState, cause: str | None, now: float) -> TripState:
    """Latch on the condition; unlatch once it has cleared and the trip was acknowledged."""
    if cause is not None:
        if prev.latched:
            return TripState(latched=True, active=True, acked=prev.acked, since=prev.since, cause=cause)
        return TripState(latched=True, active=True, acked=False, since=now, cause=cause)
    if prev.latched and prev.acked:
        return NOT_TRIPPED
    return TripState(latched=prev.latched, active=False, acked=prev.acked, since=prev.since, cause=prev.cause)


def trip_outputs(site: SiteConfig, states: Mapping[str, TripState]) -> dict[str, tuple[float, str]]:
    """Actuator -> (value, trip) for every latched trip; the trip listed first in the config wins."""
    out: dict[str, tuple[float, str]] = {}
    for name, trip in site.trips.items():
        st = states.get(name)
        if st is None or not st.latched:
            continue
        for point, value in trip.actions.items():
            out.setdefault(point, (value, name))
    return out
