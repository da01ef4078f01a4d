"""Benchmark of the plan inside the daemon (controller/daemon/planning.py): what it costs the tick,
and how long a re-plan takes from its start to the plan being in force.

Run: .venv/bin/python bench/bench_plan_daemon.py [--jobs N] [--solves N]
The reference site (config/reference-plant.yaml: 8 servers, 8 Slurm nodes here) with N queued
flexible jobs (1-4 nodes, 1-6 h time limits, deadlines 4-24 h, a third of them running), a flat
forecast. Prints:
- the planner's cost on the tick: `current()` (the keeper's plan in force) + `after_step()` when no
  solve is due, per tick (the hooks the daemon calls every tick);
- building the inputs from Slurm's queue (`inputs_from`, done on the tick when a solve starts);
- a re-plan end to end as the daemon runs it: a worker thread, the child process (fork), HiGHS,
  the result back through the pipe, the keeper (median and max of --solves).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.core.envelope import HourForecast  # noqa: E402
from controller.daemon import planning  # noqa: E402
from controller.site.loader import load_config  # noqa: E402
from drivers.slurm.model import Job, Node, Snapshot  # noqa: E402

H = 3600.0


def site_shape() -> planning.SiteShape:
    site = load_config(ROOT / "config" / "reference-plant.yaml").site
    base = planning.SiteShape.of(site)
    assert base is not None
    return planning.SiteShape(base.limits, tuple(f"n{i}" for i in range(8)), base.node_w)


def snapshot(now: float, jobs: int) -> Snapshot:
    nodes = {f"n{i}": Node(f"n{i}", "mixed", False, "", 1) for i in range(8)}
    js = []
    for k in range(jobs):
        running = k % 3 == 0
        js.append(Job(k + 1, "batch", "", "RUNNING" if running else "PENDING", "None",
                      now + (4 + (k * 7) % 21) * H, k % 2 == 0, nodes=1 + k % 4,
                      time_limit_s=(1 + k % 6) * H, start_ts=now - 0.5 * H if running else None))
    return Snapshot(nodes, tuple(js))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--solves", type=int, default=10)
    args = ap.parse_args()
    shape = site_shape()
    now = time.time()
    snap = snapshot(now, args.jobs)
    fc = [HourForecast(30000.0 + 8000.0 * ((h % 24) < 8), 5.0) for h in range(24)]
    rows: list = []
    clock = [now]
    task = planning.PlannerTask(shape, rows.extend, lambda: clock[0], every_s=900.0, time_limit_s=1.0,
                                kill_after_s=5.0)
    print(f"bench_plan_daemon: {platform.python_version()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; reference site, 8 nodes, {args.jobs} jobs")

    async def run() -> None:
        # A re-plan end to end, --solves times (the first includes the child's HiGHS import).
        spans = []
        for _ in range(args.solves):
            task._due = -float("inf")
            t0 = time.perf_counter()
            task.after_step(clock[0], 0.5, 30000.0, fc, snap, 30000.0)
            await task.wait_idle()
            spans.append(time.perf_counter() - t0)
            assert task.keeper.plan is not None, task.keeper.last_failure
        solver_s = task.last.solve_s if task.last else float("nan")
        print(f"  re-plan, start to plan in force: median {statistics.median(spans) * 1000:.0f} ms, "
              f"max {max(spans) * 1000:.0f} ms (HiGHS itself, last: {solver_s * 1000:.0f} ms)")
        # The tick's share: no solve due.
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            task.current(clock[0])
            task.after_step(clock[0], 0.5, 30000.0, fc, snap, 30000.0)
        per_tick = (time.perf_counter() - t0) / n
        print(f"  on the tick, no solve due (current + after_step): {per_tick * 1e6:.1f} us")
    asyncio.run(run())
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        planning.inputs_from(shape, now, 0.5, 30000.0, fc, snap, 3600.0, 30000.0)
    print(f"  inputs from Slurm's queue (on the tick when a solve starts): "
          f"{(time.perf_counter() - t0) / n * 1000:.2f} ms")


if __name__ == "__main__":
    main()
