"""`heatctl check-config [--config FILE] [--json]`: validate a site config; exit 0 with a summary,
1 with the problems (one line each). The positional FILE is kept as an alias of --config.

Besides what the loader checks (schema, consistency, safety invariants, waivers), check-config looks
at the files the drivers will open (credentials, certificates): the daemon would only find out at run
time. Waived problems are listed (exit 0); warnings (a file this user may not read) do not fail.

--json prints {"ok", "file", "problems": [{file, line, key, rule, message, severity, waived}],
"summary"} for scripts; severity is "error" or "warning", and a waived problem has its "reason".
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from controller.site.checks import ProblemRecord
from controller.site.files import check_files
from controller.site.loader import ConfigError, load_config
from controller.site.paths import default_config_path
from simulations.plant.config import SIMULATION_EXTENSION


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check-config", help="validate a site configuration file")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="site configuration (default: $HEATCTL_CONFIG, else /etc/heatctl/site.yaml if "
                        "present, else the shipped reference plant)")
    p.add_argument("file", nargs="?", default=None, metavar="FILE", help="the same as --config FILE")
    p.add_argument("--json", action="store_true",
                   help='{"ok": bool, "file", "problems": [{file, line, key, rule, message, severity, '
                        'waived}], "summary": {...}} on stdout')
    p.set_defaults(func=run)


# "file:line: key: message" or "file:line:col: message" or "file: message" (the loader's own lines).
_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?::\d+)?: (?P<rest>.*)$")


def _records_of(exc: ConfigError, path: str) -> list[ProblemRecord]:
    """The structured problems of a refused config; for the loader's file and YAML errors, which
    have none, parsed from their one line."""
    if exc.records is not None:
        return list(exc.records)
    out = []
    for text in exc.problems:
        m = _LINE.match(text)
        if m:
            out.append(ProblemRecord(path, int(m["line"]), "", "syntax", m["rest"]))
        else:
            msg = text[len(path) + 2:] if text.startswith(path + ": ") else text
            out.append(ProblemRecord(path, 0, "", "file", msg))
    return out


def run(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        raise SystemExit(f"heatctl check-config: FILE {args.file!r} and --config {args.config!r} differ")
    path = str(args.config or args.file or default_config_path())
    try:
        loaded = load_config(path, SIMULATION_EXTENSION)
    except ConfigError as exc:
        if not args.json:
            raise
        print(json.dumps({"ok": False, "file": path,
                          "problems": [r.as_dict() for r in _records_of(exc, path)]}, indent=2))
        return 1
    file_records = list(check_files(loaded))
    errors = [r for r in file_records if r.severity == "error"]
    warnings = [r for r in file_records if r.severity != "error"]
    site = loaded.site
    summary = {"site": site.site.name, "policy": site.site.policy.value, "points": len(site.points),
               "drivers": len(site.drivers), "trips": len(site.trips), "tick_s": site.tick_period_s,
               "sha256": loaded.sha256, "waived": len(loaded.waived), "warnings": len(warnings)}
    if args.json:
        problems = [r.as_dict() for r in errors + warnings + list(loaded.waived)]
        print(json.dumps({"ok": not errors, "file": path, "problems": problems, "summary": summary}, indent=2))
        return 1 if errors else 0
    for r in errors:
        sys.stderr.write(r.line_text() + "\n")
    for r in warnings:
        sys.stderr.write(f"{r.file}:{r.line}: {r.key}: warning: {r.message}\n")
    if errors:
        return 1
    for r in loaded.waived:
        print(r.line_text())
    waived = f", {len(loaded.waived)} waived" if loaded.waived else ""
    print(
        f"{path}: OK: site {site.site.name!r}, policy {site.site.policy.value}, "
        f"{len(site.points)} points, {len(site.drivers)} drivers, {len(site.trips)} trips, "
        f"tick {site.tick_period_s:g} s, sha256 {loaded.sha256[:12]}{waived}"
    )
    return 0
