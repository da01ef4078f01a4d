"""The 24-hour plan as an input to the step, like a setpoint.

A plan is made off the tick (controller.planning) every 15 minutes: per slot, the tank's target state
of charge, the batch power budget (what the workload manager may release), and the site policy. The
step itself never solves anything: it reads the current slot through `adjustments(plan, now)`, a pure
function, and applies it as it applies a setpoint. The trips, safe_degrade and the power-cap loop
are untouched by a plan and always win (controller.core.step).

No plan (None), or a plan with no slot at `now`, means today's rules: `adjustments` returns None.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.site.models import Policy

SLOT_S = 900.0          # 15 minutes: the plan's resolution and the re-plan period
HORIZON_SLOTS = 96      # 24 hours

COMPUTE_FIRST, HEAT_FIRST = Policy.COMPUTE_FIRST.value, Policy.HEAT_FIRST.value


@dataclass(frozen=True)
class PlanSlot:
    start_s: float
    tank_target_soc: float      # where the plan expects the tank at the end of the slot (0..1)
    batch_budget_w: float       # the batch IT power the workload manager may run in the slot
    policy: str                 # "compute_first" or "heat_first"
    reason: str                 # why, in one line (shown by `heatctl plan`)
    # What the plan expects in the slot (W): for `heatctl plan` and plan-against-actual metrics.
    demand_w: float = 0.0
    it_w: float = 0.0
    boiler_w: float = 0.0
    dump_w: float = 0.0


@dataclass(frozen=True)
class Plan:
    made_at_s: float
    slots: tuple[PlanSlot, ...]
    solve_s: float = 0.0
    status: str = "optimal"
    slot_s: float = SLOT_S

    @property
    def end_s(self) -> float:
        return self.slots[-1].start_s + self.slot_s if self.slots else self.made_at_s

    def slot_at(self, now: float) -> PlanSlot | None:
        """The slot that holds `now`, or None before the first or after the last."""
        if not self.slots or now < self.slots[0].start_s:
            return None
        i = int((now - self.slots[0].start_s) // self.slot_s)
        return self.slots[i] if i < len(self.slots) else None

    def as_dict(self) -> dict:
        return {"made_at_s": self.made_at_s, "solve_s": self.solve_s, "status": self.status,
                "slot_s": self.slot_s, "slots": [s.__dict__ for s in self.slots]}


@dataclass(frozen=True)
class PlanAdjust:
    """What the step takes from the current slot: the policy, applied as the site's policy is (the
    loops' setpoints and margins). The batch budget goes to the workload manager, not to the plant;
    the tank target is what the plan expects, for plan-against-actual (the tank follows from the
    batch budget and the policy: the step's own modes charge and discharge it)."""

    policy: Policy
    batch_budget_w: float
    tank_target_soc: float
    slot_start_s: float


def adjustments(plan: Plan | None, now: float) -> PlanAdjust | None:
    """The current slot of `plan` as the step's adjustments; None: no plan here, today's rules."""
    slot = plan.slot_at(now) if plan is not None else None
    if slot is None:
        return None
    return PlanAdjust(Policy(slot.policy), max(slot.batch_budget_w, 0.0),
                      min(max(slot.tank_target_soc, 0.0), 1.0), slot.start_s)
