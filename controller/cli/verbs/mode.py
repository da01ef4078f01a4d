"""`heatctl mode NAME --reason TEXT`: go to a mode and hold it there (commissioning), if safe."""

from __future__ import annotations

import argparse

from controller.ops.api_client import add_json_argument, add_socket_argument, reason_type, run_change
from controller.core.modes import Mode


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mode", help="request a mode and hold it (refused with the reason if unsafe)")
    p.add_argument("mode", choices=[m.value for m in Mode], metavar="NAME",
                   help=f"one of: {', '.join(m.value for m in Mode)}")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_change(args, {"op": "mode", "mode": args.mode, "reason": args.reason})
