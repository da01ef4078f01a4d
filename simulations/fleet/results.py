"""The fleet year: independent sites against heat-aware placement, printed side by side.

    python -m simulations.fleet.results [--days N --month M] [--tick 60] [--out fleet.json]

Four sites of the shipped templates (simulations.fleet.runner.FLEET_SCENARIOS: the pool of the
reference plant, the hot-water CPU rack, the immersion-cooled space heating, the district module),
each with its own year profiles and its own batch jobs, run twice on the same jobs:
(a) independent: each site runs its own batch work on its own nodes and caps on its own;
(b) heat-aware: one Slurm queue over every site's nodes, placed by Slurm's rule (lowest node weight
    that fits, ties by node order) with each site's node weight from its value of heat.
Printed per policy: fleet heat reused (heat the consumers wanted minus their boilers), boiler and
dumped energy, IT energy, hours the power cap held a site's servers below what its workload asked
(capping throttles interactive work with the rest: site-hours summed), missed deadlines, and the
share of batch work that ran away from home. The two policies run in two processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from simulations.scenarios.profiles import day_start_s

POLICY_LABEL = {"home": "(a) independent", "weight": "(b) heat-aware"}


def _one(args) -> tuple[str, dict]:
    policy, hours, start, tick = args
    from simulations.fleet.runner import run_fleet

    t0 = time.perf_counter()
    runs, wl = run_fleet(policy, hours=hours, start_s=start, tick_s=tick)
    sites = {}
    for r in runs:
        k = r.kpis
        sites[r.name] = dict(reused_kwh=k.reused_kwh, boiler_kwh=k.boiler_kwh, dumped_kwh=k.dumped_kwh,
                             it_kwh=k.it_kwh, demand_kwh=k.demand_kwh, throttled_h=k.throttled_hours,
                             it_lost_kwh=k.it_lost_kwh, trips=dict(k.trips),
                             safe_degrade_h=k.mode_hours.get("safe_degrade", 0.0),
                             weight_hours={str(w): h for w, h in r.weights_seen.items()})
    st = wl.stats
    keys = ("reused_kwh", "boiler_kwh", "dumped_kwh", "it_kwh", "demand_kwh", "throttled_h", "it_lost_kwh")
    fleet = {key: sum(s[key] for s in sites.values()) for key in keys}
    fleet.update(missed=st.missed, jobs=st.jobs_arrived, jobs_done=st.jobs_done, batch_node_h=st.batch_node_h,
                 away_share=st.away_node_h / st.batch_node_h if st.batch_node_h else 0.0,
                 spanning_jobs=st.spanning_jobs, max_wait_h=st.max_wait_h,
                 queued_at_end=len(wl.queue), running_at_end=len(wl.running),
                 trips=sum(sum(s["trips"].values()) for s in sites.values()),
                 wall_s=time.perf_counter() - t0)
    return policy, {"fleet": fleet, "sites": sites}


def format_table(report: dict, title: str) -> str:
    pols = [p for p in ("home", "weight") if p in report]
    lines = [title, f"  {'':34s}" + "".join(f"{POLICY_LABEL[p]:>18s}" for p in pols)]

    def row(label, get, fmt="{:,.0f}"):
        lines.append(f"  {label:34s}" + "".join(f"{fmt.format(get(report[p])):>18s}" for p in pols))

    row("fleet heat reused (kWh)", lambda r: r["fleet"]["reused_kwh"])
    row("fleet boiler (kWh)", lambda r: r["fleet"]["boiler_kwh"])
    row("fleet dumped (kWh)", lambda r: r["fleet"]["dumped_kwh"])
    row("fleet IT energy (kWh)", lambda r: r["fleet"]["it_kwh"])
    row("capped site-hours (interactive too)", lambda r: r["fleet"]["throttled_h"], "{:,.2f}")
    row("missed deadlines", lambda r: r["fleet"]["missed"], "{:d}")
    row("batch jobs", lambda r: r["fleet"]["jobs"], "{:,d}")
    row("batch node-hours away from home (%)", lambda r: r["fleet"]["away_share"] * 100, "{:.1f}")
    row("jobs spanning two sites", lambda r: r["fleet"]["spanning_jobs"], "{:,d}")
    row("trips", lambda r: r["fleet"]["trips"], "{:d}")
    for site in report[pols[0]]["sites"]:
        for key, what in (("reused_kwh", "heat reused"), ("boiler_kwh", "boiler"), ("dumped_kwh", "dumped")):
            row(f"  {site}: {what} (kWh)", lambda r, s=site, k=key: r["sites"][s][k])
    if len(pols) == 2:
        a, b = (report[p]["fleet"] for p in pols)
        lines.append(f"  heat-aware - independent: heat reused {b['reused_kwh'] - a['reused_kwh']:+,.0f} kWh, "
                     f"boiler {b['boiler_kwh'] - a['boiler_kwh']:+,.0f} kWh, "
                     f"dumped {b['dumped_kwh'] - a['dumped_kwh']:+,.0f} kWh")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=None, help="a window of N days instead of the year")
    ap.add_argument("--month", type=int, default=1, help="the window's first month (with --days)")
    ap.add_argument("--tick", type=float, default=60.0, help="control tick (s; the year scenarios' 60 s)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (one per policy)")
    ap.add_argument("--out", default=None, help="write the figures as JSON")
    ap.add_argument("--show", default=None, help="print the table of a JSON written by --out, run nothing")
    args = ap.parse_args(argv)
    if args.show:
        with open(args.show) as fh:
            saved = json.load(fh)
        days = saved["hours"] / 24.0
        print(format_table(saved["policies"], f"fleet of {len(next(iter(saved['policies'].values()))['sites'])} sites, "
                                              f"{days:g} days, {saved['tick_s']:g} s tick"))
        return 0
    from simulations.scenarios.definitions import SCENARIOS
    from simulations.fleet.runner import FLEET_SCENARIOS
    import simulations.scenarios.year  # noqa: F401 - registers the year scenarios

    base = SCENARIOS[FLEET_SCENARIOS[0]]
    hours = args.days * 24.0 if args.days else base.hours
    start = day_start_s(args.month, 1) if args.days else base.start_s
    work = [(p, hours, start, args.tick) for p in ("home", "weight")]
    ctx = multiprocessing.get_context("fork")
    report: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=ctx) as pool:
        for policy, out in pool.map(_one, work):
            report[policy] = out
            print(f"  done {POLICY_LABEL[policy]} in {out['fleet']['wall_s']:.0f} s", file=sys.stderr, flush=True)
    span = f"{args.days:g} days from month {args.month}" if args.days else "a year"
    print(format_table(report, f"fleet of {len(FLEET_SCENARIOS)} sites ({', '.join(FLEET_SCENARIOS)}), {span}, "
                               f"{args.tick:g} s tick"))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"hours": hours, "start_s": start, "tick_s": args.tick, "policies": report}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
