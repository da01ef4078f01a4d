"""`heatctl check-config [--config FILE] [--json]`: validate a site config; exit 0 with a summary,
1 with the problems (one line each). The positional FILE is kept as an alias of --config."""

from __future__ import annotations

import argparse
import json

from controller.site.loader import ConfigError, load_config
from controller.site.paths import default_config_path
from simulations.plant.config import SIMULATION_EXTENSION


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check-config", help="validate a site configuration file")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="site configuration (default: $HEATCTL_CONFIG, else /etc/heatctl/site.yaml if "
                        "present, else the shipped reference plant)")
    p.add_argument("file", nargs="?", default=None, metavar="FILE", help="the same as --config FILE")
    p.add_argument("--json", action="store_true",
                   help='{"ok": bool, "file", "problems": [lines], "summary": {...}} on stdout')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        raise SystemExit(f"heatctl check-config: FILE {args.file!r} and --config {args.config!r} differ")
    path = str(args.config or args.file or default_config_path())
    try:
        loaded = load_config(path, SIMULATION_EXTENSION)
    except ConfigError as exc:
        if not args.json:
            raise
        print(json.dumps({"ok": False, "file": path, "problems": list(exc.problems)}, indent=2))
        return 1
    site = loaded.site
    summary = {"site": site.site.name, "policy": site.site.policy.value, "points": len(site.points),
               "drivers": len(site.drivers), "trips": len(site.trips), "tick_s": site.tick_period_s,
               "sha256": loaded.sha256}
    if args.json:
        print(json.dumps({"ok": True, "file": path, "problems": [], "summary": summary}, indent=2))
        return 0
    print(
        f"{path}: OK: site {site.site.name!r}, policy {site.site.policy.value}, "
        f"{len(site.points)} points, {len(site.drivers)} drivers, {len(site.trips)} trips, "
        f"tick {site.tick_period_s:g} s, sha256 {loaded.sha256[:12]}"
    )
    return 0
