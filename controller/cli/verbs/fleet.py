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
from controller.cli.table import Col, add_wide_argument, is_wide, render
from controller.ops.fleet import URL_ENV, FleetError, SiteRow, as_json, fleet_table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fleet", help="the fleet table from the central Prometheus-compatible store")
    p.add_argument("--url", default=None,
                   help=f"the store's base URL (its /api/v1/query is used); default ${URL_ENV}")
    p.add_argument("--json", action="store_true", help="one object per site, as JSON")
    add_wide_argument(p)
    p.set_defaults(func=run)


FLEET_COLUMNS = (Col("SITE", cap=24), Col("MODE"), Col("IT kW", right=True), Col("HEAT kW", right=True),
                 Col("DUMP kW", right=True), Col("BOIL kW", right=True), Col("ERF mo", right=True, drop=1),
                 Col("CARRY24h kW", right=True, drop=2), Col("ALARMS", wrap=True))
OWNER_SHORT = {"facilities": "fac", "it_operations": "it", "both": "both"}


def _kw(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.1f}"


def format_fleet(rows: list[SiteRow], wide: bool = False) -> list[str]:
    """One line per site (silent sites say so), alarms by owner (fac, it, both)."""
    body = []
    for r in rows:
        if r.silent:
            body.append((r.site, "SILENT", "", "", "", "", "", "", "no series in the last 5 minutes"))
            continue
        erf = "-" if r.erf_month is None else f"{r.erf_month:.2f}"
        alarms = " ".join(f"{OWNER_SHORT.get(o, o)}:{n}" for o, n in sorted(r.alarms_by_owner.items()) if n)
        body.append((r.site, r.mode or "-", _kw(r.it_w), _kw(r.delivered_w), _kw(r.dumped_w), _kw(r.boiler_w),
                     erf, _kw(r.carryable_min_24h_w), alarms or "none"))
    return render(FLEET_COLUMNS, body, wide=wide)


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
        print("\n".join(format_fleet(rows, wide=is_wide(args))) if rows else "no sites in the store (no heatctl series in the last day)")
    silent = [r.site for r in rows if r.silent]
    if silent:
        print(f"heatctl fleet: silent (no series in the last 5 minutes): {', '.join(silent)}", file=sys.stderr)
        return 1
    return 0
