"""`heatctl ack TRIP --reason TEXT`: acknowledge a latched trip (it resets once its condition is clear)."""

from __future__ import annotations

import argparse

from controller.api_client import add_socket_argument, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ack", help="acknowledge a latched trip")
    p.add_argument("trip", metavar="TRIP", help="trip name (see `heatctl status`)")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_change(args, {"op": "ack", "trip": args.trip, "reason": args.reason})
