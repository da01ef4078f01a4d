"""`heatctl override POINT VALUE --for DURATION --reason TEXT` and `heatctl override clear POINT --reason`.

Every override expires (DURATION like 90s, 15m, 2h, at most the config's outputs.max_override_s);
trips and safe_degrade still win over it.
"""

from __future__ import annotations

import argparse
import math
import sys

from controller.ops.api_client import add_json_argument, add_socket_argument, duration_type, reason_type, run_change


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "override", help="set an actuator by hand for a while (or: override clear POINT)",
        description="override POINT VALUE --for DURATION --reason TEXT | override clear POINT --reason TEXT")
    p.add_argument("point", metavar="POINT", help="actuator point name, or 'clear'")
    p.add_argument("value", metavar="VALUE", help="value in the point's unit (or, after 'clear', the point)")
    p.add_argument("--for", dest="duration", type=duration_type, metavar="DURATION",
                   help="how long: 90s, 15m, 2h (required when setting)")
    p.add_argument("--reason", required=True, type=reason_type, help="why (audited)")
    add_socket_argument(p)
    add_json_argument(p)
    p.set_defaults(func=run)


def _usage_error(message: str) -> int:
    print(f"heatctl override: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.point == "clear":
        if args.duration is not None:
            return _usage_error("--for makes no sense with 'override clear POINT'")
        return run_change(args, {"op": "override_clear", "point": args.value, "reason": args.reason})
    try:
        value = float(args.value)
    except ValueError:
        return _usage_error(f"VALUE must be a number, got {args.value!r}")
    if not math.isfinite(value):
        return _usage_error(f"VALUE must be a finite number, got {args.value!r}")
    if args.duration is None:
        return _usage_error("--for DURATION is required (every override expires), e.g. --for 15m")
    return run_change(args, {"op": "override", "point": args.point, "value": value,
                             "duration_s": args.duration, "reason": args.reason})
