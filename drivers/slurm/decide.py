"""From the plant's heat situation (and the plan's slot, when there is one) to Slurm actions: PURE.

Conservative by design: the workload is shed *before* the power cap has to bind. The cap stays the
safety lever (the trips and the cap loop in controller.core always win, whatever Slurm does); this
only moves flexible batch work out of the hours the heat sink cannot take it.

Sink full = consumer offline and tank SoC at or above `shed_above_soc`: drain the site's nodes (a
reason naming heatctl and the cause) and hold the flexible pending jobs; at `requeue_above_soc` also
requeue the running preemptible flexible jobs whose deadline is not close. Back to normal when the
consumer is online again or the SoC falls to `resume_below_soc` (hysteresis: between the two
thresholds the previous decision stands): resume only nodes heatctl drained (an operator's drain is
never touched), release only jobs heatctl held. In a fleet's shared partition (`manage_jobs` false)
the jobs are left to Slurm: the drain and the weights alone send them to other sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.slurm.model import Action, Snapshot

TAG = "heatctl:"


@dataclass(frozen=True)
class Thresholds:
    shed_above_soc: float = 0.90
    resume_below_soc: float = 0.75
    requeue_above_soc: float = 0.95
    # A running job whose deadline is nearer than this is never requeued (it would miss it).
    protect_deadline_s: float = 4 * 3600.0
    # A plan slot whose batch budget is below this (W) holds the flexible pending jobs.
    plan_hold_below_w: float = 1.0
    # False when the flexible partition spans other sites' nodes (one cluster for a fleet): the jobs
    # are the fleet's, and holding or requeuing them would keep them from the sites that want the
    # heat. This site then only drains its own nodes and sets their weights (jobs heatctl held
    # before are still released).
    manage_jobs: bool = True


@dataclass(frozen=True)
class Situation:
    now_s: float                   # wall clock (s since the epoch): compared with Slurm's deadlines
    consumer_online: bool
    tank_soc: float | None         # 0..1, None when unknown
    # How much heat is wanted at this site now (0: none, 1: all of it), None when unknown.
    heat_value: float | None = None
    # The plan's batch budget for this slot (W) and its reason, None without a plan.
    plan_batch_budget_w: float | None = None
    plan_reason: str = ""


@dataclass(frozen=True)
class Memory:
    """What heatctl did before: the only state the decision keeps (returned anew each time)."""

    shed: bool = False
    held: frozenset[int] = field(default_factory=frozenset)


def node_weight(heat_value: float) -> int:
    """Slurm node weight from the value of heat: lower weight = preferred by the scheduler; heat
    fully wanted -> 1, heat not wanted -> 100."""
    v = min(max(heat_value, 0.0), 1.0)
    return 1 + round((1.0 - v) * 99)


def sink_full(s: Situation, t: Thresholds, was_shed: bool) -> bool:
    """Hysteresis on the tank's SoC, with the consumer's state. An unknown SoC keeps the decision."""
    if s.consumer_online:
        return False
    if s.tank_soc is None:
        return was_shed
    if s.tank_soc >= t.shed_above_soc:
        return True
    if s.tank_soc <= t.resume_below_soc:
        return False
    return was_shed


def decide(s: Situation, snap: Snapshot, mem: Memory, t: Thresholds = Thresholds()
           ) -> tuple[list[Action], Memory]:
    actions: list[Action] = []
    shed = sink_full(s, t, mem.shed)
    soc = f"{s.tank_soc * 100:.0f} %" if s.tank_soc is not None else "unknown"
    cause = f"{TAG} heat sink full (tank {soc}, consumer offline)"
    plan_hold = (s.plan_batch_budget_w is not None and s.plan_batch_budget_w < t.plan_hold_below_w)
    held = set(mem.held)

    for name in sorted(snap.nodes):
        node = snap.nodes[name]
        if shed and not node.drain:
            actions.append(Action("drain", name, cause))
        elif not shed and node.drain and node.reason.startswith(TAG):
            actions.append(Action("resume", name, f"{TAG} heat sink has room again (tank {soc})"))
        if s.heat_value is not None and not shed:
            w = node_weight(s.heat_value)
            if w != node.weight:
                actions.append(Action("weight", name, f"{TAG} heat value {s.heat_value:.2f}", w))

    hold_reason = cause if shed else (f"{TAG} plan holds batch work ({s.plan_reason})" if plan_hold else "")
    if not t.manage_jobs:
        hold_reason = ""
    for job in snap.jobs:
        jid = str(job.job_id)
        if job.state == "PENDING":
            if hold_reason and not job.held:
                actions.append(Action("hold", jid, hold_reason))
                held.add(job.job_id)
            elif not hold_reason and job.held and job.job_id in held:
                why = (f"plan releases batch work ({s.plan_reason})" if s.plan_batch_budget_w is not None
                       else f"heat sink has room again (tank {soc})")
                actions.append(Action("release", jid, f"{TAG} {why}"))
                held.discard(job.job_id)
        elif job.state == "RUNNING" and shed and t.manage_jobs and job.requeue and s.tank_soc is not None \
                and s.tank_soc >= t.requeue_above_soc:
            if job.deadline_ts is None or job.deadline_ts - s.now_s > t.protect_deadline_s:
                actions.append(Action("requeue", jid, f"{cause}; requeued before the cap binds"))
    # Jobs heatctl held that are gone from the queue (cancelled, or released by an operator) are forgotten.
    live = {j.job_id for j in snap.jobs if j.held}
    held = {j for j in held if j in live or any(a.kind == "hold" and a.target == str(j) for a in actions)}
    return actions, Memory(shed=shed, held=frozenset(held))
