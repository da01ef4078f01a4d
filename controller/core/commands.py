"""What the step asks of the actuators, and who decided each value."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class OutputSource(enum.Enum):
    """Who drives an actuator this tick, in priority order: a trip beats everything."""

    TRIP = "trip"
    SAFE_DEGRADE = "safe_degrade"
    OVERRIDE = "override"
    AUTO = "auto"
    # Before the first complete, valid snapshot: the configured safe state is held.
    STARTUP = "startup"


@dataclass(frozen=True, slots=True)
class Output:
    value: float
    source: OutputSource
    # The trip, override reason or mode that chose this value.
    why: str = ""
