"""Benchmark of a simulated year: wall and CPU time, steps per second and peak memory, per control tick.

Runs a year scenario of the reference plant (default `pool-year`) in closed loop at each tick given
(default 60 s and 30 s), with heatctl's controller and the baseline controller side by side in two
processes: that is where a year's parallelism honestly comes from. The months of one run cannot be
split across processes: the tank, the loops and the controller state carry from one month into the
next, so they must run in order. At the config's own 1 s tick a year is 31.5 M steps; that figure
is extrapolated from a short run, never run.

Run: .venv/bin/python bench/bench_year.py [--scenario pool-year] [--ticks 60,30] [--hours H]
     [--no-baseline] [--estimate-hours 1]
Prints its figures; asserts nothing (speed is measured here, never in tests).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

YEAR_H = 8760.0


def _rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def one_run(scenario_name: str, controller: str, tick_s: float, hours: float | None) -> dict:
    """One closed-loop run in this (fresh) process: times, steps, memory, and the headline KPIs."""
    from simulations.runners.closed_loop import run_scenario
    from simulations.scenarios.definitions import SCENARIOS

    scenario = SCENARIOS[scenario_name]
    try:
        from simulations.scenarios.year import site_for
        site = site_for(scenario)
    except ImportError:
        from controller.site.loader import load_config
        from controller.site.paths import default_config_path
        site = load_config(default_config_path()).site
    h = scenario.hours if hours is None else hours
    rss0 = _rss_mb()
    w0, c0 = time.perf_counter(), time.process_time()
    kwargs = {} if controller == "heatctl" else {"controller": controller}
    k, _ = run_scenario(site, scenario, hours=h, tick_s=tick_s, **kwargs)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    steps = int(round(h * 3600.0 / tick_s))
    return {
        "controller": controller, "tick_s": tick_s, "hours": h, "steps": steps, "wall_s": wall, "cpu_s": cpu,
        "rss_before_mb": rss0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "delivered_kwh": k.delivered_kwh, "boiler_kwh": k.boiler_kwh, "dumped_kwh": k.dumped_kwh,
        "erf": k.erf, "mode_changes": k.mode_changes, "trips": sum(k.trips.values()),
    }


def _headline(parts: list) -> dict:
    """The headline KPIs of a run from its chunks' KPIs: energies add up; ERF from the sums."""
    out = {f: sum(getattr(k, f) for k in parts) for f in (
        "delivered_kwh", "boiler_kwh", "dumped_kwh", "it_kwh", "pumps_fans_kwh", "mode_changes")}
    out["erf"] = out["delivered_kwh"] / (out["it_kwh"] + out["pumps_fans_kwh"])
    return out


