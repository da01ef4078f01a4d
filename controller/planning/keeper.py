"""Which plan the step uses: the last valid one while it has slots left, then today's rules.

Pure: no clock (time comes in as `now`), no I/O. A solve that failed, was infeasible, or arrived
late (more than `late_after_s` after the time it was made for) is refused: the last valid plan stays
in force for its remaining slots; when it runs out the keeper returns None, which the step reads as
"no plan, today's rules". Each refusal and the fallback to the rules is an event (once, not per
tick), and the counters are the metrics (`heatctl_plan_*`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.events import Event
from controller.core.plan import SLOT_S, Plan
from controller.planning.solver import SolveResult


@dataclass
class PlanCounters:
    accepted: int = 0
    failed: int = 0          # solver failure, infeasible, time limit, killed
    late: int = 0
    fallbacks: int = 0       # times the last valid plan ran out and the rules took over


@dataclass
class PlanKeeper:
    late_after_s: float = SLOT_S
    plan: Plan | None = None
    counters: PlanCounters = field(default_factory=PlanCounters)
    on_rules: bool = True
    last_failure: str = ""

    def offer(self, result: SolveResult, now: float) -> list[Event]:
        """Take a solve's result at `now`. Returns the events it causes."""
        if result.plan is not None and now - result.made_for_s > self.late_after_s:
            self.counters.late += 1
            self.last_failure = f"plan late: made for {result.made_for_s:.0f}, arrived {now - result.made_for_s:.0f} s after"
            return [Event(now, "plan_refused", self.last_failure, {"why": "late"})]
        if result.plan is None:
            self.counters.failed += 1
            self.last_failure = result.reason
            keep = ("keeping the last valid plan until "
                    f"{self.plan.end_s:.0f}" if self.plan is not None and self.plan.end_s > now else "rules in force")
            return [Event(now, "plan_failed", f"plan solve failed ({result.reason}); {keep}",
                          {"why": result.reason, "solve_s": result.solve_s})]
        self.plan = result.plan
        self.counters.accepted += 1
        events = []
        if self.on_rules:
            events.append(Event(now, "plan_in_force", "a valid plan is in force", {"made_at_s": result.made_for_s}))
        self.on_rules = False
        return events

    def current(self, now: float) -> tuple[Plan | None, list[Event]]:
        """The plan the step should use at `now` (None: the rules), and an event on the fallback."""
        if self.plan is not None and self.plan.slot_at(now) is not None:
            return self.plan, []
        if self.on_rules:
            return None, []
        self.on_rules = True
        self.counters.fallbacks += 1
        why = self.last_failure or "no newer plan"
        return None, [Event(now, "plan_fallback", f"the last valid plan ran out ({why}): today's rules", {"why": why})]
