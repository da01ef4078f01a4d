"""Events the step emits: transitions, trips, refusals. The daemon audits them; tests assert them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    ts: float
    # A short, stable kind: mode_changed, trip, trip_cleared, trip_acked, request_accepted,
    # request_refused, override_set, override_expired, reading_bad, reading_recovered.
    kind: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
