"""`heatctl unshelve ALARM --reason TEXT`: end a shelving early; the alarm shows its condition again."""

from __future__ import annotations

import argparse

from controller.ops.api_client import add_json_argument, add_socket_argument, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("unshelve", help="end an alarm's shelving now")
    p.add_argument("alarm", metavar="ALARM", help="alarm name (see `heatctl alarms`)")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_change(args, {"op": "unshelve", "alarm": args.alarm, "reason": args.reason})
