"""`heatctl sweep --scenario NAME --set KEY=A..B/STEP [--hours H] [--json]`: what-if runs of one config key.

One closed-loop run per value of KEY (a YAML path into the site config), two at a time, and a table
of the main KPIs (simulations/analysis/sweep.py). A value that makes the config invalid is its row, with the
loader's reason; a KEY that is not in the config, or a bad range, is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from controller.cli.table import Col, add_wide_argument, is_wide, render
from controller.site.paths import default_config_path
from controller.cli.verbs.arg_types import positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sweep", help="run a scenario once per value of one config key and compare KPIs")
    p.add_argument("--scenario", required=True, help="scenario name (see `heatctl simulate --list`)")
    p.add_argument("--set", dest="set_spec", required=True, metavar="KEY=A..B/STEP",
                   help="YAML path and values, e.g. modes.tank_full_temp_c=40..50/2 or site.policy=compute_first,heat_first")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.add_argument("--hours", type=positive_float, default=None, help="simulated hours (default: the scenario's)")
    p.add_argument("--tick", type=positive_float, default=None, help="control tick in seconds (default: the config's)")
    p.add_argument("--policy", choices=["compute_first", "heat_first"], default=None,
                   help="run under this site policy instead of the config's")
    p.add_argument("--window", action="store_true",
                   help="run only the scenario's short test window (year scenarios)")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (default 2)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    add_wide_argument(p)
    p.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    return sweep_main(args.scenario, args.set_spec, config=args.config, hours=args.hours, tick_s=args.tick,
                      as_json=args.json, workers=args.workers, prog="heatctl sweep", policy=args.policy,
                      window=args.window, wide=is_wide(args))


SWEEP_UNITS = ("kWh", "kWh", "kWh", "", "K.h", "h", "", "")


def format_sweep(spec, rows, wide: bool = False) -> list[str]:
    """One line per value: the main KPIs; an invalid value's line is its reason."""
    cols = (Col(spec.key_text, right=True, cap=24), Col("delivered", right=True), Col("dumped", right=True),
            Col("boiler", right=True), Col("ERF", right=True), Col("deficit", right=True),
            Col("throttled", right=True), Col("modes/day", right=True, drop=1), Col("trips", wrap=True))
    body = [("", *SWEEP_UNITS)]
    for r in rows:
        v = f"{r.value:g}" if isinstance(r.value, (int, float)) and not isinstance(r.value, bool) else str(r.value)
        if r.error is not None:
            body.append((v, "", "", "", "", "", "", "", f"invalid: {r.error}"))
            continue
        k = r.kpis or {}
        trips = f"{k['trips']}" + (f" ({', '.join(k['trip_names'])})" if k["trips"] else "")
        body.append((v, f"{k['delivered_kwh']:.1f}", f"{k['dumped_kwh']:.1f}", f"{k['boiler_kwh']:.1f}",
                     f"{k['erf']:.3f}", f"{k['comfort_deficit_kh']:.2f}", f"{k['throttled_hours']:.2f}",
                     f"{k['mode_changes_per_day']:.1f}", trips))
    return render(cols, body, wide=wide)


def sweep_main(scenario: str, set_spec: str, config: str | None = None, hours: float | None = None,
               tick_s: float | None = None, as_json: bool = False, workers: int = 2,
               prog: str = "heatctl sweep", policy: str | None = None, window: bool = False,
               wide: bool = False) -> int:
    """The sweep as a verb: prints the table (or JSON); returns the exit code. Also used by `simulate --sweep`."""
    from controller.site.loader import load_config
    from simulations.plant.config import SIMULATION_EXTENSION
    from simulations.analysis.sweep import SweepError, find_scenario, parse_set, run_sweep

    try:
        spec = parse_set(set_spec)
    except SweepError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    sc = find_scenario(scenario)
    if sc is None:
        from simulations.analysis.sweep import scenario_names
        print(f"{prog}: unknown scenario {scenario!r}; expected one of: {', '.join(scenario_names())}",
              file=sys.stderr)
        return 2
    if window:
        if getattr(sc, "window", None) is None:
            print(f"{prog}: scenario {scenario!r} has no test window (--window is for year scenarios)",
                  file=sys.stderr)
            return 2
        from simulations.scenarios.year import window_of
        sc = window_of(sc)
    if policy is not None and spec.key == ("site", "policy"):
        print(f"{prog}: --policy and a sweep of site.policy contradict each other; drop --policy", file=sys.stderr)
        return 2
    if config is None and getattr(sc, "config", None):
        from controller.site.paths import REPO_ROOT
        config = str(REPO_ROOT / sc.config)
    path = Path(config) if config else default_config_path()
    loaded = load_config(path, SIMULATION_EXTENSION)  # the base must be valid before any value is tried
    started = time.perf_counter()
    progress = None
    if sys.stderr.isatty() and not as_json:
        done = [0]

        def progress(row) -> None:
            done[0] += 1
            sys.stderr.write(f"\r  {done[0]} run(s) done")
            sys.stderr.flush()
    try:
        rows = run_sweep(loaded.text, spec, scenario, hours=hours, tick_s=tick_s, workers=max(1, workers),
                         path=str(path), progress=progress, window=window,
                         base_set={("site", "policy"): policy} if policy is not None else None)
    except SweepError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - started
    if progress is not None:
        sys.stderr.write("\r" + " " * 40 + "\r")
    if as_json:
        print(json.dumps({
            "scenario": scenario, "key": spec.key_text, "config": str(path), "hours": hours, "tick_s": tick_s,
            "policy": policy, "window": window,
            "wall_s": round(wall, 2),
            "rows": [{"value": r.value, "error": r.error, **(r.kpis or {})} for r in rows],
        }, indent=2))
        return 0
    h = hours if hours is not None else sc.hours
    print(f"sweep {spec.key_text} over {len(rows)} value(s), scenario {scenario} ({h:g} h"
          f"{'' if tick_s is None else f', {tick_s:g} s tick'}), {wall:.1f} s wall")
    print("\n".join(format_sweep(spec, rows, wide=wide)))
    return 0
