"""`heatctl shelve ALARM --for DURATION --reason TEXT`: suppress an alarm for a while (ISA-18.2 shelving).

The shelving expires on its own (at most the alarm's max_shelve_s); the alarm then comes back in the
state its condition implies: unacknowledged if it is still active. Audited with who and why.
"""

from __future__ import annotations

import argparse

from controller.ops.api_client import add_json_argument, add_socket_argument, duration_type, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("shelve", help="shelve an alarm for a while (it comes back on its own)")
    p.add_argument("alarm", metavar="ALARM", help="alarm name (see `heatctl alarms`)")
    p.add_argument("--for", dest="duration", required=True, type=duration_type, metavar="DURATION",
                   help="how long: 30m, 2h (every shelving expires)")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_change(args, {"op": "shelve", "alarm": args.alarm, "duration_s": args.duration,
                             "reason": args.reason})
