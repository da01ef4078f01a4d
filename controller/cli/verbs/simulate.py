"""`heatctl simulate --scenario NAME [--hours H] [--report DIR] [--json]`: the closed loop on simulated time.

Year scenarios (Scenario.compare) run heatctl and every baseline (simulations.baselines.registry) in
two processes and compute the bound no controller can beat (an LP: simulations.analysis.lp_bound);
every run prints its KPI table and writes a report folder (default
reports/NAME/: KPIs as JSON and Markdown, PNG plots; simulations/analysis/kpi_report.py). The progress bar is
drawn on a terminal only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.table import Col, add_wide_argument, fit, fit_text, is_wide, render
from controller.site.loader import load_config
from simulations.plant.config import SIMULATION_EXTENSION
from controller.site.paths import REPO_ROOT, default_config_path
from controller.cli.verbs.arg_types import positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="run the controller against the plant model on simulated time")
    p.add_argument("--scenario", required=False, help="scenario name (see --list)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.add_argument("--hours", type=positive_float, default=None, help="simulated hours (default: the scenario's)")
    p.add_argument("--tick", type=positive_float, default=None, help="control tick in seconds (default: the config's)")
    p.add_argument("--policy", choices=["compute_first", "heat_first"], default=None,
                   help="run under this site policy instead of the config's")
    p.add_argument("--json", action="store_true", help="print the KPIs as JSON")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write the report folder here (default: reports/NAME/)")
    p.add_argument("--no-report", action="store_true", help="print the KPIs only; write no report folder")
    p.add_argument("--compare", action=argparse.BooleanOptionalAction, default=None,
                   help="also run every baseline and compute the LP bound (default: on for year scenarios)")
    p.add_argument("--sweep", default=None, metavar="KEY=A..B/STEP",
                   help="an alias of `heatctl sweep --scenario NAME --set KEY=A..B/STEP` (the one sweep "
                        "syntax): run once per value of one config key and tabulate the KPIs")
    p.add_argument("--chunks", type=int, default=1, metavar="N",
                   help="with the comparison: run each controller's year in N chunks on both cores, each "
                        "warmed up for 48 h first (faster; energies match an unbroken run to ~0.01 %%, "
                        "not to the bit; bench/bench_year.py prints the difference)")
    p.add_argument("--window", action="store_true",
                   help="run only the scenario's short test window (a few days of its interesting season)")
    add_wide_argument(p)
    p.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    from simulations.runners.closed_loop import run_scenario
    from simulations.scenarios.definitions import SCENARIOS

    if args.list or not args.scenario:
        if not args.list:
            print("heatctl simulate: --scenario is required; one of:", file=sys.stderr)
        for name, s in SCENARIOS.items():
            print(f"  {name:26s} {s.hours:6g} h  {s.description}", file=sys.stdout if args.list else sys.stderr)
        return 0 if args.list else 2
    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        print(f"heatctl simulate: unknown scenario {args.scenario!r}; expected one of: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    if args.sweep is not None:
        from controller.cli.verbs.sweep import sweep_main
        return sweep_main(args.scenario, args.sweep, config=args.config, hours=args.hours, tick_s=args.tick,
                          as_json=args.json, prog="heatctl simulate --sweep", policy=args.policy,
                          window=args.window, wide=is_wide(args))
    from pathlib import Path

    from simulations.scenarios.year import window_of

    if args.window:
        scenario = window_of(scenario)
    if args.config is None and scenario.config:
        path = str(REPO_ROOT / scenario.config)
    else:
        path = args.config or default_config_path()
    loaded = load_config(path, SIMULATION_EXTENSION)
    site = loaded.site
    if args.policy is not None:
        from controller.site.models import Policy
        site = site.model_copy(update={"site": site.site.model_copy(update={"policy": Policy(args.policy)})})
    hours = args.hours if args.hours is not None else scenario.hours
    started = time.perf_counter()
    progress = None
    if sys.stderr.isatty() and not args.json:
        def progress(frac: float) -> None:
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r  simulating {scenario.name}: [{bar:30s}] {frac * 100:3.0f} %")
            sys.stderr.flush()
    compare = scenario.compare if args.compare is None else args.compare
    from simulations.runners.closed_loop import run_compare
    from simulations.analysis.kpi_report import Result, to_json, write_report

    if compare:
        c = run_compare(site, scenario, hours=hours, tick_s=args.tick, progress=progress,
                        chunks=max(1, args.chunks))
        result = Result(scenario.name, scenario.description, c.runs, c.bound, c.wall_s)
    else:
        kpis, trace = run_scenario(site, scenario, hours=hours, tick_s=args.tick, progress=progress)
        result = Result(scenario.name, scenario.description, {"heatctl": (kpis, trace)}, None,
                        time.perf_counter() - started)
    wall = time.perf_counter() - started
    result.wall_s = wall
    from simulations.analysis.kpi_report import report_meta
    result.meta = report_meta(start_s=scenario.start_s, hours=hours, tick_s=args.tick or site.tick_period_s,
                              config_path=str(path), config_sha256=loaded.sha256, window=bool(args.window))
    if progress is not None:
        sys.stderr.write("\r" + " " * 60 + "\r")
    kpis = result.runs["heatctl"][0]
    written = []
    if not args.no_report:
        out_dir = args.report or str(Path("reports") / scenario.name)
        try:
            written = write_report(result, site, out_dir)
        except OSError as exc:
            print(f"heatctl simulate: cannot write the report to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if args.json:
        # heatctl's KPIs at the top level (what `heatctl cost` reads), the comparison beside them.
        out = kpis.as_dict()
        out.update(scenario=scenario.name, wall_s=round(wall, 2), config=str(path))
        if compare:
            from simulations.analysis.yardsticks import lead
            out["comparison"] = to_json(result)
            out["comparison"]["lp_bound"] = c.lp_bound.as_dict() if c.lp_bound is not None else None
            out["comparison"]["lead"] = lead(result.runs)
        print(json.dumps(out, indent=2, default=str))
        return 0
    if compare:
        from simulations.analysis.yardsticks import format_yardsticks
        wide = is_wide(args)
        print("\n".join(format_comparison(result, wide=wide)))
        print(fit_text(format_yardsticks(result.runs, c.lp_bound), wide=wide))
        events = kpis.events
        if events:
            print("\n  heatctl events")
            print(fit_text("\n".join(f"    {e}" for e in events[:40]), wide=wide))
            if len(events) > 40:
                print(f"    ... {len(events) - 40} more")
    else:
        print(fit_text(format_kpis(scenario.name, scenario.description, kpis, wall), wide=is_wide(args)))
    if written:
        print()
        print("\n".join(fit(f"report: {Path(written[0]).parent}/ ({', '.join(Path(p).name for p in written)})",
                            indent=2, wide=is_wide(args))))
    return 0


def format_comparison(result, wide: bool = False) -> list[str]:
    """Every controller's KPIs side by side (and the bound's), then the headline ratios."""
    from simulations.analysis.kpi_report import ratio_lines, table_rows

    cols, rows = table_rows(result)
    k0 = next(iter(result.runs.values()))[0]
    out = [*fit(f"scenario {result.name}: {result.description}", wide=wide),
           f"  simulated {k0.hours:,.0f} h at a {k0.tick_s:g} s tick in {result.wall_s:.1f} s", ""]
    # The KPI names wrap, and list-valued cells (per trip, per actuator) wrap at 12 characters.
    out += render([Col(cols[0], wrap=True)] + [Col(c, right=True, cap=12) for c in cols[1:]], rows,
                  wide=wide, indent=2)
    ratios = ratio_lines(result)
    return out + ([""] + [line for r in ratios for line in fit(r, indent=2, wide=wide)] if ratios else [])


def format_kpis(name: str, description: str, k, wall_s: float) -> str:
    lines = [
        f"scenario {name}: {description}",
        f"  simulated {k.hours:g} h in {wall_s:.1f} s ({k.hours * 3600 / max(wall_s, 1e-9):,.0f}x real time)",
        "",
        "  energy                         kWh",
        f"  IT electrical             {k.it_kwh:10.1f}",
        f"  heat captured (IT loop)   {k.captured_kwh:10.1f}",
        f"  delivered to consumer     {k.delivered_kwh:10.1f}   (consumer demand {k.demand_kwh:.1f})",
        f"  into tank / out of tank   {k.to_tank_kwh:10.1f} / {k.from_tank_kwh:.1f}",
        f"  dumped                    {k.dumped_kwh:10.1f}",
        f"  boiler backup             {k.boiler_kwh:10.1f}",
        f"  pumps and fans            {k.pumps_fans_kwh:10.1f}",
        f"  ERF (reused / IT+aux)     {k.erf:10.3f}",
        f"  energy balance error      {k.energy_balance_error * 100:9.3f} %",
        "",
        "  modes (h)       " + "  ".join(f"{m} {h:.2f}" for m, h in k.mode_hours.items()),
        f"  mode changes    {k.mode_changes}",
        f"  trips           {', '.join(f'{t} x{n}' for t, n in k.trips.items()) or 'none'}",
        "  above limits    " + ", ".join(f"{t} {h:.2f} h" for t, h in k.hours_above_limit.items()),
        f"  max IT supply   {k.max_it_supply_c:.1f} degC",
        f"  supply IAE      {k.supply_iae_kh:.2f} K.h (below setpoint {k.comfort_deficit_kh:.2f} K.h)",
        f"  throttled       {k.throttled_hours:.2f} h, {k.it_lost_kwh:.1f} kWh of IT load not run",
    ]
    if k.events:
        lines += ["", "  events"] + [f"    {e}" for e in k.events[:40]]
        if len(k.events) > 40:
            lines.append(f"    ... {len(k.events) - 40} more")
    return "\n".join(lines)
