"""Operator requests: inputs to the step, accepted or refused there with a reason, always audited."""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.modes import Mode


@dataclass(frozen=True)
class Request:
    reason: str
    user: str = "operator"
    # Chosen by whoever submits the request (the daemon numbers them); the step echoes it as
    # `fields["request_id"]` on every event it emits in answer, so answers are matched by id.
    request_id: int = 0


@dataclass(frozen=True)
class ModeRequest(Request):
    """Go to a mode now and hold it there (commissioning), if that is safe."""

    mode: Mode = Mode.NORMAL


@dataclass(frozen=True)
class HoldRequest(Request):
    """Stay in the current mode: no automatic transitions except to safe_degrade."""


@dataclass(frozen=True)
class ReleaseRequest(Request):
    """Hand mode selection back to the automatic transitions."""


@dataclass(frozen=True)
class OverrideRequest(Request):
    point: str = ""
    value: float = 0.0
    duration_s: float = 0.0


@dataclass(frozen=True)
class ClearOverrideRequest(Request):
    point: str = ""


@dataclass(frozen=True)
class AckTripRequest(Request):
    trip: str = ""


@dataclass(frozen=True)
class TripTestRequest(Request):
    """Make the step see `trip`'s condition for one tick, as an engineer proves trips on site."""

    trip: str = ""
