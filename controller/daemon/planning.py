"""The daemon's planner task: the 24-hour plan made on the site, off the tick, every re-plan period.

`after_step` (called once per completed tick, after the workload task) starts a solve when one is
due (every `planning.replan_every_s`, 15 min by default, or sooner, at most once a minute, when the
batch queue differs from the one the plan was made with) and none is in flight, and returns at once.
The solve runs in a worker thread that waits on a child process (controller.planning.worker: HiGHS's
own time limit, and the process killed after `kill_after_s`), so neither a slow solver nor a hung
one can hold the tick. Its result goes to the PlanKeeper (controller.planning.keeper): a failed,
infeasible, killed or late solve keeps the last valid plan for its remaining slots and then the
rules; each of those is an audited event and a metric.

`current(wall)` (called before each step) is the keeper's plan in force: its current slot is the
step's input (controller.core.plan.adjustments; only the slot's policy reaches the loops), its batch
budget and the value of heat over the next hours go to the Slurm decision (workload.situation_from).

What the plan is made from (`inputs_from`), on a site:
- demand and ambient per slot: the capacity envelope's hourly forecast, made afresh at each solve
  (controller.core.envelope.forecast_from_history: the last 7 days' hour-of-day means, else the
  present readings), each slot taking its hour; the current slot takes the present demand, and none
  while the consumer is offline (a nowcast: the forecast knows the usual day, the reading knows now);
- the IT power that runs anyway (idle and interactive): the measured IT power less the running
  flexible jobs' estimated power, held for the horizon (a persistence forecast), at least the
  site's power floor;
- the batch power the free nodes can take: the site's Slurm nodes that are up and not drained by
  an operator, each at (server_max_w - the floor's share per server);
- the queue: the flexible partition's pending and running jobs from the workload task's last read
  of Slurm, each with its nodes x per-node power, its remaining time limit as its work (the
  scheduler's own bound: a job may finish sooner, never later) and Slurm's `--deadline` (none: a
  day after its submission, DEFAULT_DEADLINE_S).
Times are wall-clock (s since the epoch), the same clock as Slurm's deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from controller.core.envelope import EnvelopeLimits, HourForecast, limits_from_site
from controller.core.plan import HORIZON_SLOTS, SLOT_S, Plan
from controller.daemon.audit import AuditEvent
from controller.planning.inputs import PlanInputs, QueuedJob, slots_from_hours
from controller.planning.keeper import PlanKeeper
from controller.planning.solver import SolveResult
from controller.planning.worker import solve_in_subprocess

log = logging.getLogger("heatctl.planning")

# A job without a Slurm time limit is planned as this long (s); one without a deadline as due this
# long after its submission (the longest deadline of the batch profiles, 4-24 h): a job
# that never got a deadline must not wait forever for hours that want its heat.
DEFAULT_JOB_S = 3600.0
DEFAULT_DEADLINE_S = 86400.0
# A changed batch queue brings the next solve forward, but not sooner than this after the last (s):
# a burst of submissions is planned once, not once each.
QUEUE_REPLAN_S = 60.0

Solver = Callable[[PlanInputs, float, float], SolveResult]


def _default_solver(inputs: PlanInputs, time_limit_s: float, kill_after_s: float) -> SolveResult:
    return solve_in_subprocess(inputs, time_limit_s, kill_after_s)


@dataclass(frozen=True)
class SiteShape:
    """What the plan needs of the site's hardware, from its config."""

    limits: EnvelopeLimits
    nodes: tuple[str, ...]        # the site's Slurm nodes (empty: no Slurm lever)
    node_w: float                 # one node's power above idle at full load (W)

    @classmethod
    def of(cls, site: Any) -> "SiteShape | None":
        limits = limits_from_site(site)
        if limits is None:
            return None
        servers = site.plant.servers
        node_w = max(site.plant.server_max_w - site.power.floor_w / servers, 0.0)
        nodes = tuple(site.workload.nodes) if site.workload is not None else ()
        return cls(limits, nodes, node_w)


