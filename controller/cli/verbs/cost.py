"""`heatctl cost --scenario NAME | --kpis FILE [--hours H] [--cost FILE] [--json]`: the business case.

Runs the scenario in closed loop (or reads the KPIs a `heatctl simulate --json` wrote) and prints the
cost model's three cases (simulations/analysis/cost.py) from the simulated energies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from controller.cli.table import add_wide_argument, fit_text, is_wide

from controller.site.loader import load_config
from controller.site.paths import default_config_path
from controller.cli.verbs.arg_types import positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cost", help="capex, opex, avoided cost and payback from a simulated run")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario", help="run this scenario (see `heatctl simulate --list`)")
    src.add_argument("--kpis", metavar="FILE", help="read the KPIs of `heatctl simulate --json`, or a report's kpis.json, instead")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.add_argument("--cost", metavar="FILE", default=None, help="cost model (default: config/cost-model.yaml)")
    p.add_argument("--hours", type=positive_float, default=None, help="simulated hours (default: the scenario's)")
    p.add_argument("--tick", type=positive_float, default=None, help="control tick in seconds (default: the config's)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_wide_argument(p)
    p.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    from simulations.analysis.cost import DEFAULT_COST_MODEL, SimulatedEnergy, evaluate, format_report, load_cost_model

    if not args.scenario and not args.kpis:
        print("heatctl cost: one of --scenario NAME or --kpis FILE is required", file=sys.stderr)
        return 2
    model = load_cost_model(args.cost or DEFAULT_COST_MODEL)

    if args.kpis:
        try:
            data = json.loads(Path(args.kpis).read_text(encoding="utf-8"))
        except FileNotFoundError:
            print(f"heatctl cost: {args.kpis}: no such file", file=sys.stderr)
            return 2
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            print(f"heatctl cost: {args.kpis}: not a KPI JSON file: {exc}", file=sys.stderr)
            return 1
        if not isinstance(data, dict):
            print(f"heatctl cost: {args.kpis}: expected a JSON object (heatctl simulate --json)", file=sys.stderr)
            return 1
        report_meta = None
        if isinstance(data.get("controllers"), dict):
            # A report's kpis.json (heatctl simulate --report): heatctl's run in it, and what it covers.
            report_meta = data.get("meta")
            if "heatctl" not in data["controllers"]:
                print(f"heatctl cost: {args.kpis}: the report has no heatctl run", file=sys.stderr)
                return 1
            data = {"scenario": data.get("scenario"), **data["controllers"]["heatctl"]}
        try:
            energy = SimulatedEnergy.of(data)
        except ValueError as exc:
            print(f"heatctl cost: {args.kpis}: {exc}", file=sys.stderr)
            return 1
        title = f"cost model from {args.kpis}" + (f" (scenario {data['scenario']})" if data.get("scenario") else "")
        if report_meta:
            p = report_meta["period"]
            title += f", {p['start']} to {p['end']} ({p['hours']:g} h, scaled to a year)"
    else:
        from simulations.runners.closed_loop import run_scenario
        from simulations.scenarios.definitions import SCENARIOS

        scenario = SCENARIOS.get(args.scenario)
        if scenario is None:
            print(f"heatctl cost: unknown scenario {args.scenario!r}; expected one of: {', '.join(SCENARIOS)}",
                  file=sys.stderr)
            return 2
        if args.config is None and getattr(scenario, "config", None):
            from controller.site.paths import REPO_ROOT
            path = REPO_ROOT / scenario.config  # a year scenario of another site runs on its own config
        else:
            path = args.config or default_config_path()
        site = load_config(path).site
        kpis, _ = run_scenario(site, scenario, hours=args.hours, tick_s=args.tick)
        energy = SimulatedEnergy.of(kpis)
        title = f"cost model, scenario {scenario.name}: {scenario.description}"

    report = evaluate(model, energy)
    if args.json:
        out = report.as_dict()
        out["input"] = {"hours": energy.hours, "it_kwh": energy.it_kwh, "delivered_kwh": energy.delivered_kwh,
                        "pumps_fans_kwh": energy.pumps_fans_kwh, "demand_kwh": energy.demand_kwh}
        print(json.dumps(out, indent=2))
        return 0
    print(fit_text(format_report(report, title), wide=is_wide(args)))
    return 0
