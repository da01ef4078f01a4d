"""`heatctl trip-test TRIP --reason TEXT`: make the step see a trip's condition for one tick.

The trip latches and its actions are applied exactly as for the real condition; the output shows the
actions taken that tick. Acknowledge it afterwards with `heatctl ack TRIP`.
"""

from __future__ import annotations

import argparse

from controller.ops.api_client import add_socket_argument, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("trip-test", help="prove a trip: latch it for real and show its actions")
    p.add_argument("trip", metavar="TRIP", help="trip name")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
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


def run(args: argparse.Namespace) -> int:
    return run_change(args, {"op": "trip_test", "trip": args.trip, "reason": args.reason}, describe=_show)
