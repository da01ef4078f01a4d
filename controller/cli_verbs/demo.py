"""`heatctl demo`: show the closed loop at work on the simulated reference plant.

Runs the summer-day scenario (the tank charges, then surplus heat goes to the dump) and a pump
failure, on simulated time, and prints what happened. Once the daemon lands, the demo runs the
daemon against the simulated plant on the wire instead.
"""

from __future__ import annotations

import argparse
import time

from controller.cli_verbs.simulate import format_kpis
from controller.config_loader import ConfigError, load_config
from controller.paths import default_config_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="show the controller at work on the simulated plant")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulations.closed_loop import run_scenario
    from simulations.scenarios import SCENARIOS

    path = args.config or default_config_path()
    try:
        site = load_config(path).site
    except ConfigError as exc:
        print("\n".join(exc.problems))
        return 1
    print(f"heatctl demo: the control step against the simulated plant of {path}\n")
    for name, hours, tick in (("summer-day", 12.0, 5.0), ("pump-failure", 5.0, None)):
        scenario = SCENARIOS[name]
        started = time.perf_counter()
        kpis, _ = run_scenario(site, scenario, hours=hours, tick_s=tick)
        print(format_kpis(name, scenario.description, kpis, time.perf_counter() - started))
        print()
    print("More: heatctl simulate --list; heatctl simulate --scenario NAME [--hours H] [--json]")
    return 0
