"""`heatctl hold --reason TEXT`: stay in the current mode (no automatic transitions but to safe_degrade)."""

from __future__ import annotations

import argparse

from controller.ops.api_client import add_json_argument, add_socket_argument, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("hold", help="hold the current mode (safe_degrade still overrides)")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_change(args, {"op": "hold", "reason": args.reason})
