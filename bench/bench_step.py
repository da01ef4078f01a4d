"""Benchmark of the control step: time per tick (median, p99) for the reference plant and for a
site with 500 points, and the wall time of a simulated week in closed loop.

Run: .venv/bin/python bench/bench_step.py [--week-hours H]
Prints its figures; asserts nothing (speed is measured here, never in tests).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.site.loader import parse_config_text  # noqa: E402
from controller.core.readings import Reading, Snapshot  # noqa: E402
from controller.core.step import Controller  # noqa: E402
from simulations.runners.closed_loop import run_scenario  # noqa: E402
from simulations.scenarios.definitions import SCENARIOS  # noqa: E402
from tests.step_helpers import GOOD, REFERENCE  # noqa: E402


def site_with_points(total: int):
    """The reference plant plus extra telemetry points (rack inlet/outlet temperatures) up to `total`."""
    text = REFERENCE.read_text()
    base = parse_config_text(text, "reference").site
    extra = total - len(base.points)
    lines = []
    for i in range(extra):
        lines.append(
            f"  rack_temp_{i:03d}: {{unit: degC, range: [0, 90], max_age_s: 5, max_rate_per_s: 2.0, "
            f"source: {{driver: bms_modbus, table: input, address: {100 + 2 * i}, data_type: float32}}}}"
        )
    marker = "\n# PID loops."
    text = text.replace(marker, "\n" + "\n".join(lines) + "\n" + marker, 1)
    return parse_config_text(text, f"{total}-points").site


def time_steps(site, ticks: int) -> list[float]:
    ctrl = Controller(site)
    state = ctrl.initial_state(0.0)
    values = {n: float(v) for n, v in GOOD.items()}
    for n in site.points:
        if n.startswith("rack_temp_"):
            values[n] = 30.0
    units = {n: p.unit for n, p in site.points.items()}
    durations = []
    for k in range(ticks):
        t = float(k)
        # Values move a little so nothing is frozen and the loops work.
        snap = Snapshot(t, {n: Reading(v + 0.001 * (k % 7), units[n], t) for n, v in values.items()})
        t0 = time.perf_counter()
        state = ctrl.step(state, snap, [], t).state
        durations.append(time.perf_counter() - t0)
    return durations[100:]  # without the start-up ticks


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=5000)
    ap.add_argument("--week-hours", type=float, default=168.0)
    args = ap.parse_args()
    print(f"# heatctl step benchmark  (python {platform.python_version()}, {platform.machine()})")
    ref = parse_config_text(REFERENCE.read_text(), "reference").site
    for label, site in (("reference plant", ref), ("500-point site", site_with_points(500))):
        d = time_steps(site, args.ticks)
        print(f"step, {label:16s} ({len(site.points):3d} points): median {statistics.median(d) * 1e6:7.0f} us"
              f"   p99 {pct(d, 0.99) * 1e6:7.0f} us   ({len(d)} ticks)")
    t0 = time.perf_counter()
    k, _ = run_scenario(ref, SCENARIOS["winter-day"], hours=args.week_hours)
    wall = time.perf_counter() - t0
    ticks = int(args.week_hours * 3600 / ref.tick_period_s)
    print(f"closed loop, winter profile, {args.week_hours:g} simulated h at a {ref.tick_period_s:g} s tick "
          f"({ticks} ticks): {wall:.1f} s wall, {args.week_hours * 3600 / wall:,.0f}x real time, "
          f"{wall / ticks * 1e6:.0f} us per tick (step + plant)")


if __name__ == "__main__":
    main()
