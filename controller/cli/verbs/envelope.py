"""`heatctl envelope [--json]`: the 24-hour capacity envelope the daemon computed (every 5 minutes).

For each hour ahead: the IT power the site can carry without throttling, which limit binds (the
site's max power, or the thermal sinks: consumer demand, tank room, dry cooler at the forecast
ambient), and the forecast it rests on. See controller/core/envelope.py.
"""

from __future__ import annotations

import argparse
import json
import sys

from controller.ops.api_client import READ_TIMEOUT_S, ApiError, add_socket_argument, call, socket_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("envelope", help="IT power the site can carry each hour of the next 24")
    p.add_argument("--json", action="store_true", help="print the envelope as JSON")
    add_socket_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        resp = call(socket_path(args.socket), {"op": "envelope"}, timeout_s=READ_TIMEOUT_S)
    except ApiError as exc:
        print(f"heatctl: {exc}", file=sys.stderr)
        return exc.exit_code
    if not resp.get("ok"):
        print(f"heatctl envelope: {resp.get('error', 'failed')}", file=sys.stderr)
        return 1
    env = resp.get("envelope")
    if args.json:
        print(json.dumps(env, indent=2))
        return 0 if env else 1
    if not env:
        print(f"heatctl envelope: {resp.get('note', 'not computed yet')}", file=sys.stderr)
        return 1
    print(f"capacity envelope computed {env['at']}; tank state of charge {env['soc_start']:.2f}; "
          f"forecast: {env['basis']}")
    print(f"{'hour':>4}  {'carryable kW':>12}  {'limit':9}  {'demand kW':>9}  {'ambient':>7}")
    for h, (w, why, fc) in enumerate(zip(env["carryable_w"], env["binding"], env["forecast"])):
        print(f"{'+' + str(h):>4}  {w / 1000:12.1f}  {why:9}  {fc['demand_w'] / 1000:9.1f}  {fc['ambient_c']:7.1f}")
    return 0
