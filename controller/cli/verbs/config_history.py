"""`heatctl config-history [--show N] [--diff A B]`: every configuration the daemon loaded or refused.

Reads the audit database in the state directory directly (read-only), so that it works with the
daemon stopped. To restore configuration N: `heatctl config-history --show N > site.yaml`, check it
with `heatctl check-config site.yaml`, put it in place and `systemctl reload heatctl` (SIGHUP).
"""

from __future__ import annotations

import argparse
import difflib
import sqlite3
import sys

from controller.cli.table import Col, add_wide_argument, is_wide, render
from controller.daemon.audit import AuditStore, iso
from controller.site.access import permission_denied


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config-history", help="list, show or compare the configurations loaded")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--show", type=int, metavar="N", help="print configuration N exactly as loaded")
    g.add_argument("--diff", type=int, nargs=2, metavar=("A", "B"), help="unified diff of configurations A and B")
    p.add_argument("--json", action="store_true",
                   help="the list as JSON (id, time, sha256, accepted, cause, path, problems)")
    p.add_argument("--state-dir", default="/var/lib/heatctl", metavar="DIR",
                   help="the daemon's state directory (default: /var/lib/heatctl)")
    add_wide_argument(p)
    p.set_defaults(func=run)


HISTORY_COLUMNS = (Col("#", right=True), Col("TIME (UTC)"), Col("SHA256", drop=1), Col("STATUS"), Col("CAUSE"),
                   Col("PATH / PROBLEMS", wrap=True))


def run(args: argparse.Namespace) -> int:
    try:
        store = AuditStore(args.state_dir, read_only=True)
    except PermissionError as exc:  # the state directory is the service's (0750 heatctl:heatctl)
        print(f"heatctl config-history: {permission_denied(exc.filename or args.state_dir)}", file=sys.stderr)
        return 1
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"heatctl config-history: cannot open the audit database in {args.state_dir}: {exc}",
              file=sys.stderr)
        return 1
    try:
        if args.show is not None:
            rec = store.config(args.show)
            if rec is None:
                print(f"heatctl config-history: no configuration {args.show} (see `heatctl config-history`)",
                      file=sys.stderr)
                return 1
            sys.stdout.write(rec.text)
            return 0
        if args.diff is not None:
            a, b = (store.config(n) for n in args.diff)
            for n, rec in zip(args.diff, (a, b)):
                if rec is None:
                    print(f"heatctl config-history: no configuration {n}", file=sys.stderr)
                    return 1
            sys.stdout.writelines(difflib.unified_diff(
                a.text.splitlines(keepends=True), b.text.splitlines(keepends=True),
                fromfile=f"#{a.id} {a.sha256[:12]} {iso(a.ts)}", tofile=f"#{b.id} {b.sha256[:12]} {iso(b.ts)}"))
            return 0
        records = store.configs()
        if getattr(args, "json", False):
            import json
            print(json.dumps([{"id": r.id, "time": iso(r.ts), "sha256": r.sha256, "accepted": bool(r.accepted),
                               "cause": r.cause, "path": r.path,
                               "problems": r.problems.splitlines() if r.problems else []} for r in records],
                             indent=2))
            return 0
        if not records:
            print("no configuration loaded yet")
            return 0
        rows = []
        for r in records:
            status = "loaded" if r.accepted else "REFUSED"
            rows.append((r.id, iso(r.ts), (r.sha256 or "-")[:12], status, r.cause, r.path))
            if not r.accepted and r.problems:
                rows += [("", "", "", "", "", f"  {line}") for line in r.problems.splitlines()[:5]]
        print("\n".join(render(HISTORY_COLUMNS, rows, wide=is_wide(args))))
        return 0
    except sqlite3.Error as exc:
        print(f"heatctl config-history: cannot read {store.path}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
