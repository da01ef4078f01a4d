"""`heatctl check-config FILE`: validate a site config; exit 0 with a summary, 1 with the problems."""

from __future__ import annotations

import argparse

from controller.site.loader import load_config
from simulations.plant.config import SIMULATION_EXTENSION


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check-config", help="validate a site configuration file")
    p.add_argument("file", help="site configuration (YAML)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.file, SIMULATION_EXTENSION)
    site = loaded.site
    print(
        f"{args.file}: OK: site {site.site.name!r}, policy {site.site.policy.value}, "
        f"{len(site.points)} points, {len(site.drivers)} drivers, {len(site.trips)} trips, "
        f"tick {site.tick_period_s:g} s, sha256 {loaded.sha256[:12]}"
    )
    return 0
