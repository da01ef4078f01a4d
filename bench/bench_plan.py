"""Benchmark of a plan solve for the reference site: 96 slots of 15 minutes, the batch queue of a
January day of the pool-year workload, the forecasts the envelope makes.

Run: .venv/bin/python bench/bench_plan.py [--solves N]
Prints the median and max wall time of N solves (building the LP and solving it with HiGHS), and of
the same solve in a child process (how the daemon runs it off the tick); asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.planning.solver import solve  # noqa: E402
from controller.planning.worker import solve_in_subprocess  # noqa: E402
from simulations.runners.planned import PlannedController, with_workload, workload_for  # noqa: E402
from simulations.scenarios.profiles import day_start_s  # noqa: E402
from simulations.scenarios.year import SCENARIOS, site_for  # noqa: E402


def reference_inputs():
    """The plan inputs at 18:00 on 15 January after a day of the workload running freely."""
    sc = SCENARIOS["pool-year"]
    site = site_for(sc).model_copy(update={"tick_period_s": 60.0})
    start = day_start_s(1, 14)
    wl = workload_for(site, sc, 60.0, start)
    now = start + 42 * 3600.0
    t = start
    while t < now:
        wl.load(t)
        t += 60.0
    ctrl = PlannedController(site, with_workload(sc, wl), wl)
    return ctrl.inputs(now, 0.6), site.planning.solve_time_limit_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solves", type=int, default=20)
    args = ap.parse_args()
    inputs, limit = reference_inputs()
    solve(inputs, limit)  # warm: imports, HiGHS's first instance
    times, sub = [], []
    for _ in range(args.solves):
        t0 = time.perf_counter()
        res = solve(inputs, limit)
        times.append(time.perf_counter() - t0)
        assert res.plan is not None, res.reason
    for _ in range(args.solves):
        t0 = time.perf_counter()
        res = solve_in_subprocess(inputs, limit)
        sub.append(time.perf_counter() - t0)
    print(f"plan solve, reference site ({platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs): {inputs.slots} slots, {len(inputs.queue)} queued jobs, time limit {limit:g} s")
    print(f"  in process:      median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
          f"over {len(times)} solves")
    print(f"  child process:   median {statistics.median(sub) * 1000:.1f} ms, max {max(sub) * 1000:.1f} ms "
          f"over {len(sub)} solves (a child from the fork server, which imports the caller's main module again; solve; result back)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
