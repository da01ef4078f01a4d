"""Workload profiles per hardware template: interactive services and batch job classes.

None of these is a measured trace of a real site: each is an assumption, stated here with where its
shape comes from, so that a reader can change it. What matters for heat is the split between work
that must run now (interactive: never held or throttled, except by a trip or safe_degrade) and work
that may move within a deadline (batch), and how big and how flexible the batch jobs are.

- inference (interactive): user-facing model serving follows its users: busiest mid-afternoon,
  quietest before dawn, the trough about half the peak (assumption; the diurnal shape of
  user-facing services in Barroso, Clidaras, Hoelzle, "The Datacenter as a Computer", 2nd ed. 2013,
  section 5, which the existing DiurnalLoad profile also follows).
- web/API (interactive, the CPU rack): the same shape, a little lower (assumption).
- transcoding (batch): uploads in the evening, each video a job of 0.25-2 node-hours on one node,
  wanted by the next morning (deadline 4-8 h); segment-based, so preemptible (assumption).
- analytics (batch): nightly ETL/reporting jobs submitted 00:00-03:00 on 2 nodes, 1-4 node-hours,
  due for the working day (deadline 6-10 h); Spark-like, restarted if preempted, so not preemptible
  here (assumption).
- rendering / simulation (batch, the CPU rack): frames or parameter sweeps submitted in the working
  day, 2-8 node-hours on one node, wanted within 12-24 h, checkpointed per frame or step, so
  preemptible (assumption).
- training (batch): model training or fine-tuning submitted through the day, 4-16 node-hours on 2
  nodes, deadline 24 h, checkpointed so preemptible (assumption).

Deadlines span 4 to 24 hours as issue 11 asks; the batch share of IT energy is 30-50 % (printed by
`python -m simulations.workload.results` for each scenario).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulations.scenarios.profiles import hour_of_day, is_weekend


@dataclass(frozen=True)
class Interactive:
    """Interactive load as a fraction of the nodes (0..1): a daily cosine between low and high."""

    name: str
    low: float
    high: float
    peak_h: float = 14.0
    weekend_factor: float = 0.9

    def __call__(self, t: float) -> float:
        x = 0.5 + 0.5 * math.cos(2 * math.pi * (hour_of_day(t) - self.peak_h) / 24.0)
        v = self.low + (self.high - self.low) * x
        return v * self.weekend_factor if is_weekend(t) else v


@dataclass(frozen=True)
class JobClass:
    name: str
    share: float                        # of the batch node-hours
    size_node_h: tuple[float, float]
    width_nodes: int
    deadline_h: tuple[float, float]
    arrival_h: tuple[float, float]      # jobs arrive in this window of the day (hours)
    preemptible: bool


@dataclass(frozen=True)
class WorkloadMix:
    name: str
    interactive: Interactive
    batch_load: float                   # mean batch load, as a fraction of the nodes
    classes: tuple[JobClass, ...]
    seed: int = 7


INFERENCE = Interactive("inference", low=0.30, high=0.60)
WEB_API = Interactive("web/API", low=0.25, high=0.55)
TRANSCODING = JobClass("transcoding", 0.35, (0.25, 2.0), 1, (4.0, 8.0), (17.0, 23.0), True)
ANALYTICS = JobClass("analytics", 0.25, (1.0, 4.0), 2, (6.0, 10.0), (0.0, 3.0), False)
TRAINING = JobClass("training", 0.40, (4.0, 16.0), 2, (24.0, 24.0), (8.0, 20.0), True)
RENDERING = JobClass("rendering", 0.30, (2.0, 8.0), 1, (12.0, 24.0), (8.0, 20.0), True)

# Per hardware template (the scenario's config; None: the reference plant).
MIXES: dict[str | None, WorkloadMix] = {
    None: WorkloadMix("GPU/CPU mix: inference + training, transcoding, analytics", INFERENCE, 0.40,
                      (TRANSCODING, ANALYTICS, TRAINING)),
    "config/templates/cpu-rack-dhw.yaml": WorkloadMix(
        "CPU rack: web/API + transcoding, analytics, rendering", WEB_API, 0.40,
        (JobClass("transcoding", 0.4, (0.25, 2.0), 1, (4.0, 8.0), (17.0, 23.0), True),
         JobClass("analytics", 0.3, (1.0, 4.0), 2, (6.0, 12.0), (0.0, 3.0), False),
         RENDERING)),
    "config/templates/gpu-pod-pool.yaml": WorkloadMix(
        "GPU pod: inference + training", INFERENCE, 0.35,
        (JobClass("training", 1.0, (4.0, 16.0), 2, (12.0, 24.0), (8.0, 20.0), True),)),
}


def mix_for(config: str | None) -> WorkloadMix:
    if config not in MIXES:
        raise KeyError(f"no workload mix for template {config!r}; expected one of {sorted(map(str, MIXES))}")
    return MIXES[config]
