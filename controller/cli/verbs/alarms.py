"""`heatctl alarms [--json]`: every alarm with its state, priority and owner; flood, chatter, NE 107.

Unacknowledged alarms first (high priority first), then returned-unacknowledged, acknowledged,
shelved, out of service, and last the alarms in normal.
"""

from __future__ import annotations

import argparse
import json
import sys

from controller.cli.table import Col, add_wide_argument, is_wide, labelled, render
from controller.ops.api_client import ApiError, add_socket_argument, call, socket_path

# The order an operator wants to read them in (controller/core/alarms.py's state names).
STATE_ORDER = ("unacknowledged", "returned_unacknowledged", "acknowledged", "shelved", "out_of_service", "normal")
PRIORITY_ORDER = ("high", "medium", "low")
NE107_LETTER = {"failure": "F", "function_check": "C", "out_of_specification": "S", "maintenance_required": "M"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alarms", help="list the alarms (ISA-18.2 states, owners), flood, chatter, sensor status")
    p.add_argument("--json", action="store_true", help="the alarms as JSON")
    add_wide_argument(p)
    add_socket_argument(p)
    p.set_defaults(func=run)


def fetch(args: argparse.Namespace) -> tuple[dict | None, int]:
    """The daemon's `alarms` answer, or (None, exit code) after printing one line."""
    try:
        resp = call(socket_path(args.socket), {"op": "alarms"})
    except ApiError as exc:
        print(f"heatctl: {exc}", file=sys.stderr)
        return None, exc.exit_code
    if not resp.get("ok"):
        print(f"heatctl: {resp.get('error')}", file=sys.stderr)
        return None, 1
    return resp, 0


def run(args: argparse.Namespace) -> int:
    resp, code = fetch(args)
    if resp is None:
        return code
    if args.json:
        resp.pop("ok", None)
        print(json.dumps(resp, indent=2, sort_keys=True, default=str))
    else:
        print(format_alarms(resp, wide=is_wide(args)))
    return 0


def _dur(s) -> str:
    if s is None:
        return "-"
    s = int(max(s, 0))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def sort_key(a: dict) -> tuple[int, int, str]:
    return (STATE_ORDER.index(a["state"]) if a["state"] in STATE_ORDER else 99,
            PRIORITY_ORDER.index(a["priority"]) if a["priority"] in PRIORITY_ORDER else 99, a["name"])


def summary_line(counts: dict) -> str:
    """'2 unacked (1 high, 1 medium); 1 acked (1 low); ...': unacknowledged first, by priority."""
    parts = []
    for state, label in (("unacknowledged", "unacked"), ("returned_unacknowledged", "returned unacked"),
                         ("acknowledged", "acked"), ("shelved", "shelved"), ("out_of_service", "out of service")):
        by_prio = counts.get(state) or {}
        n = sum(by_prio.values())
        if n:
            detail = ", ".join(f"{by_prio[p]} {p}" for p in PRIORITY_ORDER if by_prio.get(p))
            parts.append(f"{n} {label} ({detail})")
    return "; ".join(parts) if parts else "none active"


ALARM_COLUMNS = (Col("ALARM"), Col("STATE"), Col("PRIORITY", drop=1), Col("OWNER", drop=3),
                 Col("VALUE", right=True, drop=2), Col("ACTIVE", right=True), Col("WHAT", wrap=True))


def format_alarms(resp: dict, wide: bool = False) -> str:
    lines = labelled("Alarms", summary_line(resp.get("counts") or {}), wide=wide)
    alarms = sorted(resp.get("alarms") or [], key=sort_key)
    rows = []
    for a in alarms:
        value = "-" if a.get("value") is None else f"{a['value']:.2f}"
        what = (a.get("description") or a.get("point") or a.get("signal") or "") + \
            (" CHATTERING" if a.get("chattering") else "")
        sup = a.get("suppressed_by")
        if sup:
            more = "" if sup.get("remaining_s") is None else f" for {_dur(sup['remaining_s'])} more"
            what += f" [{a['state']} by {sup['user']}{more}: {sup['reason']}]"
        rows.append((a["name"], a["state"], a["priority"], a["owner"], value, _dur(a.get("for_s")), what))
    if rows:
        lines += render(ALARM_COLUMNS, rows, wide=wide, indent=2)
    flood = resp.get("flood") or {}
    limit = resp.get("flood_limit", 10)
    window = int(resp.get("flood_window_s", 600) // 60)
    lines += labelled("Flood", ", ".join(
        f"{op} {n} in {window} min" + (" FLOOD" if n > limit else "") for op, n in flood.items())
        + f" (a flood is more than {limit})", wide=wide)
    chatter = [a["name"] for a in alarms if a.get("chattering")]
    lines += labelled("Chattering", ", ".join(chatter) if chatter else "none", wide=wide)
    ne = {p: c for p, c in (resp.get("ne107") or {}).items() if c != "good"}
    lines += labelled("Sensors", ", ".join(f"{p} {NE107_LETTER.get(c, '?')} ({c})" for p, c in ne.items())
                      if ne else "all good (NE 107)", wide=wide)
    return "\n".join(lines)
