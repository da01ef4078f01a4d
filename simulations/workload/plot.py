"""A plot of the plan at work: three January days of pool-year, heatctl with and without the plan.

    python -m simulations.workload.plot [--out docs/img/plan-pool-january.png]

Top: IT power (what the workload ran) and the pool's demand; bottom: boiler and dumped heat per hour.
"""

from __future__ import annotations

import argparse

from simulations.scenarios.profiles import day_start_s
from simulations.scenarios.year import SCENARIOS, site_for


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img/plan-pool-january.png")
    ap.add_argument("--scenario", default="pool-year")
    ap.add_argument("--month", type=int, default=1)
    ap.add_argument("--day", type=int, default=15)
    ap.add_argument("--days", type=float, default=3.0)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simulations.runners.planned import run_with_workload

    sc = SCENARIOS[args.scenario]
    site = site_for(sc)
    start = day_start_s(args.month, args.day)
    runs = {}
    for label, plan in (("heatctl + plan", True), ("heatctl, no plan", False)):
        k, tr, wl, _ = run_with_workload(site, sc, "heatctl", plan, hours=24 * args.days, start_s=start)
        runs[label] = (k, tr)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for label, (k, tr) in runs.items():
        hrs = [(t - start) / 3600.0 for t in tr.t_s]
        a1.plot(hrs, [e for e in tr.energy_kwh["it"]], label=f"IT power, {label}")
        a2.plot(hrs, tr.energy_kwh["boiler"], label=f"boiler, {label} ({k.boiler_kwh:,.0f} kWh)")
        a2.plot(hrs, tr.energy_kwh["dumped"], linestyle=":", label=f"dumped, {label} ({k.dumped_kwh:,.0f} kWh)")
    k, tr = runs["heatctl + plan"]
    a1.plot([(t - start) / 3600.0 for t in tr.t_s], [d / 1000.0 for d in tr.demand_w], color="k", linewidth=0.8,
            label="pool demand")
    a1.set_ylabel("kW")
    a2.set_ylabel("kWh per hour")
    a2.set_xlabel(f"hours from {args.month}/{args.day} 00:00 ({args.scenario})")
    a1.legend(fontsize=7, loc="upper right")
    a2.legend(fontsize=7, loc="upper right")
    a1.set_title("Compute follows heat: batch work moved into the hours the pool wants heat")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
