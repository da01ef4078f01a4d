"""The daemon's workload task: after each step, turn the plant's heat situation into Slurm actions.

Runs beside the tick, never in it: `after_step` only starts a task (at most one in flight, at most one
per `every_s`) and returns at once; the task reads Slurm, decides (drivers/slurm/decide.py, pure) and
acts, each call bounded by the driver's timeout. Every action is audited like an operator's (kind
"slurm_action", user "heatctl", with its reason); Slurm going away and coming back are audited once
each ("workload_outage" / "workload_restored"), and `down` tells the alarms and status. Whatever
Slurm does, the trips and the power cap of the step keep the plant safe: nothing here feeds back
into the step.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Callable

from controller.daemon.audit import AuditEvent
from drivers.slurm.decide import Memory, Situation, Thresholds, decide
from drivers.slurm.driver import SlurmDriver

log = logging.getLogger("heatctl.workload")


class WorkloadTask:
    def __init__(self, driver: SlurmDriver, audit: Callable[[list[AuditEvent]], None],
                 wall: Callable[[], float], *, every_s: float = 5.0,
                 thresholds: Thresholds = Thresholds()):
        self.driver = driver
        self.audit = audit
        self.wall = wall
        self.every_s = every_s
        self.thresholds = thresholds
        self.memory = Memory()
        self.down = False
        self.last_actions: list[str] = []
        # The last read of Slurm (drivers.slurm.model.Snapshot), for the plan's queue; None before one.
        self.last_snapshot: Any = None
        self.runs_total = 0
        self._task: asyncio.Task | None = None
        self._due = -math.inf

    def after_step(self, situation: Situation, now: float) -> None:
        """Start one round if due and none is in flight. Never waits, never raises."""
        if self._task is not None and not self._task.done():
            return
        if now < self._due:
            return
        self._due = now + self.every_s
        self._task = asyncio.get_running_loop().create_task(self._round(situation))

    async def wait_idle(self) -> None:
        if self._task is not None:
            await asyncio.wait([self._task])

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])

    async def _round(self, s: Situation) -> None:
        try:
            await self.run_once(s)
        except Exception as exc:  # noqa: BLE001 - a bug here must never reach the tick
            log.exception("workload round failed: %s", exc)

    async def run_once(self, s: Situation) -> None:
        self.runs_total += 1
        snap = await self.driver.snapshot()
        if snap is None:
            self._set_down(True)
            return
        self._set_down(False)
        self.last_snapshot = snap
        actions, memory = decide(s, snap, self.memory, self.thresholds)
        if not actions:
            self.memory = memory
            return
        results = await self.driver.apply(actions)
        done = {id(r.action) for r in results if r.ok}
        rows = []
        for r in results:
            a = r.action
            msg = f"slurm {a.describe()}" + ("" if r.ok else f": failed: {r.error}")
            rows.append(AuditEvent(self.wall(), "slurm_action", msg, user="heatctl", reason=a.reason,
                                   cause=None if r.ok else r.error,
                                   fields={"action": a.kind, "target": a.target, "value": a.value, "ok": r.ok}))
        self.last_actions = [row.message for row in rows]
        self.audit(rows)
        # A hold that failed (or was not tried) is not ours; a release that failed still is.
        held = set(memory.held)
        for a in actions:
            if id(a) in done:
                continue
            if a.kind == "hold":
                held.discard(int(a.target))
            elif a.kind == "release":
                held.add(int(a.target))
        self.memory = Memory(shed=memory.shed, held=frozenset(held))
        if len(results) < len(actions) and self.driver.health().tried and not self.driver.health().reachable:
            self._set_down(True)

    def _set_down(self, down: bool) -> None:
        if down == self.down:
            return
        self.down = down
        h = self.driver.health()
        if down:
            self.audit([AuditEvent(self.wall(), "workload_outage",
                                   f"Slurm unreachable: {h.last_error}; the power cap keeps the plant safe",
                                   cause=h.last_error, fields={"driver": "slurm"})])
        else:
            self.audit([AuditEvent(self.wall(), "workload_restored", "Slurm reachable again",
                                   fields={"driver": "slurm"})])

    def status(self) -> dict[str, Any]:
        h = self.driver.health()
        return {"reachable": h.reachable, "down": self.down, "last_error": h.last_error,
                "shed": self.memory.shed, "held_jobs": sorted(self.memory.held),
                "last_actions": self.last_actions, "errors_total": h.errors_total,
                "actions_total": h.actions_total, "actions_failed_total": h.actions_failed_total}


def build_workload(site: Any, audit: Callable[[list[AuditEvent]], None],
                   wall: Callable[[], float]) -> WorkloadTask | None:
    """The workload task of a site with a `workload:` section, else None (no Slurm lever)."""
    w = getattr(site, "workload", None)
    if w is None:
        return None
    from drivers.slurm.model import SlurmConfig
    driver = SlurmDriver(SlurmConfig(nodes=tuple(w.nodes), flexible_partition=w.flexible_partition,
                                     flexible_qos=w.flexible_qos, timeout_s=w.timeout_s,
                                     slurm_conf=w.slurm_conf), clock=wall)
    return WorkloadTask(driver, audit, wall, every_s=w.every_s,
                        thresholds=Thresholds(shed_above_soc=w.shed_above_soc,
                                              resume_below_soc=w.resume_below_soc,
                                              requeue_above_soc=w.requeue_above_soc,
                                              manage_jobs=not w.shared_partition))


def situation_from(site: Any, result: Any, wall_s: float, plan: Any = None) -> Situation:
    """The heat situation from a step's result: the tank's SoC and the consumer_available reading
    (a bad or missing reading counts as offline: the conservative side); the value of heat (node
    weights) from `plan` (controller.core.plan.Plan, the keeper's plan in force) over the next hours,
    else from the present state (controller.planning.value); the plan's current slot's batch budget."""
    from controller.planning import value
    online = consumer_online(site, result)
    st = result.state
    hv = value.from_plan(plan, wall_s)
    if hv is None:
        hv = value.from_state(st.mode.value, st.boiler_on, online, st.tank_soc, site.modes.tank_full_soc)
    slot = plan.slot_at(wall_s) if plan is not None else None
    return Situation(now_s=wall_s, consumer_online=online, tank_soc=st.tank_soc, heat_value=hv,
                     plan_batch_budget_w=None if slot is None else slot.batch_budget_w,
                     plan_reason="" if slot is None else slot.reason)


def consumer_online(site: Any, result: Any) -> bool:
    """The consumer_available reading says it takes heat; a bad or missing reading counts as offline
    (the conservative side)."""
    from controller.site.roles import Role
    for name in site.points_with_role(Role.CONSUMER_AVAILABLE):
        c = result.checked.get(name)
        if c is not None and c.good and c.value is not None and c.value >= 0.5:
            return True
    return False
