"""`heatctl fleet [--url URL] [--json]`: the fleet table from the central store's query API.

Exit 0: every known site reporting; 1: a site is silent (listed, and named on stderr);
3: the store cannot be reached or refuses the query (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from controller.ops.api_client import EXIT_UNREACHABLE
from controller.ops.fleet import URL_ENV, FleetError, as_json, fleet_table, render


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fleet", help="the fleet table from the central Prometheus-compatible store")
    p.add_argument("--url", default=None,
                   help=f"the store's base URL (its /api/v1/query is used); default ${URL_ENV}")
    p.add_argument("--json", action="store_true", help="one object per site, as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        print(f"heatctl fleet: no store URL: give --url or set {URL_ENV}", file=sys.stderr)
        return 2
    try:
        rows = fleet_table(url)
    except FleetError as exc:
        print(f"heatctl fleet: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(as_json(rows), indent=2))
    else:
        print("\n".join(render(rows)) if rows else "no sites in the store (no heatctl series in the last day)")
    silent = [r.site for r in rows if r.silent]
    if silent:
        print(f"heatctl fleet: silent (no series in the last 5 minutes): {', '.join(silent)}", file=sys.stderr)
        return 1
    return 0
