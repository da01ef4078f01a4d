"""`heatctl envelope [--json]`: the 24-hour capacity envelope the daemon computed (every 5 minutes).

For each hour ahead: the IT power the site can carry without throttling, which limit binds (the
site's max power, or the thermal sinks: consumer demand, tank room, dry cooler at the forecast
ambient), and the forecast it rests on. See controller/core/envelope.py.
"""

from __future__ import annotations

import argparse
import json
import sys

from controller.cli.table import Col, add_wide_argument, fit, is_wide, render
from controller.ops.api_client import READ_TIMEOUT_S, ApiError, add_socket_argument, call, socket_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("envelope", help="IT power the site can carry each hour of the next 24")
    p.add_argument("--json", action="store_true", help="print the envelope as JSON")
    add_wide_argument(p)
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
    print("\n".join(format_envelope(env, wide=is_wide(args))))
    return 0


ENVELOPE_COLUMNS = (Col("HOUR", right=True), Col("CARRYABLE kW", right=True), Col("LIMIT"),
                    Col("DEMAND kW", right=True), Col("AMBIENT degC", right=True))


def format_envelope(env: dict, wide: bool = False) -> list[str]:
    lines = fit(f"capacity envelope computed {env['at']}; tank state of charge {env['soc_start']:.2f}; "
                f"forecast: {env['basis']}", wide=wide)
    rows = [(f"+{h}", f"{w / 1000:.1f}", why, f"{fc['demand_w'] / 1000:.1f}", f"{fc['ambient_c']:.1f}")
            for h, (w, why, fc) in enumerate(zip(env["carryable_w"], env["binding"], env["forecast"]))]
    return lines + render(ENVELOPE_COLUMNS, rows, wide=wide)
