"""The fleet's batch workload on simulated time: one queue over every site's nodes, jobs placed by
Slurm's rule (simulations.fleet.placement) either at home or by the sites' node weights.

Jobs come from each site's own workload mix (simulations.workload: the same seeded jobs a site
runs alone), pooled into one queue. Interactive work stays at its site, is never moved or held,
and keeps ceil(interactive nodes) of its site's nodes out of the batch pool (the last nodes of the
site); its power is fluid (the interactive share of the nodes).

Each tick:
1. arrivals join the queue, ordered by latest start (deadline minus run time: least slack first,
   the order of issue 11's workload model under a budget), the priority a site's job_submit filter
   would set from Slurm's own `--deadline` and the job's time limit (Slurm's default priority/basic
   is first come, first served);
2. each pending job, in queue order, gets the nodes `pick_nodes` gives it, or waits (a later job
   that fits may start before it: backfill without time limits, as the jobs carry none);
   - policy "home": only its own site's nodes, all of weight 1 (each site keeps its work; the
     independent fleet);
   - policy "weight": every site's nodes, each of its site's weight (heatctl's node_weight of the
     site's value of heat), drained sites excluded: Slurm's placement across the fleet;
   a job that would otherwise miss its deadline (slack, deadline - now - remaining / width, at or
   below `GUARD_S`, 2 h more for a job that cannot be preempted) and finds no nodes requeues
   running preemptible jobs that can wait for its whole run and still keep their own guard, the
   most slack first, until it fits (Slurm's PreemptMode=REQUEUE; the jobs checkpoint, so the
   requeued job keeps its remaining work, issue 11's classes);
3. running jobs advance by width x tick (a job keeps its nodes until it is done or requeued: Slurm
   does not migrate running work);
4. a job not done by its deadline is counted once as missed.

Assumptions stated: a node-hour of work is a node-hour on any site's hardware (the sites' nodes
differ in power, so the same job brings different heat at different sites); a running job's nodes
stay busy if interactive load grows into them (the site's load is then capped at 100 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from simulations.fleet.placement import NodeView, pick_nodes
from simulations.scenarios.profiles import DAY
from simulations.workload.model import jobs_for_day
from simulations.workload.profiles import WorkloadMix

H = 3600.0
# A pending job with this little slack left may requeue later-deadline preemptible jobs (s): the
# guard of issue 11's workload model (simulations.workload.model.WorkloadSim.guard_s).
GUARD_S = 1800.0
# A job that cannot be preempted needs its whole width at once: it becomes urgent this much sooner
# (WorkloadSim.whole_width_guard_s).
WHOLE_WIDTH_GUARD_S = 7200.0
POLICIES = ("home", "weight")


@dataclass(frozen=True)
class FleetSite:
    name: str
    servers: int
    mix: WorkloadMix


@dataclass
class FleetJob:
    job_id: str
    home: int                 # index of the site it was submitted at
    arrival_s: float
    width: int
    deadline_s: float
    remaining_node_h: float
    size_node_h: float
    preemptible: bool = True
    nodes: list[int] = field(default_factory=list)    # global node indices while running
    started_s: float | None = None
    finished_s: float | None = None
    missed: bool = False


@dataclass
class FleetStats:
    jobs_arrived: int = 0
    arrived_node_h: float = 0.0
    jobs_done: int = 0
    missed: int = 0
    batch_node_h: float = 0.0
    away_node_h: float = 0.0           # batch node-hours run at a site other than the job's home
    spanning_jobs: int = 0             # jobs whose nodes were at more than one site
    max_wait_h: float = 0.0            # longest time from arrival to start
    requeued: int = 0                  # running jobs requeued for a job about to miss its deadline


class FleetWorkload:
    """The shared batch queue over the fleet's nodes (module docstring); `tick(t)` once per tick."""

    def __init__(self, sites: Sequence[FleetSite], policy: str, start_s: float, tick_s: float):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        self.sites = list(sites)
        self.policy = policy
        self.start_s, self.tick_s = start_s, tick_s
        # Slurm's node table: by node name (simulations.fleet.placement), numbers zero-padded.
        table = sorted((f"{site.name}{i + 1:02d}", s, i) for s, site in enumerate(self.sites)
                       for i in range(site.servers))
        self.node_names = [name for name, _s, _i in table]
        self.node_site = [s for _n, s, _i in table]
        self.node_local = [i for _n, _s, i in table]
        self.index = {name: n for n, name in enumerate(self.node_names)}
        self.site_range = []
        for s in range(len(self.sites)):
            where = [n for n, x in enumerate(self.node_site) if x == s]
            if where != list(range(where[0], where[-1] + 1)):
                raise ValueError(f"site {self.sites[s].name!r}: its nodes are not together in name order "
                                 f"(a site name is the start of another's)")
            self.site_range.append((where[0], where[-1] + 1))
        self._idle_sig: tuple | None = None
        self.busy: list[FleetJob | None] = [None] * len(self.node_site)
        self.weights = [1] * len(self.sites)
        self.drained = [False] * len(self.sites)
        self.queue: list[FleetJob] = []
        self.running: list[FleetJob] = []
        self.stats = FleetStats()
        self.missed_jobs: list[FleetJob] = []
        self.site_batch_node_h = [0.0] * len(self.sites)
        self._pending: list[FleetJob] = []
        self._day = int(start_s // DAY) - 1

    def _arrivals(self, t: float) -> None:
        day = int(t // DAY)
        while self._day < day:
            self._day += 1
            new = []
            for s, site in enumerate(self.sites):
                for j in jobs_for_day(site.mix, site.servers, self._day):
                    if j.arrival_s >= self.start_s:
                        new.append(FleetJob(f"{site.name}:{j.job_id}", s, j.arrival_s, j.width, j.deadline_s,
                                            j.size_node_h, j.size_node_h, j.preemptible))
            self._pending.extend(new)
            self._pending.sort(key=lambda j: (j.arrival_s, j.job_id))
        while self._pending and self._pending[0].arrival_s <= t:
            job = self._pending.pop(0)
            self.queue.append(job)
            self.stats.jobs_arrived += 1
            self.stats.arrived_node_h += job.size_node_h

    def interactive_nodes(self, s: int, t: float) -> float:
        site = self.sites[s]
        return site.servers * min(max(site.mix.interactive(t), 0.0), 1.0)

    def view(self, t: float, inter: Sequence[float]) -> list[NodeView]:
        """The node table as Slurm would see it now: weight per node, usable when idle, not drained
        and not kept for interactive work."""
        keep = [min(math.ceil(x - 1e-9), site.servers) for x, site in zip(inter, self.sites)]
        out = []
        for n, s in enumerate(self.node_site):
            usable = (self.busy[n] is None and not self.drained[s]
                      and self.node_local[n] < self.sites[s].servers - keep[s])
            out.append(NodeView(self.node_names[n], self.weights[s] if self.policy == "weight" else 1, usable))
        return out

    def _slack_s(self, job: FleetJob, t: float) -> float:
        return job.deadline_s - t - job.remaining_node_h / job.width * H

    def _urgent(self, job: FleetJob, t: float) -> bool:
        guard = GUARD_S if job.preemptible else GUARD_S + WHOLE_WIDTH_GUARD_S
        return self._slack_s(job, t) <= guard

    def _candidates(self, job: FleetJob, nodes: list[NodeView]) -> tuple[int, list[NodeView]]:
        if self.policy == "home":
            lo, hi = self.site_range[job.home]
            return lo, nodes[lo:hi]
        return 0, nodes

    def _requeue_for(self, job: FleetJob, t: float, nodes: list[NodeView], inter: Sequence[float]) -> list[str] | None:
        """Requeue running preemptible jobs (the most slack first, only those on nodes this job may
        use) until `job` fits; None (and nothing requeued) when it cannot."""
        lo, cand = self._candidates(job, nodes)
        allowed = {lo + i for i in range(len(cand))}
        # A victim must be able to wait for this job's whole run and still meet its deadline.
        wait_s = job.remaining_node_h / job.width * H
        victims = sorted((r for r in self.running if r.preemptible and any(n in allowed for n in r.nodes)
                          and self._slack_s(r, t) - wait_s > self.tick_s),
                         key=lambda r: (-self._slack_s(r, t), r.job_id))
        trial = list(nodes)
        chosen = []
        for r in victims:
            chosen.append(r)
            for n in r.nodes:
                if self._free_if_idle(n, inter):
                    trial[n] = NodeView(trial[n].name, trial[n].weight, True)
            lo2, cand2 = self._candidates(job, trial)
            if pick_nodes(cand2, job.width) is not None:
                for v in chosen:
                    for n in v.nodes:
                        self.busy[n] = None
                        nodes[n] = trial[n]
                    v.nodes = []
                    self.running.remove(v)
                    self.queue.append(v)
                    self.stats.requeued += 1
                lo2, cand2 = self._candidates(job, nodes)
                return pick_nodes(cand2, job.width)
        return None

    def _free_if_idle(self, n: int, inter: Sequence[float]) -> bool:
        s = self.node_site[n]
        keep = min(math.ceil(inter[s] - 1e-9), self.sites[s].servers)
        return not self.drained[s] and self.node_local[n] < self.sites[s].servers - keep

    def _place(self, t: float, inter: Sequence[float]) -> None:
        nodes = self.view(t, inter)
        urgent = any(self._urgent(j, t) for j in self.queue)
        # Nothing can start when neither the usable nodes, their weights nor the queue changed
        # since a pass that started nothing (and no job is urgent): skip the pass (same outcome).
        sig = (tuple(v.usable for v in nodes), tuple(self.weights), len(self.queue))
        if not urgent and (sig == self._idle_sig or not any(sig[0])):
            return
        self.queue.sort(key=lambda j: (j.deadline_s - j.remaining_node_h / j.width * H, j.job_id))
        queue, self.queue = self.queue, []
        started = False
        for job in queue:
            lo, cand = self._candidates(job, nodes)
            picked = pick_nodes(cand, job.width)
            if picked is None and self._urgent(job, t):
                picked = self._requeue_for(job, t, nodes, inter)
            if picked is None:
                self.queue.append(job)
                continue
            started = True
            job.nodes = [self.index[p] for p in picked]
            if job.started_s is None:
                job.started_s = t
                self.stats.max_wait_h = max(self.stats.max_wait_h, (t - job.arrival_s) / H)
            if len({self.node_site[n] for n in job.nodes}) > 1:
                self.stats.spanning_jobs += 1
            for n in job.nodes:
                self.busy[n] = job
                nodes[n] = NodeView(nodes[n].name, nodes[n].weight, False)
            self.running.append(job)
        self._idle_sig = None if started else sig

    def tick(self, t: float) -> list[float]:
        """Advance the workload over [t, t + tick): the load fraction of each site for it."""
        self._arrivals(t)
        inter = [self.interactive_nodes(s, t) for s in range(len(self.sites))]
        self._place(t, inter)
        busy = [0] * len(self.sites)
        for n, job in enumerate(self.busy):
            if job is not None:
                busy[self.node_site[n]] += 1
        dt_h = self.tick_s / H
        end = t + self.tick_s
        still = []
        for job in self.running:
            work = min(job.width * dt_h, job.remaining_node_h)
            job.remaining_node_h -= work
            self.stats.batch_node_h += work
            for n in job.nodes:
                s = self.node_site[n]
                share = work / job.width
                self.site_batch_node_h[s] += share
                if s != job.home:
                    self.stats.away_node_h += share
            if job.remaining_node_h <= 1e-9:
                job.finished_s = end
                self.stats.jobs_done += 1
                for n in job.nodes:
                    self.busy[n] = None
            else:
                still.append(job)
            # Done at `end` or still running then: late either way.
            if end > job.deadline_s + 1e-6 and not job.missed:
                job.missed = True
                self.stats.missed += 1
                self.missed_jobs.append(job)
        self.running = still
        for job in self.queue:
            if end > job.deadline_s + 1e-6 and not job.missed:
                job.missed = True
                self.stats.missed += 1
                self.missed_jobs.append(job)
        return [min((inter[s] + busy[s]) / site.servers, 1.0) for s, site in enumerate(self.sites)]
