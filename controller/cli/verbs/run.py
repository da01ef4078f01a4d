"""`heatctl run --config FILE [--state-dir D] [--socket PATH] [--metrics ADDR:PORT]`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from controller.ops.api_client import socket_path
from controller.daemon.api_server import OPERATOR_GROUP, Authorizer
from controller.site.loader import LoadedConfig, load_config
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
    p.add_argument("--metrics-tls-cert", default=None, metavar="PEM",
                   help="serve metrics over HTTPS with this certificate (with --metrics-tls-key)")
    p.add_argument("--metrics-tls-key", default=None, metavar="PEM", help="the certificate's private key")
    p.add_argument("--metrics-basic-auth-file", default=None, metavar="FILE",
                   help="one line USER:PASSWORD: scrapes must send it (needs TLS off the loopback)")
    p.add_argument("--operator-group", default=OPERATOR_GROUP, metavar="GROUP",
                   help=f"members may change the plant through the API (default: {OPERATOR_GROUP})")
    p.add_argument("--socket-group", default=None, metavar="GROUP",
                   help=f"group owning the API socket (mode 0660): its members can reach the daemon; "
                        f"'' keeps the daemon's own group (default: the config's api.socket_group, "
                        f"else {OPERATOR_GROUP})")
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


def metrics_security(args: argparse.Namespace):
    """Check the metrics TLS/basic-auth options and hand them to the metrics server; a one-line
    problem (str) instead when a file is missing or unreadable or the combination is unsafe."""
    from controller.daemon import metrics

    cert, key, auth_file = args.metrics_tls_cert, args.metrics_tls_key, args.metrics_basic_auth_file
    if (cert is None) != (key is None):
        return "--metrics-tls-cert and --metrics-tls-key go together"
    for opt, f in (("--metrics-tls-cert", cert), ("--metrics-tls-key", key), ("--metrics-basic-auth-file", auth_file)):
        if f is not None and not os.access(f, os.R_OK):
            return f"{opt} {f}: {'cannot read' if os.path.exists(f) else 'no such file'}"
    basic = None
    if auth_file is not None:
        user, sep, password = Path(auth_file).read_text(encoding="utf-8").strip().partition(":")
        if not sep or not user or not password:
            return f"--metrics-basic-auth-file {auth_file}: expected one line USER:PASSWORD"
        basic = (user, password)
        host = (args.metrics or ("127.0.0.1", 0))[0]
        if cert is None and not metrics._is_loopback(host):
            return (f"--metrics-basic-auth-file on {host} without TLS would send the password in clear; "
                    "add --metrics-tls-cert and --metrics-tls-key")
    metrics.configure_server_security(cert, key, basic)
    return None


def socket_group(flag: str | None, config: LoadedConfig) -> str | None:
    """The API socket's group: the flag, else the config's `api.socket_group`; "" means none."""
    group = config.site.api.socket_group if flag is None else flag
    return group or None


def run(args: argparse.Namespace) -> int:
    from controller.daemon import logging_setup
    from controller.daemon.runtime import RuntimeOptions, StartupError, run_daemon

    # Absolute: SIGHUP re-reads it, and the audit records where each configuration came from.
    path = str(Path(args.config or default_config_path()).resolve())
    loaded = load_config(path)
    security = metrics_security(args)
    if isinstance(security, str):
        print(f"heatctl run: {security}", file=sys.stderr)
        return 1
    logging_setup.configure(json_lines={"auto": None, "json": True, "console": False}[args.log_format])
    options = RuntimeOptions(
        config_path=path, state_dir=args.state_dir, socket_path=socket_path(args.socket),
        metrics_addr=args.metrics, socket_group=socket_group(args.socket_group, loaded),
        authorizer=Authorizer(operator_group=args.operator_group or None))
    try:
        from drivers.registry import build_drivers  # the composition root injects the concrete drivers
        return asyncio.run(run_daemon(options, loaded, driver_factory=build_drivers))
    except StartupError as exc:
        print(f"heatctl run: {exc}", file=sys.stderr)
        return 1
