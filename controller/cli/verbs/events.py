"""`heatctl events [--since ISO|DURATION] [--limit N] [--json]`: the audit log, newest last."""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.table import Col, add_wide_argument, is_wide, render
from controller.ops.api_client import ApiError, add_socket_argument, call, parse_duration, socket_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("events", help="show the audit log (transitions, trips, requests, reloads)")
    p.add_argument("--since", type=since_type, default=None, metavar="ISO|DURATION",
                   help="from this time, UTC unless an offset is given (2026-05-01T08:00Z, 2026-05-01, "
                        "2026-05-01T10:00+02:00) or this long ago (15m, 2h)")
    p.add_argument("--limit", type=_limit, default=50, metavar="N", help="at most N, the newest (default 50)")
    p.add_argument("--json", action="store_true", help="JSON lines, one event each")
    add_wide_argument(p)
    add_socket_argument(p)
    p.set_defaults(func=run)


def since_type(text: str) -> float:
    """ISO 8601 (no zone = UTC, controller.ops.times) or a duration ago -> UNIX time."""
    from controller.ops.times import parse_utc
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time in UTC (2026-05-01T08:00Z, or with an offset) or a duration "
            f"(15m, 2h), got {text!r}") from None


def _limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected N >= 1, got {n}")
    return n


EVENT_COLUMNS = (Col("TIME (UTC)"), Col("KIND"), Col("MODE", drop=1), Col("MESSAGE", wrap=True))


def event_row(e: dict) -> tuple[str, str, str, str]:
    who = ""
    if e.get("user"):
        who = f"  [{e['user']}" + (f" uid {e['uid']}" if e.get("uid") is not None else "") + \
              (f": {e['reason']}" if e.get("reason") else "") + "]"
    return e["time"], e["kind"], e.get("mode") or "-", f"{e['message']}{who}"


def format_events(events: list[dict], wide: bool = False) -> list[str]:
    return render(EVENT_COLUMNS, [event_row(e) for e in events], wide=wide)


def run(args: argparse.Namespace) -> int:
    path = socket_path(args.socket)
    try:
        resp = call(path, {"op": "events", "since": args.since, "limit": args.limit})
    except ApiError as exc:
        print(f"heatctl: {exc}", file=sys.stderr)
        return exc.exit_code
    if not resp.get("ok"):
        print(f"heatctl: {resp.get('error')}", file=sys.stderr)
        return 1
    events, total = resp.get("events", []), resp.get("total", 0)
    if args.json:
        for e in events:
            print(json.dumps(e, sort_keys=True))
    else:
        if events:
            print("\n".join(format_events(events, wide=is_wide(args))))
    if total > len(events):
        # Never silently short: say how many more the log holds.
        print(f"(showing the newest {len(events)} of {total} matching events; use --limit or --since)",
              file=sys.stderr)
    return 0
