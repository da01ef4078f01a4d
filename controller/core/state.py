"""The controller's state between ticks: everything the step needs to remember, immutable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from controller.core.heartbeat import NOT_JUDGED, HeartbeatCheck
from controller.core.loops import LoopState
from controller.core.metering import EnergyCounters
from controller.core.modes import Mode
from controller.core.trips import TripState
from controller.core.validation import PointHistory

STARTUP_CAUSE = "start-up: holding the safe state until a complete, valid snapshot"


@dataclass(frozen=True)
class Override:
    value: float
    until: float
    reason: str
    user: str
    set_at: float


@dataclass(frozen=True)
class ControllerState:
    tick: int = 0
    last_now: float | None = None
    # True once a complete, valid snapshot has been seen (every critical reading good).
    started: bool = False
    mode: Mode = Mode.SAFE_DEGRADE
    mode_since: float = 0.0
    mode_cause: str = STARTUP_CAUSE
    # Operator hold: automatic transitions suspended (except to safe_degrade).
    held: bool = False
    trips: Mapping[str, TripState] = field(default_factory=dict)
    overrides: Mapping[str, Override] = field(default_factory=dict)
    history: Mapping[str, PointHistory] = field(default_factory=dict)
    loops: Mapping[str, LoopState] = field(default_factory=dict)
    # Last applied actuator values (point -> value).
    outputs: Mapping[str, float] = field(default_factory=dict)
    energy: EnergyCounters = EnergyCounters()
    heartbeat: int = 0
    degrade_causes: tuple[str, ...] = ()
    # When the last safe_degrade cause went away (None while one is present).
    causes_clear_since: float | None = None
    tank_soc: float | None = None
    boiler_on: bool = False
    # When the automatic boiler decision last changed (for the minimum time between switches).
    boiler_since: float = float("-inf")
    # Whether the heartbeat reads back counting (controller.core.heartbeat).
    heartbeat_check: HeartbeatCheck = NOT_JUDGED
    # The BMS says it runs on its own fallback (its bms_fallback_active point, good and 1).
    bms_fallback: bool = False
    # The site cap the BMCs held before the start-up safe state capped them (W; None: not read):
    # where the cap loop may start bumplessly (Controller._start_cap). Set by the daemon at start.
    cap_before_start: float | None = None
    # The start-up hold goes on because the BMS said it ran on its fallback when the first
    # complete, valid snapshot came: the first complete one without it ends the hold.
    startup_fallback: bool = False
    # The power cap loop's target last tick (degC; None: none yet): a plan's slot that lowers the
    # target moves it there at a bounded rate (controller.core.sequences.power_cap.PowerCap.target).
    cap_target_c: float | None = None
