"""`heatctl ack NAME --reason TEXT`: acknowledge a latched trip (it resets once its condition is
clear) or an alarm (unacknowledged -> acknowledged, returned-unacknowledged -> normal).

NAME is looked up among the daemon's alarms and trips; a name that is both is refused (the config
check forbids it, this guards a daemon running an older config).
"""

from __future__ import annotations

import argparse
import sys

from controller.ops.api_client import ApiError, add_json_argument, add_socket_argument, call, reason_type, run_change, socket_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ack", help="acknowledge a latched trip or an alarm")
    p.add_argument("trip", metavar="NAME", help="trip or alarm name (see `heatctl status`, `heatctl alarms`)")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = args.trip
    try:
        resp = call(socket_path(args.socket), {"op": "alarms"})
    except ApiError as exc:
        print(f"heatctl: {exc}", file=sys.stderr)
        return exc.exit_code
    # A daemon without alarms answers "unknown op": then NAME can only be a trip.
    alarms = {a.get("name") for a in resp.get("alarms") or []} if resp.get("ok") else set()
    trips = set(resp.get("trips") or []) if resp.get("ok") else set()
    if name in alarms and name in trips:
        print(f"heatctl: ack {name}: ambiguous, {name!r} is both a trip and an alarm; refused", file=sys.stderr)
        return 1
    if name in alarms:
        return run_change(args, {"op": "alarm_ack", "alarm": name, "reason": args.reason})
    return run_change(args, {"op": "ack", "trip": name, "reason": args.reason})