def chunked(args, ticks: list[float], controllers: list[str], unbroken: dict[float, dict[str, dict]]) -> None:
    """Each controller's year in `args.chunks` chunks on 2 processes (simulations.runners.closed_loop.
    run_chunks), against the unbroken runs measured before (`unbroken`: tick -> controller -> figures)."""
    from simulations.runners.closed_loop import run_chunks
    from simulations.scenarios.definitions import SCENARIOS
    from simulations.scenarios.year import site_for

    scenario = SCENARIOS[args.scenario]
    site = site_for(scenario)
    for tick in ticks:
        whole = unbroken.get(tick, {})
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        runs = run_chunks(site, scenario, args.chunks, warmup_h=args.warmup_h, hours=args.hours, tick_s=tick,
                          controllers=tuple("heatctl" if c == "heatctl" else c for c in controllers), jobs=2)
        wall = time.perf_counter() - w0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
        print(f"tick {tick:4g} s  {' + '.join(controllers)} in {args.chunks} chunks each ({args.warmup_h:g} h "
              f"warm-up before each but the first), 2 processes: wall {wall:.1f} s, CPU {cpu:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f})")
        for c, parts in runs.items():
            h = _headline([k for k, _ in parts])
            w = whole.get(c)
            if w is None:
                print(f"{'':20s}{c}: chunked: delivered {h['delivered_kwh']:,.0f} kWh, boiler {h['boiler_kwh']:,.0f}, "
                      f"dumped {h['dumped_kwh']:,.0f}, ERF {h['erf']:.4f}, {h['mode_changes']} mode changes")
                continue
            diffs = ", ".join(f"{name} {h[f]:,.0f} vs {w[f]:,.0f} ({(h[f] - w[f]) / w[f] * 100:+.3f} %)"
                              for name, f in (("delivered", "delivered_kwh"), ("boiler", "boiler_kwh"),
                                              ("dumped", "dumped_kwh")) if w[f])
            print(f"{'':20s}{c}: chunked vs unbroken: {diffs}; ERF {h['erf']:.4f} vs {w['erf']:.4f}; "
                  f"mode changes {h['mode_changes']} vs {w['mode_changes']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="pool-year")
    ap.add_argument("--ticks", default="60,30", help="control ticks to run, seconds, comma-separated")
    ap.add_argument("--hours", type=float, default=None, help="simulated hours (default: the scenario's, a year)")
    ap.add_argument("--no-baseline", action="store_true", help="run heatctl's controller only")
    ap.add_argument("--estimate-hours", type=float, default=1.0,
                    help="simulated hours at the config's own tick, to extrapolate a year (0: skip)")
    ap.add_argument("--chunks", type=int, default=2,
                    help="also run each controller's year split into this many chunks in parallel, each "
                         "warmed up first, and print the difference against the unsplit run (1: skip)")
    ap.add_argument("--chunks-only", action="store_true",
                    help="run only the chunked runs (compare with an unbroken run's figures by hand)")
    ap.add_argument("--warmup-h", type=float, default=48.0, help="warm-up before each chunk (simulated h)")
    args = ap.parse_args()
    ticks = [float(t) for t in args.ticks.split(",") if t.strip()]
    controllers = ["heatctl"] if args.no_baseline else ["heatctl", "baseline"]

    print(f"# heatctl year benchmark: scenario {args.scenario}  (python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    print("# one fresh process per run; heatctl and baseline side by side (2 processes); months in order")
    # spawn + one task per process: each run's peak RSS is its own, not a previous run's.
    ctx = multiprocessing.get_context("spawn")
    unbroken: dict[float, dict[str, dict]] = {}
    for tick in [] if args.chunks_only else ticks:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=len(controllers), mp_context=ctx, max_tasks_per_child=1) as ex:
            futures = [ex.submit(one_run, args.scenario, c, tick, args.hours) for c in controllers]
            results = [f.result() for f in futures]
        unbroken[tick] = {r["controller"]: r for r in results}
        both = time.perf_counter() - t0
        for r in results:
            print(f"tick {tick:4g} s  {r['controller']:8s} {r['hours']:6g} h = {r['steps']:8d} steps: "
                  f"wall {r['wall_s']:6.1f} s, CPU {r['cpu_s']:6.1f} s, {r['cpu_s'] / r['steps'] * 1e6:5.0f} us/step CPU, "
                  f"{r['steps'] / r['wall_s']:7.0f} steps/s; RSS {r['rss_before_mb']:.0f} MB before, "
                  f"peak {r['peak_rss_mb']:.0f} MB")
            print(f"{'':20s}delivered {r['delivered_kwh']:9.0f} kWh, boiler {r['boiler_kwh']:8.0f}, dumped "
                  f"{r['dumped_kwh']:7.0f}, ERF {r['erf']:.3f}, {r['mode_changes']} mode changes, {r['trips']} trips")
        year_scale = YEAR_H / results[0]["hours"]
        slowest = max(r["wall_s"] for r in results)
        print(f"tick {tick:4g} s  both side by side: {both:6.1f} s wall incl. process start-up; slowest run "
              f"{slowest:.1f} s" + (f" (a year at this rate: ~{slowest * year_scale:.0f} s)"
                                    if abs(year_scale - 1) > 1e-9 else ""))

    if args.chunks > 1:
        chunked(args, ticks, controllers, unbroken)

    if args.estimate_hours > 0:
        from controller.site.loader import load_config
        from controller.site.paths import default_config_path

        own = load_config(default_config_path()).site.tick_period_s
        r = one_run(args.scenario, "heatctl", own, args.estimate_hours)
        per = r["cpu_s"] / r["steps"]
        year_steps = YEAR_H * 3600.0 / own
        print(f"tick {own:4g} s  heatctl  {r['hours']:g} h = {r['steps']} steps: {per * 1e6:.0f} us/step CPU; "
              f"a year would be {year_steps / 1e6:.1f} M steps, ~{per * year_steps / 3600:.1f} CPU hours (not run)")


if __name__ == "__main__":
    main()
