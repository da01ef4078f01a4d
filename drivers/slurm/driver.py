"""The Slurm driver: Slurm's own command-line tools, each call an asyncio subprocess with a timeout.

Why the CLI: Debian 12 ships Slurm 22.05, which pyslurm's releases do not match (pyslurm follows
Slurm's major version), and slurmrestd needs JWT keys and a second daemon; `sinfo --json` and
`squeue --json` (data_parser 0.0.38 in 22.05) and `scontrol update/hold/release/requeue` are in every
Slurm install and read the same slurm.conf as the operator's shell.

Supervision as for the field drivers: a call never raises into the caller, never blocks the event
loop, and is bounded by `timeout_s`; the first failure is logged once (warning) and the recovery once
(info), with the command and Slurm's own message; health() tells status and the alarm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Callable, Iterable

from drivers.slurm.model import Action, ActionResult, Job, Node, SlurmConfig, SlurmHealth, Snapshot

log = logging.getLogger("heatctl.slurm")


class SlurmError(Exception):
    pass


class SlurmDriver:
    kind = "slurm"

    def __init__(self, config: SlurmConfig, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self._health = SlurmHealth()
        self._env = dict(os.environ)
        if config.slurm_conf:
            self._env["SLURM_CONF"] = config.slurm_conf

    def health(self) -> SlurmHealth:
        return self._health

    async def _run(self, *args: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, env=self._env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            raise SlurmError(f"{args[0]}: {e}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.config.timeout_s)
        except asyncio.TimeoutError:
            try:
                proc.kill()
            except ProcessLookupError:  # it ended just as the timeout fired
                pass
            await proc.wait()
            raise SlurmError(f"{' '.join(args[:2])}: no answer within {self.config.timeout_s} s") from None
        if proc.returncode != 0:
            text = (err or out).decode(errors="replace").strip().splitlines()
            raise SlurmError(f"{' '.join(args[:3])}: {text[-1] if text else f'exit {proc.returncode}'}")
        return out.decode(errors="replace")

    def _failed(self, error: str) -> None:
        h = self._health
        h.errors_total += 1
        if h.reachable or not h.tried:
            log.warning("slurm unreachable: %s; heatctl keeps the plant safe with the power cap", error)
        h.tried, h.reachable, h.last_error = True, False, error

    def _ok(self) -> None:
        h = self._health
        if h.tried and not h.reachable:
            log.info("slurm reachable again (was: %s)", h.last_error)
        h.tried, h.reachable, h.last_error = True, True, ""
        h.last_ok_ts = self.clock()

    async def snapshot(self) -> Snapshot | None:
        """The site's nodes and the flexible partition's jobs; None when Slurm does not answer."""
        try:
            nodes = parse_sinfo(await self._run("sinfo", "--json"), self.config.nodes)
            jobs = parse_squeue(await self._run("squeue", "--json"), self.config)
        except (SlurmError, ValueError) as e:
            self._failed(str(e))
            return None
        self._ok()
        return Snapshot(nodes, jobs)

    def _command(self, a: Action) -> list[str]:
        if a.kind == "drain":
            return ["scontrol", "update", f"NodeName={a.target}", "State=DRAIN", f"Reason={a.reason}"]
        if a.kind == "resume":
            return ["scontrol", "update", f"NodeName={a.target}", "State=RESUME"]
        if a.kind == "weight":
            return ["scontrol", "update", f"NodeName={a.target}", f"Weight={int(a.value or 1)}"]
        if a.kind in ("hold", "release", "requeue"):
            return ["scontrol", a.kind, a.target]
        raise ValueError(f"unknown Slurm action {a.kind!r}")

    async def apply(self, actions: Iterable[Action]) -> list[ActionResult]:
        """Carry out each action; a failed one is reported, never raised. Stops at the first
        failure that says Slurm is unreachable (the rest would fail the same way, each costing a
        timeout); the caller decides again from the next snapshot."""
        results: list[ActionResult] = []
        for a in actions:
            self._health.actions_total += 1
            try:
                await self._run(*self._command(a))
            except SlurmError as e:
                self._health.actions_failed_total += 1
                results.append(ActionResult(a, False, str(e)))
                if "no answer" in str(e) or "Unable to contact" in str(e) or "Connection refused" in str(e):
                    self._failed(str(e))
                    break
                continue
            results.append(ActionResult(a, True))
        return results


def parse_sinfo(text: str, site_nodes: tuple[str, ...]) -> dict[str, Node]:
    """`sinfo --json` (22.05) -> the site's nodes by name (a node is listed once, not per partition)."""
    data = json.loads(text)
    wanted = set(site_nodes)
    out: dict[str, Node] = {}
    for n in data.get("nodes", []):
        name = n.get("name", "")
        if name not in wanted or name in out:
            continue
        flags = [str(f).upper() for f in n.get("state_flags") or []]
        out[name] = Node(name=name, state=str(n.get("state", "")).lower(),
                         drain="DRAIN" in flags or "DRAINED" in flags or "DRAINING" in flags,
                         reason=n.get("reason") or "", weight=int(n.get("weight") or 1))
    return out


def parse_squeue(text: str, config: SlurmConfig) -> tuple[Job, ...]:
    """`squeue --json` (22.05) -> the flexible partition's (and QOS's) pending and running jobs."""
    data = json.loads(text)
    jobs = []
    for j in data.get("jobs", []):
        if j.get("partition") != config.flexible_partition:
            continue
        if config.flexible_qos and j.get("qos") != config.flexible_qos:
            continue
        state = str(j.get("job_state", ""))
        if state not in ("PENDING", "RUNNING"):
            continue
        deadline = j.get("deadline") or 0
        jobs.append(Job(job_id=int(j["job_id"]), partition=j.get("partition", ""),
                        qos=j.get("qos") or "", state=state, reason=j.get("state_reason") or "",
                        deadline_ts=float(deadline) if deadline else None,
                        requeue=bool(j.get("requeue")), nodes=max(_int(j.get("node_count"), 1), 1),
                        time_limit_s=_minutes(j.get("time_limit")), start_ts=float(_int(j.get("start_time"), 0)) or None,
                        node_list=str(j.get("nodes") or ""),
                        submit_ts=float(_int(j.get("submit_time"), 0)) or None))
    return tuple(sorted(jobs, key=lambda job: job.job_id))


def _int(v, default: int) -> int:
    """A squeue --json number: plain in 22.05, {"set": .., "number": ..} in later releases."""
    if isinstance(v, dict):
        v = v.get("number") if v.get("set", True) and not v.get("infinite") else None
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _minutes(v) -> float | None:
    """Slurm's time limit (minutes) in s; None when unlimited or not given."""
    if isinstance(v, dict) and (v.get("infinite") or not v.get("set", True)):
        return None
    m = _int(v, 0)
    # 0 and the 32-bit "INFINITE" (0xffffffff) both mean no limit.
    return None if m <= 0 or m >= 0xFFFFFFFE else m * 60.0
