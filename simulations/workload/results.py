"""Year results with the workload model: heatctl with the plan, without it, the baselines, the bound.

    python -m simulations.workload.results pool-year dhw-year [--days N --month M] [--out results.json]

Every run gets the same workload (same seed, same jobs). Printed per scenario: heat reused (the heat
the consumer wanted, minus its boiler: Kpis.reused_kwh), boiler energy, dumped heat, IT energy, the
batch share of IT energy, missed deadlines, hours the power cap held the servers below what the
workload asked (interactive included; and of those, the hours neither in a trip or safe state nor
in the cap's climb back after one at its slew rate: Kpis.throttled_safe_hours), the hottest IT
supply and the hours above the trips' alarms, every plan solve's status, and the bound with the
same freedom to move batch work (simulations.workload.bound). "Gap closed" is (plan - no plan) /
(bound - no plan), for reused heat and for boiler energy (the bound's boiler is demand minus its
reused heat).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from simulations.plant.loop import plant_config_of
from simulations.scenarios.profiles import day_start_s
from simulations.scenarios.year import SCENARIOS, site_for

RUNS = (("heatctl+plan", "heatctl", True), ("heatctl", "heatctl", False), ("g36", "g36", False),
        ("good-practice", "good-practice", False), ("naive", "baseline", False))


def _one(args) -> tuple[str, str, dict]:
    name, label, ctrl, plan, hours, start = args
    from simulations.runners.planned import run_with_workload

    sc = SCENARIOS[name]
    site = site_for(sc)
    t0 = time.perf_counter()
    k, _tr, wl, pc = run_with_workload(site, sc, ctrl, plan, hours=hours, start_s=start)
    cfg = plant_config_of(site)
    span = cfg.server_max_w - cfg.server_idle_w
    out = dict(reused_kwh=k.reused_kwh, boiler_kwh=k.boiler_kwh, dumped_kwh=k.dumped_kwh, it_kwh=k.it_kwh,
               demand_kwh=k.demand_kwh, delivered_kwh=k.delivered_kwh, throttled_h=k.throttled_hours,
               it_lost_kwh=k.it_lost_kwh, trips=k.trips, iae_below_kh=k.iae_below_kh,
               batch_kwh=wl.stats.batch_node_h * span / 1000.0, missed=wl.stats.missed,
               jobs=wl.stats.jobs_arrived, queued_at_end_kwh=sum(j.remaining_node_h for j in wl.queue) * span / 1000.0,
               safe_degrade_h=k.mode_hours.get("safe_degrade", 0.0), throttled_safe_h=k.throttled_safe_hours,
               max_it_supply_c=k.max_it_supply_c, above_alarm_h=sum(k.hours_above_alarm.values()),
               wall_s=time.perf_counter() - t0)
    if pc is not None:
        s = sorted(pc.solve_s)
        out.update(solves=len(s), solve_median_s=s[len(s) // 2], solve_max_s=s[-1],
                   plan_failed=pc.keeper.counters.failed, plan_fallbacks=pc.keeper.counters.fallbacks,
                   plan_statuses=dict(pc.statuses), plan_failures=pc.failures)
    return name, label, out


def gap_closed(plan: float, base: float, bound: float) -> float:
    return (plan - base) / (bound - base) if abs(bound - base) > 1e-9 else float("nan")


def with_derived(run: dict) -> dict:
    """A copy of one run's figures with the table's derived ones added: the batch share of IT energy
    (%), and the capped hours not explained by a trip or safe state. The run itself is not changed (it
    is also what --out writes)."""
    out = dict(run)
    if "batch_kwh" in run and "it_kwh" in run:
        out["batch_share"] = run["batch_kwh"] / run["it_kwh"] * 100 if run["it_kwh"] else 0.0
    if "throttled_h" in run and "throttled_safe_h" in run:
        out["throttled_control_h"] = run["throttled_h"] - run["throttled_safe_h"]
    return out


def format_table(name: str, runs: dict, bound: dict | None) -> str:
    """The scenario's table as text; `runs` and `bound` are read, never written."""
    runs = {label: with_derived(run) for label, run in runs.items()}
    labels = list(runs)
    lines = [f"{name}", f"  {'':26s}" + "".join(f"{n:>15s}" for n in labels) + (f"{'bound':>15s}" if bound else "")]

    def row(label, key, fmt="{:,.0f}", bkey=None):
        # A run from a file written before a key existed (--merge) shows "-" for it.
        cells = "".join(f"{fmt.format(runs[n][key]) if key in runs[n] else '-':>15s}" for n in labels)
        b = f"{fmt.format(bound[bkey]):>15s}" if bound and bkey else (f"{'':>15s}" if bound else "")
        lines.append(f"  {label:26s}{cells}{b}")

    row("heat reused (kWh)", "reused_kwh", bkey="reused_kwh")
    row("boiler (kWh)", "boiler_kwh", bkey="boiler_kwh")
    row("dumped (kWh)", "dumped_kwh")
    row("IT energy (kWh)", "it_kwh")
    row("batch share of IT (%)", "batch_share", "{:.1f}")
    row("batch left queued (kWh)", "queued_at_end_kwh")
    row("missed deadlines", "missed", "{:d}")
    row("capped hours", "throttled_h", "{:.2f}")
    row("  not by trip/safe state", "throttled_control_h", "{:.2f}")
    row("IT not run (kWh)", "it_lost_kwh")
    row("max IT supply (degC)", "max_it_supply_c", "{:.1f}")
    row("hours above alarms", "above_alarm_h", "{:.2f}")
    if bound and "heatctl+plan" in runs and "heatctl" in runs:
        p, h = runs["heatctl+plan"], runs["heatctl"]
        gr = gap_closed(p["reused_kwh"], h["reused_kwh"], bound["reused_kwh"])
        gb = gap_closed(-p["boiler_kwh"], -h["boiler_kwh"], -bound["boiler_kwh"])
        lines.append(f"  gap to the bound closed by the plan: heat reused {gr * 100:.0f} %, boiler {gb * 100:.0f} %")
    if "heatctl+plan" in runs and "solves" in runs["heatctl+plan"]:
        p = runs["heatctl+plan"]
        lines.append(f"  plan solves {p['solves']:,d}: median {p['solve_median_s'] * 1000:.1f} ms, max "
                     f"{p['solve_max_s'] * 1000:.1f} ms; failed {p['plan_failed']}, fallbacks to the rules {p['plan_fallbacks']}")
        if p.get("plan_statuses"):
            lines.append("  solve statuses: " + ", ".join(f"{why} {n:,d}" for why, n in sorted(p["plan_statuses"].items())))
        for when, why, took in p.get("plan_failures", [])[:5]:
            lines.append(f"  failed solve at day {when / 86400:.3f}: {why} after {took:.2f} s")
    base = [n for n in labels if n not in ("heatctl+plan", "heatctl")]
    if base:
        best = max(base, key=lambda n: runs[n]["reused_kwh"])
        lines.append(f"  strongest baseline: {best}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="+")
    ap.add_argument("--days", type=float, default=None, help="a window of N days instead of the year")
    ap.add_argument("--month", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default=None, help="comma-separated run labels (default: all)")
    ap.add_argument("--merge", default=None, help="a JSON written by --out: its runs fill in the ones not run now")
    args = ap.parse_args(argv)
    work = []
    for name in args.scenarios:
        if name not in SCENARIOS:
            print(f"unknown scenario {name!r}", file=sys.stderr)
            return 2
        sc = SCENARIOS[name]
        hours = args.days * 24.0 if args.days else sc.hours
        start = day_start_s(args.month, 1) if args.days else sc.start_s
        only = set(args.only.split(",")) if args.only else None
        work += [(name, label, ctrl, plan, hours, start) for label, ctrl, plan in RUNS if only is None or label in only]
    # Run by label first, so the runs that matter most finish first (partial results are written).
    order = {label: i for i, (label, _c, _p) in enumerate(RUNS)}
    work.sort(key=lambda w: order[w[1]])
    ctx = multiprocessing.get_context("fork")
    results: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        for name, label, out in pool.map(_one, work):
            results.setdefault(name, {})[label] = out
            print(f"  done {name} {label} in {out['wall_s']:.0f} s", file=sys.stderr, flush=True)
            if args.out:
                with open(args.out + ".partial", "w") as fh:
                    json.dump(results, fh, indent=1, default=str)
    if args.merge:
        with open(args.merge) as fh:
            old = json.load(fh)
        for name, rep in old.items():
            if name in results:
                # A run made now wins over the file's; RUNS order kept.
                merged = {label: results[name].get(label, rep["runs"].get(label)) for label, _c, _p in RUNS
                          if label in rep["runs"] or label in results[name]}
                results[name] = merged
    from simulations.workload.bound import workload_bound
    report = {}
    for name, runs in results.items():
        sc = SCENARIOS[name]
        hours = args.days * 24.0 if args.days else sc.hours
        start = day_start_s(args.month, 1) if args.days else sc.start_s
        b = workload_bound(site_for(sc), sc, hours=hours, start_s=start)
        report[name] = {"runs": runs, "bound": b}
        print(format_table(name, runs, b))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
