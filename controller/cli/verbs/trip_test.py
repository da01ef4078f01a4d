"""`heatctl trip-test TRIP --reason TEXT`: make the step see a trip's condition for one tick.

The trip latches and its actions are applied exactly as for the real condition; the output shows the
actions taken that tick. Acknowledge it afterwards with `heatctl ack TRIP`. `--dry-run` shows what the trip would drive, from the config, without a daemon.
"""

from __future__ import annotations

import argparse
import sys

from controller.cli.table import add_wide_argument, fit, is_wide
from controller.ops.api_client import add_json_argument, add_socket_argument, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("trip-test", help="prove a trip: latch it for real and show its actions")
    p.add_argument("trip", metavar="TRIP", help="trip name")
    p.add_argument("--reason", default=None, type=reason_type, help="why (audited; required unless --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="show the trip's condition and the actions it would drive (from --config); change nothing")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="with --dry-run: site configuration (default: $HEATCTL_CONFIG, else "
                        "/etc/heatctl/site.yaml if present, else the shipped reference plant)")
    add_socket_argument(p)
    add_json_argument(p)
    add_wide_argument(p)
    p.set_defaults(func=run)


def _show(resp: dict) -> None:
    actions = resp.get("actions") or {}
    if actions:
        print("actions taken that tick:")
        for point, a in sorted(actions.items()):
            print(f"  {point:16s} = {a['value']:g}   (trip {a['why']})")
    for e in resp.get("events") or []:
        print(f"  event {e['kind']}: {e['message']}")
    print(f"the trip stays latched: `heatctl ack TRIP --reason ...` resets it once its condition is clear")


def dry_run(args: argparse.Namespace) -> int:
    import json

    from controller.site.loader import load_config
    from controller.site.paths import default_config_path

    path = str(args.config or default_config_path())
    site = load_config(path).site
    trip = site.trips.get(args.trip)
    if trip is None:
        print(f"heatctl trip-test: {path}: no trip {args.trip!r} (trips: {', '.join(sorted(site.trips))})",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"trip": args.trip, "config": path, "actions": dict(trip.actions)}, indent=2))
        return 0
    print("\n".join(fit(f"dry run: trip {args.trip} ({path}) would drive, in the tick it is seen:",
                        wide=is_wide(args))))
    for point, value in sorted(trip.actions.items()):
        print(f"  {point:16s} = {value:g}")
    print("and stay latched until `heatctl ack` after its condition clears. Nothing was changed.")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return dry_run(args)
    if not args.reason:
        print("heatctl trip-test: --reason is required (unless --dry-run)", file=sys.stderr)
        return 2
    return run_change(args, {"op": "trip_test", "trip": args.trip, "reason": args.reason}, describe=_show)
