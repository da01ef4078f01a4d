"""What heatctl knows of Slurm (nodes, jobs) and what it asks of it (actions): plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SlurmConfig:
    """The site's part of the cluster: its nodes and the heat-flexible partition (or QOS)."""

    nodes: tuple[str, ...]
    flexible_partition: str = "batch"
    # When set, only jobs of this QOS (inside the partition) are held and released.
    flexible_qos: str = ""
    # Every Slurm command is bounded by this (s): a hung slurmctld costs one timeout, not a tick.
    timeout_s: float = 5.0
    # SLURM_CONF for the client tools ("" = their default, /etc/slurm/slurm.conf).
    slurm_conf: str = ""


@dataclass(frozen=True)
class Node:
    name: str
    # Base state as sinfo reports it ("idle", "allocated", "mixed", "down").
    state: str
    drain: bool
    reason: str
    weight: int


@dataclass(frozen=True)
class Job:
    job_id: int
    partition: str
    qos: str
    # RUNNING, PENDING, ...
    state: str
    # Slurm's state reason: JobHeldUser / JobHeldAdmin when held.
    reason: str
    # Slurm's own `--deadline` (s since the epoch), None when the job has none.
    deadline_ts: float | None
    requeue: bool
    # Its size, for the plan's queue: nodes, Slurm's time limit (s, None when unlimited), the start
    # time (s since the epoch; for a pending job Slurm's expected start, or 0) and where it runs.
    nodes: int = 1
    time_limit_s: float | None = None
    start_ts: float | None = None
    node_list: str = ""
    submit_ts: float | None = None

    @property
    def held(self) -> bool:
        return self.state == "PENDING" and self.reason.startswith("JobHeld")


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the site's nodes and the flexible jobs."""

    nodes: dict[str, Node]
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class Action:
    """One thing asked of Slurm. kind: drain | resume | weight | hold | release | requeue."""

    kind: str
    target: str
    reason: str
    value: int | None = None

    def describe(self) -> str:
        what = f"{self.kind} {self.target}" + (f" = {self.value}" if self.value is not None else "")
        return f"{what} ({self.reason})"


@dataclass
class ActionResult:
    action: Action
    ok: bool
    error: str = ""


@dataclass
class SlurmHealth:
    reachable: bool = False
    # Set once a call has been tried: "never tried" is not "unreachable".
    tried: bool = False
    last_error: str = ""
    errors_total: int = 0
    last_ok_ts: float | None = None
    actions_total: int = 0
    actions_failed_total: int = 0
    extra: dict[str, float] = field(default_factory=dict)
