"""The value of heat at this site (0: none wanted, 1: all of it wanted): what the Slurm node weights
follow (drivers/slurm/decide.node_weight), so that the scheduler puts flexible work where the heat
replaces boiler fuel rather than where it is dumped.

Pure: from the plan when there is one (its slots over the next hours), else from the present state.
Per plan slot: boiler planned (demand the recovered heat does not meet) -> 1; dump planned (heat
nobody takes) -> 0; otherwise 0.5 (the heat is used, by the consumer or the tank, but more of it
would not replace any fuel). Without a plan: the plant dumping (bypass mode, or safe_degrade, where
the heat goes to the dry cooler, whatever the boiler does) -> 0; the boiler firing -> 1; the tank
full with the consumer offline -> 0; demand beyond the recovered heat (normal mode, consumer online) -> 0.75 (wanted, the boiler not
yet firing); the tank charging with room left -> 0.25 (stored, used later, maybe).

A few levels only, and the plan's mean rounded to 0.05: every change rewrites the node weights in
Slurm (an audited action), so the value must not follow the tank's SoC degree by degree.
"""

from __future__ import annotations

from controller.core.plan import Plan

# Over how many hours of the plan the value is taken: about a batch job's length (the workload
# profiles' jobs run 1-8 h), so a job placed now runs while the heat is still wanted.
VALUE_HOURS = 4.0
# A slot's boiler or dump counts above this (W): the solver's own threshold (solver.SIGNIFICANT_KW).
SIGNIFICANT_W = 50.0
# The tank counts as full at this state of charge (the mode machine's tank_full_soc default).
TANK_FULL_SOC = 0.95


def slot_value(boiler_w: float, dump_w: float) -> float:
    if boiler_w > SIGNIFICANT_W:
        return 1.0
    if dump_w > SIGNIFICANT_W:
        return 0.0
    return 0.5


def from_plan(plan: Plan | None, now: float, hours: float = VALUE_HOURS) -> float | None:
    """The mean slot value over the plan's slots from `now` for `hours`; None when the plan has no
    slot at `now` (no plan: the caller uses the present state)."""
    if plan is None or plan.slot_at(now) is None:
        return None
    end = now + hours * 3600.0
    vals = [slot_value(s.boiler_w, s.dump_w) for s in plan.slots
            if s.start_s + plan.slot_s > now and s.start_s < end]
    return round(20.0 * sum(vals) / len(vals)) / 20.0 if vals else None


def from_state(mode: str, boiler_on: bool, consumer_online: bool, tank_soc: float | None,
               tank_full_soc: float = TANK_FULL_SOC) -> float | None:
    """The value from the present state (module docstring); None before the plant is known."""
    # Dumping first: a plant in bypass or safe_degrade sends more heat to the dry cooler even when
    # its boiler runs (the start-up safe state turns the boiler on and holds it for its minimum run
    # time), so more work there replaces no fuel.
    if mode in ("bypass", "safe_degrade"):
        return 0.0
    if boiler_on:
        return 1.0
    if not consumer_online:
        if tank_soc is None:
            return None
        return 0.0 if tank_soc >= tank_full_soc else 0.25
    if mode == "buffer_charging":
        return 0.25
    return 0.75
