"""`heatctl run --config FILE [--state-dir D] [--socket PATH] [--metrics ADDR:PORT]`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from controller.ops.api_client import socket_path
from controller.daemon.api_server import OPERATOR_GROUP, Authorizer
from controller.site.loader import load_config
from controller.site.paths import default_config_path


EPILOG = """\
signals:
  SIGTERM, SIGINT  write the safe state (latched trips' actions on top), save counters, exit 0
  SIGHUP           re-read the config; an invalid one is refused (logged, audited), the old one runs on

state directory (heatctl.sqlite3, WAL):
  events    the audit log (append-only): modes, trips, acks, overrides, requests, reloads, drivers
  configs   every configuration loaded or refused, full text (heatctl config-history)
  energy    the energy counters (totals), saved every 10 ticks and at shutdown: SIGKILL or a
            crash loses at most the last 10 ticks of metering; a restart never counts twice
  history   one row per minute: mode, IT power, heat flows, temperatures, counters

systemd: READY=1 after the first completed tick, WATCHDOG=1 after each completed tick,
STOPPING=1 at shutdown, STATUS= the mode and why.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run the controller daemon (systemd Type=notify)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG)
    p.add_argument("--config", default=None, metavar="FILE",
                   help="site configuration (default: $HEATCTL_CONFIG, /etc/heatctl/site.yaml, the reference plant)")
    p.add_argument("--state-dir", default="/var/lib/heatctl", metavar="DIR",
                   help="audit log, energy counters and history (SQLite) (default: /var/lib/heatctl)")
    p.add_argument("--socket", default=None, metavar="PATH",
                   help="control API socket (default: $HEATCTL_SOCKET, else /run/heatctl/heatctl.sock)")
    p.add_argument("--metrics", default=None, type=_addr, metavar="ADDR:PORT",
                   help="serve Prometheus metrics there (e.g. 127.0.0.1:9860; ADDR defaults to 127.0.0.1)")
    p.add_argument("--operator-group", default=OPERATOR_GROUP, metavar="GROUP",
                   help=f"members may change the plant through the API (default: {OPERATOR_GROUP})")
    p.add_argument("--socket-group", default=OPERATOR_GROUP, metavar="GROUP",
                   help=f"group owning the API socket (mode 0660): its members can reach the daemon "
                        f"(default: {OPERATOR_GROUP})")
    p.add_argument("--log-format", choices=("auto", "json", "console"), default="auto",
                   help="auto: JSON lines unless stdout is a terminal")
    p.set_defaults(func=run)


def _addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        n = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT (e.g. 127.0.0.1:9860), got {text!r}") from None
    if not 0 < n < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {n}")
    return host, n


def run(args: argparse.Namespace) -> int:
    from controller.daemon import logging_setup
    from controller.daemon.runtime import RuntimeOptions, StartupError, run_daemon

    # Absolute: SIGHUP re-reads it, and the audit records where each configuration came from.
    path = str(Path(args.config or default_config_path()).resolve())
    loaded = load_config(path)
    logging_setup.configure(json_lines={"auto": None, "json": True, "console": False}[args.log_format])
    options = RuntimeOptions(
        config_path=path, state_dir=args.state_dir, socket_path=socket_path(args.socket),
        metrics_addr=args.metrics, socket_group=args.socket_group or None,
        authorizer=Authorizer(operator_group=args.operator_group or None))
    try:
        from drivers.registry import build_drivers  # the composition root injects the concrete drivers
        return asyncio.run(run_daemon(options, loaded, driver_factory=build_drivers))
    except StartupError as exc:
        print(f"heatctl run: {exc}", file=sys.stderr)
        return 1
