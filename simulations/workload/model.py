"""The workload on simulated time: batch jobs generated from a mix, run by a simple scheduler.

Deterministic: jobs come from the seeded hash (simulations.scenarios.profiles.unit_hash), the same
for every controller that runs the same scenario. Per day and per job class, jobs of random size and
arrival (in the class's window) are drawn until the class's node-hours for the day are reached (the
last job is trimmed), so the batch energy is exactly the mix's share.

The scheduler (a stand-in for Slurm, run every control tick; node counts are fluid):
- interactive work takes its nodes first and is never held;
- a job that cannot be preempted runs at its full width from its start to its end;
- a job whose slack (deadline - now - remaining / width) has fallen to `guard_s` (plus
  `whole_width_guard_s` for a job that cannot be preempted: it needs all its nodes at once) runs at
  full width whatever the budget (deadlines win over heat);
- the rest run up to the batch budget (nodes) and the free nodes, least slack first (the job that
  can wait least first). Without a budget (None: today's rules), every queued job runs as soon as
  nodes are free, earliest deadline first.
Work is conserved: held work stays in the queue with its remaining node-hours; a job that finishes
after its deadline (or is still running at it) is counted once as missed.

Power: a node draws idle power always and `span` (max - idle) more at full load, as the plant model
(simulations.plant.model); the load fraction handed to the plant is (interactive + batch nodes) /
nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulations.scenarios.profiles import DAY, unit_hash
from simulations.workload.profiles import WorkloadMix

H = 3600.0


@dataclass
class Job:
    job_id: str
    cls: str
    arrival_s: float
    size_node_h: float
    width: int
    deadline_s: float
    preemptible: bool
    remaining_node_h: float = 0.0
    started: bool = False
    finished_s: float | None = None
    missed: bool = False

    def __post_init__(self) -> None:
        if self.remaining_node_h == 0.0:
            self.remaining_node_h = self.size_node_h


def jobs_for_day(mix: WorkloadMix, servers: int, day: int) -> list[Job]:
    """The batch jobs that arrive on `day` (0 = 1 January), from the seeded hash."""
    out = []
    for ci, c in enumerate(mix.classes):
        target = mix.batch_load * servers * 24.0 * c.share
        k, total = 0, 0.0
        while total < target - 1e-9:
            u = lambda j: 0.5 * (unit_hash(mix.seed * 1000 + ci, (day * 4096 + k) * 4 + j) + 1.0)  # noqa: E731
            size = min(c.size_node_h[0] + (c.size_node_h[1] - c.size_node_h[0]) * u(0), target - total)
            arrival = day * DAY + (c.arrival_h[0] + (c.arrival_h[1] - c.arrival_h[0]) * u(1)) * H
            deadline = arrival + (c.deadline_h[0] + (c.deadline_h[1] - c.deadline_h[0]) * u(2)) * H
            width = min(c.width_nodes, servers)
            out.append(Job(f"{c.name}-{day}-{k}", c.name, arrival, size, width, deadline, c.preemptible))
            total += size
            k += 1
    out.sort(key=lambda j: (j.arrival_s, j.job_id))
    return out


@dataclass
class WorkloadStats:
    batch_node_h: float = 0.0
    interactive_node_h: float = 0.0
    jobs_arrived: int = 0
    jobs_done: int = 0
    missed: int = 0
    held_node_h: float = 0.0      # node-hours that were free and queued work was held (by the budget)
    max_lateness_h: float = 0.0


@dataclass
class WorkloadSim:
    """The workload on simulated time; `load(t)` advances it by one tick and returns the load fraction."""

    mix: WorkloadMix
    servers: int
    start_s: float
    tick_s: float
    guard_s: float = 1800.0
    # A job that cannot be preempted needs its whole width free at once: it is forced this much sooner.
    whole_width_guard_s: float = 7200.0
    budget_nodes: float | None = None    # None: today's rules (run as soon as nodes are free)
    queue: list[Job] = field(default_factory=list)
    done: list[Job] = field(default_factory=list)
    stats: WorkloadStats = field(default_factory=WorkloadStats)
    _pending: list[Job] = field(default_factory=list)
    _day: int = -1
    _last_t: float | None = None
    _last_load: float = 0.0

    def interactive_nodes(self, t: float) -> float:
        return self.servers * min(max(self.mix.interactive(t), 0.0), 1.0)

    def _arrivals(self, t: float) -> None:
        day = int(t // DAY)
        while self._day < day:
            self._day = max(self._day + 1, int(self.start_s // DAY))
            self._pending.extend(j for j in jobs_for_day(self.mix, self.servers, self._day) if j.arrival_s >= self.start_s)
        while self._pending and self._pending[0].arrival_s <= t:
            self.queue.append(self._pending.pop(0))
            self.stats.jobs_arrived += 1

    def load(self, t: float) -> float:
        """Advance to [t, t + tick) and return the load fraction for it (cached for a repeated t)."""
        if self._last_t is not None and t <= self._last_t:
            return self._last_load
        self._last_t = t
        dt_h = self.tick_s / H
        self._arrivals(t)
        inter = self.interactive_nodes(t)
        free = max(self.servers - inter, 0.0)
        if self.budget_nodes is None:
            self.queue.sort(key=lambda j: (j.deadline_s, j.job_id))
        else:
            # Under a budget, least slack first: the job that can wait least gets the budget first.
            self.queue.sort(key=lambda j: (j.deadline_s - j.remaining_node_h / j.width * H, j.job_id))
        alloc: dict[str, float] = {}
        used = 0.0
        # Jobs that must run: started and not preemptible, or out of slack.
        for j in self.queue:
            slack = j.deadline_s - t - j.remaining_node_h / j.width * H
            guard = self.guard_s if j.preemptible else self.guard_s + self.whole_width_guard_s
            if (j.started and not j.preemptible) or slack <= guard:
                a = min(j.width, free - used)
                if a <= 1e-9 or (not j.preemptible and not j.started and a < j.width - 1e-9):
                    continue
                alloc[j.job_id] = a
                used += a
        budget = free if self.budget_nodes is None else min(max(self.budget_nodes, 0.0), free)
        for j in self.queue:
            if j.job_id in alloc:
                continue
            room = budget - used
            if room <= 1e-9:
                break
            a = min(j.width, room)
            if not j.preemptible and a < j.width - 1e-9:
                continue
            alloc[j.job_id] = a
            used += a
        if self.budget_nodes is not None:
            queued = sum(min(j.width, j.remaining_node_h / dt_h) for j in self.queue) - used
            self.stats.held_node_h += max(min(queued, free - used), 0.0) * dt_h
        still = []
        end = t + self.tick_s
        for j in self.queue:
            a = alloc.get(j.job_id, 0.0)
            if a > 0.0:
                j.started = True
                work = min(a * dt_h, j.remaining_node_h)
                j.remaining_node_h -= work
                self.stats.batch_node_h += work
            if j.remaining_node_h <= 1e-9:
                j.finished_s = end
                self.stats.jobs_done += 1
                if end > j.deadline_s + 1e-6:
                    if not j.missed:
                        self.stats.missed += 1
                    j.missed = True
                    self.stats.max_lateness_h = max(self.stats.max_lateness_h, (end - j.deadline_s) / H)
                self.done.append(j)
            else:
                if end > j.deadline_s and not j.missed:
                    j.missed = True
                    self.stats.missed += 1
                still.append(j)
        self.queue = still
        self.stats.interactive_node_h += inter * dt_h
        batch_nodes = min(used, free)
        self._last_load = min((inter + batch_nodes) / self.servers, 1.0)
        return self._last_load
