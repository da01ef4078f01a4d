"""Operating modes, their transition table, and the state machine that applies it.

The table below is the single place where transitions are defined; the mode diagram in the README
and docs/modes.md is generated from it (`heatctl modes --mermaid`). Guards are pure predicates over a
`ModeContext` built by the step each tick. A synchronous `transitions.Machine` applies the table
(STYLE.md: AsyncMachine would cancel callbacks; `auto_transitions=False` so that no generated
`to_<mode>()` can skip a guard). The machine is built once per config and holds no state between
steps: the step sets the model's mode from its input state before firing anything, so the same
inputs always give the same outputs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

from transitions import Machine


class Mode(enum.Enum):
    NORMAL = "normal"
    BUFFER_CHARGING = "buffer_charging"
    BYPASS = "bypass"
    SAFE_DEGRADE = "safe_degrade"


@dataclass(frozen=True)
class ModeContext:
    """What the guards look at, computed by the step from validated readings."""

    # Heat available from the IT loop minus what the consumer wants (W); None if not measurable.
    surplus_w: float | None
    tank_soc: float | None
    # Why the plant must be in safe_degrade now (empty: no reason).
    degrade_causes: tuple[str, ...]
    # Seconds since the last safe_degrade cause went away (None: a cause is present).
    causes_clear_for_s: float | None
    latched_trips: tuple[str, ...]
    # Seconds since the last mode change, for the minimum dwell of automatic transitions.
    in_mode_for_s: float
    # Thresholds, from config.modes.
    surplus_enter_w: float
    surplus_exit_w: float
    tank_full_soc: float
    tank_resume_soc: float
    min_dwell_s: float
    exit_dwell_s: float
    # True while the first complete, valid snapshot has not been seen yet.
    starting: bool = False


# --- guards: pure predicates ------------------------------------------------------------------

def dwell_done(c: ModeContext) -> bool:
    return c.in_mode_for_s >= c.min_dwell_s


def surplus_high(c: ModeContext) -> bool:
    return c.surplus_w is not None and c.surplus_w > c.surplus_enter_w


def surplus_low(c: ModeContext) -> bool:
    return c.surplus_w is not None and c.surplus_w < c.surplus_exit_w


def tank_full(c: ModeContext) -> bool:
    return c.tank_soc is not None and c.tank_soc >= c.tank_full_soc


def tank_has_room(c: ModeContext) -> bool:
    return c.tank_soc is not None and c.tank_soc < c.tank_resume_soc


def must_degrade(c: ModeContext) -> bool:
    return bool(c.degrade_causes)


def may_recover(c: ModeContext) -> bool:
    if c.degrade_causes or c.latched_trips:
        return False
    if c.starting:
        return True  # start-up is not a fault: the first valid snapshot is enough
    return c.causes_clear_for_s is not None and c.causes_clear_for_s >= c.exit_dwell_s


@dataclass(frozen=True)
class Transition:
    trigger: str
    source: Mode
    dest: Mode
    guards: tuple[Callable[[ModeContext], bool], ...]
    # The cause recorded in the mode_changed event.
    cause: str


N, B, P, S = Mode.NORMAL, Mode.BUFFER_CHARGING, Mode.BYPASS, Mode.SAFE_DEGRADE

# Automatic transitions, tried in this order each tick. Safe_degrade first: it never waits.
AUTOMATIC: tuple[Transition, ...] = (
    Transition("degrade", N, S, (must_degrade,), "safe_degrade cause present"),
    Transition("degrade", B, S, (must_degrade,), "safe_degrade cause present"),
    Transition("degrade", P, S, (must_degrade,), "safe_degrade cause present"),
    Transition("recover", S, N, (may_recover,), "all causes gone for the exit dwell, trips acknowledged"),
    Transition("surplus", N, B, (dwell_done, surplus_high, lambda c: not tank_full(c)),
               "heat available beyond demand, tank has room"),
    Transition("no_sink", N, P, (dwell_done, surplus_high, tank_full),
               "heat available beyond demand, tank full"),
    Transition("deficit", B, N, (dwell_done, surplus_low), "demand exceeds available heat"),
    Transition("tank_full", B, P, (dwell_done, tank_full), "buffer tank full"),
    Transition("deficit", P, N, (dwell_done, surplus_low), "demand exceeds available heat"),
    Transition("tank_room", P, B, (dwell_done, tank_has_room, surplus_high),
               "tank has room again and heat is in surplus"),
)


def refusal_for_request(target: Mode, c: ModeContext) -> str | None:
    """Why an operator's request for `target` must be refused now, or None if it is safe."""
    if target is Mode.SAFE_DEGRADE:
        return None  # going to the safe state is always allowed
    if c.latched_trips:
        return f"trip latched: {', '.join(c.latched_trips)} (acknowledge after its condition clears)"
    if c.degrade_causes:
        return f"safe_degrade cause present: {'; '.join(c.degrade_causes)}"
    if c.starting:
        return "no complete, valid snapshot yet"
    if target is Mode.BUFFER_CHARGING and tank_full(c):
        return f"buffer tank full (state of charge {c.tank_soc:.2f} >= {c.tank_full_soc})"
    return None