def inputs_from(shape: SiteShape, wall: float, tank_soc: float | None, it_w: float | None,
                forecast: list[HourForecast], snapshot: Any, deadline_guard_s: float,
                demand_now_w: float | None = None) -> PlanInputs:
    """The plan's inputs at `wall` (module docstring). `snapshot`: drivers.slurm.model.Snapshot or
    None (no Slurm, or not read yet: no queue, no free nodes). `demand_now_w`: the heat the consumer
    takes now (0 when offline; None: unknown, the forecast stands)."""
    first = (wall // SLOT_S) * SLOT_S
    off = int((first - (wall // 3600.0) * 3600.0) // SLOT_S)
    dem, amb = slots_from_hours(forecast, HORIZON_SLOTS + off)
    dem, amb = dem[off:], amb[off:]
    if demand_now_w is not None and math.isfinite(demand_now_w):
        dem = (max(demand_now_w, 0.0),) + dem[1:]
    L = shape.limits
    queue: list[QueuedJob] = []
    running_w = 0.0
    free_nodes = 0
    if snapshot is not None:
        free_nodes = sum(1 for n in snapshot.nodes.values()
                         if n.state not in ("down", "unknown") and (not n.drain or n.reason.startswith("heatctl:")))
        for j in snapshot.jobs:
            width = min(j.nodes, max(len(shape.nodes), 1)) * shape.node_w
            limit = j.time_limit_s if j.time_limit_s is not None else DEFAULT_JOB_S
            running = j.state == "RUNNING"
            left_s = limit - max(wall - (j.start_ts or wall), 0.0) if running else limit
            if running:
                running_w += width
            queue.append(QueuedJob(str(j.job_id), max(left_s, 0.0) / 3600.0 * width,
                                   j.deadline_ts if j.deadline_ts else (j.submit_ts or wall) + DEFAULT_DEADLINE_S,
                                   width, preemptible=j.requeue, running=running))
    fixed = max((it_w if it_w is not None and math.isfinite(it_w) else L.it_floor_w) - running_w, L.it_floor_w)
    bmax = max(min(free_nodes * shape.node_w, L.it_max_w - fixed), 0.0)
    n = len(dem)
    return PlanInputs(wall, tank_soc, dem, amb, (fixed,) * n, (bmax,) * n, tuple(queue), L,
                      deadline_guard_s=deadline_guard_s)


def actual_batch_w(shape: SiteShape, snapshot: Any) -> float | None:
    """The flexible jobs' power now, estimated from Slurm's allocation (nodes x per-node power):
    the plant meters the servers, not the jobs. None without a read of Slurm."""
    if snapshot is None:
        return None
    return sum(min(j.nodes, max(len(shape.nodes), 1)) * shape.node_w for j in snapshot.jobs if j.state == "RUNNING")


@dataclass
class SolveRecord:
    at_s: float
    status: str           # "optimal", or why there is no plan
    solve_s: float
    accepted: bool


@dataclass
class PlannerTask:
    shape: SiteShape
    audit: Callable[[list[AuditEvent]], None]
    wall: Callable[[], float]
    every_s: float = SLOT_S
    time_limit_s: float = 0.5
    kill_after_s: float = 5.0
    deadline_guard_s: float = 3600.0
    solver: Solver = _default_solver
    keeper: PlanKeeper = field(default_factory=PlanKeeper)
    last: SolveRecord | None = None
    solves_total: int = 0
    in_force: Plan | None = None
    _task: asyncio.Task | None = None
    _due: float = -math.inf
    _started: float = -math.inf
    # The batch jobs the plan in the making or in force was made with: a queue that differs (a job
    # submitted or gone) brings the next solve forward, at most every QUEUE_REPLAN_S.
    _planned_jobs: frozenset = frozenset()

    def current(self, wall: float) -> Plan | None:
        """The plan in force at `wall` (None: today's rules); the keeper's fallback is audited."""
        plan, events = self.keeper.current(wall)
        self._audit_events(events)
        self.in_force = plan
        return plan

    def due(self, wall: float, snapshot: Any = None) -> bool:
        if self._task is not None and not self._task.done():
            return False
        if wall >= self._due:
            return True
        return (snapshot is not None and wall >= self._started + min(QUEUE_REPLAN_S, self.every_s)
                and frozenset(j.job_id for j in snapshot.jobs) != self._planned_jobs)

    def after_step(self, wall: float, tank_soc: float | None, it_w: float | None,
                   forecast: list[HourForecast] | None, snapshot: Any, demand_now_w: float | None = None) -> None:
        """Start a solve if one is due and none is in flight. Never waits."""
        if not self.due(wall, snapshot) or not forecast:
            return
        self._due = wall + self.every_s
        self._started = wall
        self._planned_jobs = frozenset(j.job_id for j in snapshot.jobs) if snapshot is not None else frozenset()
        inputs = inputs_from(self.shape, wall, tank_soc, it_w, forecast, snapshot, self.deadline_guard_s,
                             demand_now_w)
        self._task = asyncio.get_running_loop().create_task(self._solve(inputs))

    async def _solve(self, inputs: PlanInputs) -> None:
        try:
            result = await asyncio.to_thread(self.solver, inputs, self.time_limit_s, self.kill_after_s)
        except Exception as exc:  # noqa: BLE001 - a failure here is a failed solve, never a crash
            result = SolveResult(None, f"planner raised {type(exc).__name__}: {exc}", 0.0, inputs.now_s)
        now = self.wall()
        self.solves_total += 1
        events = self.keeper.offer(result, now)
        accepted = result.plan is not None and self.keeper.plan is result.plan
        self.last = SolveRecord(now, result.reason, result.solve_s, accepted)
        if not accepted:
            log.warning("plan solve not used: %s", self.keeper.last_failure or result.reason)
        self._audit_events(events)

    def _audit_events(self, events) -> None:
        if events:
            self.audit([AuditEvent(self.wall(), e.kind, e.message, cause=e.fields.get("why"),
                                   fields={k: v for k, v in e.fields.items()}) for e in events])

    async def wait_idle(self) -> None:
        if self._task is not None:
            await asyncio.wait([self._task])

    async def close(self) -> None:
        # The worker thread cannot be cancelled; it ends by itself within kill_after_s.
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])

    def view(self, wall: float) -> dict[str, Any]:
        """For the API op `plan`, status and metrics."""
        plan = self.keeper.plan
        in_force = self.in_force is not None and self.in_force.slot_at(wall) is not None
        c = self.keeper.counters
        last = self.last
        if in_force:
            note = f"in force, made {wall - plan.made_at_s:.0f} s ago"
        elif plan is not None:
            note = f"the last valid plan ran out: today's rules ({self.keeper.last_failure or 'no newer plan'})"
        elif last is not None:
            note = f"no valid plan yet ({last.status}): today's rules"
        else:
            note = "no plan solved yet: today's rules"
        return {
            "plan": plan.as_dict() if plan is not None else None,
            "in_force": in_force,
            "fallback": "plan" if in_force else "rules",
            "age_s": (wall - plan.made_at_s) if plan is not None else None,
            "last_solve": None if last is None else {"at_s": last.at_s, "status": last.status,
                                                     "solve_s": last.solve_s, "accepted": last.accepted},
            "last_failure": self.keeper.last_failure,
            "solves_total": self.solves_total,
            "counters": {"accepted": c.accepted, "failed": c.failed, "late": c.late, "fallbacks": c.fallbacks},
            "every_s": self.every_s,
            "next_solve_in_s": max(self._due - wall, 0.0) if math.isfinite(self._due) else 0.0,
            "note": note,
        }


def build_planner(site: Any, audit: Callable[[list[AuditEvent]], None], wall: Callable[[], float],
                  solver: Solver | None = None) -> PlannerTask | None:
    """The planner of a site that plans (planning.enabled: "on", or "auto" with a workload: section)
    and describes its plant (plant:, from which the plan's limits come); else None: today's rules."""
    p = site.planning
    mode = getattr(p, "enabled", "auto")
    if mode == "off" or (mode == "auto" and getattr(site, "workload", None) is None):
        return None
    shape = SiteShape.of(site)
    if shape is None:
        log.warning("planning is on but %s has no plant: section; the plan is off (today's rules)", site.site.name)
        return None
    return PlannerTask(shape, audit, wall, every_s=p.replan_every_s, time_limit_s=p.solve_time_limit_s,
                       kill_after_s=p.kill_after_s, deadline_guard_s=p.deadline_guard_s,
                       solver=solver or _default_solver, keeper=PlanKeeper())


def rebuilt(old: PlannerTask | None, site: Any, audit: Callable[[list[AuditEvent]], None],
            wall: Callable[[], float]) -> PlannerTask | None:
    """The planner for a reloaded config: its new settings and site, the old keeper (the plan in
    force stays in force, and its counters go on), and a solve at the next tick. (The Slurm task is
    built at start-up only: a workload: section added by a reload is not planned for until then.)"""
    new = build_planner(site, audit, wall, solver=old.solver if old is not None else None)
    if new is not None and old is not None:
        new.keeper, new.last, new.solves_total, new.in_force = old.keeper, old.last, old.solves_total, old.in_force
    return new


def after_tick(planner: PlannerTask, daemon: Any, result: Any) -> None:
    """The daemon's hook after each completed tick: start a solve when due (from the envelope's
    forecast made now, the present demand, and the workload task's last read of Slurm) and record
    plan against actual."""
    wall = daemon.wall()
    flows = result.flows
    snap = daemon.workload.last_snapshot if daemon.workload is not None else None
    # With a Slurm lever, the first plan waits for the first read of Slurm: without its nodes and
    # queue the plan would see no room for batch work and hold it all.
    if planner.due(wall, snap) and (daemon.workload is None or snap is not None):
        from controller.daemon.workload import consumer_online
        from controller.site.roles import Role
        online = consumer_online(daemon.ctrl.site, result)
        planner.after_step(wall, result.state.tank_soc, flows.it_w if flows is not None else None,
                           daemon.forecast_now(result), snap,
                           daemon._role_value(result, Role.CONSUMER_DEMAND) if online else 0.0)
    observe = getattr(daemon.metrics, "observe_plan", None)
    if observe is not None:
        observe(plan_vs_actual(planner, wall, result.state.tank_soc, actual_batch_w(planner.shape, snap)))


def plan_vs_actual(planner: PlannerTask, wall: float, soc: float | None, batch_w: float | None) -> dict[str, Any]:
    """The figures of the plan-against-actual metrics (controller/daemon/metrics.py observe_plan)."""
    plan = planner.in_force
    slot = plan.slot_at(wall) if plan is not None else None
    last = planner.last
    c = planner.keeper.counters
    return {
        "in_force": slot is not None,
        "planned_soc": slot.tank_target_soc if slot is not None else None,
        "actual_soc": soc,
        "planned_batch_w": slot.batch_budget_w if slot is not None else None,
        "actual_batch_w": batch_w,
        "age_s": (wall - planner.keeper.plan.made_at_s) if planner.keeper.plan is not None else None,
        "solve_ok": None if last is None else last.accepted,
        "solve_s": None if last is None else last.solve_s,
        "accepted": c.accepted, "failed": c.failed, "late": c.late, "fallbacks": c.fallbacks,
    }