class _Model:
    """The machine's model: holds the mode for the duration of one step, and the context."""

    def __init__(self) -> None:
        self.state = N.value
        self.ctx: ModeContext | None = None


class ModeMachine:
    """Applies the transition table. Build once per config; `next_mode` is a pure function."""

    def __init__(self) -> None:
        self._model = _Model()
        self._machine = Machine(
            model=self._model,
            states=[m.value for m in Mode],
            initial=S.value,
            auto_transitions=False,
            ignore_invalid_triggers=True,
        )
        self._by_source: dict[Mode, list[Transition]] = {m: [] for m in Mode}
        for t in AUTOMATIC:
            self._machine.add_transition(
                t.trigger, t.source.value, t.dest.value,
                conditions=[self._guard(g) for g in t.guards],
            )
            self._by_source[t.source].append(t)
        self._by_value = {m.value: self._by_source[m] for m in Mode}

    def _guard(self, fn: Callable[[ModeContext], bool]) -> Callable[[], bool]:
        model = self._model

        def check() -> bool:
            assert model.ctx is not None
            return fn(model.ctx)

        return check

    def next_mode(self, mode: Mode, ctx: ModeContext, held: bool) -> tuple[Mode, str | None]:
        """The mode after this tick's automatic transitions, and the cause if it changed.

        While held (commissioning), only the transition to safe_degrade is automatic.
        """
        self._model.state = mode._value_
        self._model.ctx = ctx
        # Keyed by the mode's value (a str), not the Enum: Enum hashing is Python code in 3.11.
        for t in self._by_value[mode._value_]:
            if held and t.dest is not S:
                continue
            # The guards are evaluated here first (cheap, pure); the machine then applies the
            # transition, re-checking the same guards as its conditions.
            if all(g(ctx) for g in t.guards):
                getattr(self._model, t.trigger)()
                new = Mode(self._model.state)
                if new is not mode:
                    return new, t.cause
        return mode, None


def mermaid_diagram() -> str:
    """The mode diagram as mermaid, generated from the transition table."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.value}: start-up (safe state until a valid snapshot)"]
    for t in AUTOMATIC:
        guard = " and ".join(g.__name__ if g.__name__ != "<lambda>" else "not tank_full" for g in t.guards)
        lines.append(f"    {t.source.value} --> {t.dest.value}: {t.trigger} [{guard}]")
    # A multi-line note (mermaid's `note ... end note`) keeps `heatctl modes` within 100 columns.
    lines += ["    note right of safe_degrade", "        operator may request any mode;",
              "        refused while a trip is latched or a cause is present", "    end note"]
    return "\n".join(lines)
