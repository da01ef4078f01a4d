"""`heatctl status [--json]`: what the plant is doing, answering an operator's four questions first.

1. How much power does IT draw?  2. How much heat is being transferred?  3. Is the loop stable?
4. Does the consumer get what it expects?  Then: mode and why, hold, latched trips, overrides,
readings with their quality, outputs and who drives them, driver health, tick timing, energy.
"""

from __future__ import annotations

import argparse
import json
import sys

from controller.cli.table import Col, add_wide_argument, fit, is_wide, labelled, render
from controller.ops.api_client import ApiError, add_socket_argument, call, socket_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="show the plant and the daemon (first lines: the essentials)")
    p.add_argument("--json", action="store_true", help="the full status as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1 while a trip is latched or the mode is safe_degrade (for scripts, monitors)")
    p.add_argument("--watch", nargs="?", const=2.0, default=None, type=_seconds, metavar="SECONDS",
                   help="repeat every SECONDS (default 2) until Ctrl-C, the screen cleared each time")
    add_wide_argument(p)
    add_socket_argument(p)
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.2 <= v <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0.2 to 3600 seconds, got {text!r}")
    return v


def watch(args: argparse.Namespace, once=None, sleep=None, rounds: int | None = None) -> int:
    """`status --watch`: the status every args.watch seconds; stops on Ctrl-C (exit 0) or when the
    daemon cannot be reached (its exit code)."""
    import time
    once = once or _once
    sleep = sleep or time.sleep
    n = 0
    while rounds is None or n < rounds:
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        rc = once(args)
        sys.stdout.flush()
        if rc not in (0, 1):
            return rc
        n += 1
        if rounds is None or n < rounds:
            sleep(args.watch)
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "watch", None):
        try:
            return watch(args)
        except KeyboardInterrupt:
            return 0
    return _once(args)


def _once(args: argparse.Namespace) -> int:
    path = socket_path(args.socket)
    try:
        resp = call(path, {"op": "status"})
    except ApiError as exc:
        print(f"heatctl: {exc}", file=sys.stderr)
        return exc.exit_code
    if not resp.get("ok"):
        print(f"heatctl: {resp.get('error')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(resp["status"], indent=2, sort_keys=True, default=str))
    else:
        print(format_status(resp["status"], wide=is_wide(args)))
    if args.check and not status_ok(resp["status"]):
        return 1
    return 0


def status_ok(status: dict) -> bool:
    """False while a trip is latched or the controller is in safe_degrade (`status --check`)."""
    if (status.get("mode") or {}).get("mode") == "safe_degrade":
        return False
    return not any(t.get("latched") for t in (status.get("trips") or {}).values())


def _kw(w) -> str:
    return "?" if w is None else f"{w / 1000:.1f} kW"


def _num(v, fmt: str = ".1f", unit: str = "") -> str:
    return "?" if v is None else f"{v:{fmt}}{unit}"


def _dur(s) -> str:
    if s is None:
        return "?"
    s = int(max(s, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _signed(v, unit: str = " K") -> str:
    return "?" if v is None else f"{v:+.1f}{unit}"


READING_COLUMNS = (Col("READING"), Col("VALUE", right=True), Col("UNIT"), Col("QUALITY", wrap=True))
OUTPUT_COLUMNS = (Col("OUTPUT"), Col("VALUE", right=True), Col("UNIT"), Col("SOURCE"), Col("WHY", wrap=True))
DRIVER_COLUMNS = (Col("DRIVER"), Col("KIND"), Col("STATE", wrap=True), Col("LAST READ", right=True, drop=3),
                  Col("POINTS", right=True, drop=4), Col("ERRORS", right=True, drop=2),
                  Col("RESTARTS", right=True, drop=1))


def format_status(st: dict, wide: bool = False) -> str:
    lines: list[str] = []

    def add(text: str) -> None:
        label, sep, rest = text.partition("  ")
        if sep and label and not label.startswith(" ") and rest.startswith(" "):
            lines.extend(labelled(label, rest.lstrip(" "), wide=wide))
        else:
            lines.extend(fit(text, wide=wide))
    sm = st.get("summary")
    mode = st.get("mode", {})
    if sm is None:
        add(f"daemon up, no tick completed yet (config {st['daemon']['config_path']})")
        return "\n".join(lines)
    # --- the four questions ---
    partial = "" if sm["servers_good"] == sm["servers_total"] else \
        f", only {sm['servers_good']}/{sm['servers_total']} servers readable (>= {_kw(sm['it_power_partial_w'])})"
    add(f"IT power     {_kw(sm['it_power_w'])} ({sm['servers_good']}/{sm['servers_total']} servers){partial}; "
        f"cap {_kw(sm['power_cap_w'])} ({sm['power_cap_source']})")
    tank = sm["to_tank_w"]
    tank_txt = "?" if tank is None else (f"+{_kw(tank)} charging" if tank > 0 else f"{_kw(tank)} discharging")
    add(f"Heat         captured {_kw(sm['captured_w'])}, through HX {_kw(sm['transferred_w'])}: "
        f"to consumer {_kw(sm['delivered_w'])}, tank {tank_txt} (SoC {_num(sm['tank_soc'], '.0%')}), "
        f"dumped {_kw(sm['dumped_w'])}")
    stab = sm["stability"]
    ce, de = stab.get("consumer_supply_error_k") or {}, stab.get("it_delta_t_error_k") or {}
    moves = stab.get("output_movement") or {}
    big = sorted(((p, m) for p, m in moves.items() if m >= 0.5 and st["outputs"].get(p, {}).get("unit") == "pct"),
                 key=lambda x: -x[1])[:3]
    moved = ", ".join(f"{p} {m:.0f} %" for p, m in big) or "outputs steady"
    add(f"Loop         {stab['verdict']} over {_dur(stab.get('window_s'))}: consumer supply error "
        f"{_signed(ce.get('now'))} (max |e| {_num(ce.get('max_abs'), '.1f', ' K')}), IT dT error "
        f"{_signed(de.get('now'))} (max |e| {_num(de.get('max_abs'), '.1f', ' K')}); moved: {moved}")
    avail = sm["consumer_available"]
    err = None if sm["consumer_supply_c"] is None else sm["consumer_supply_c"] - sm["consumer_setpoint_c"]
    add(f"Consumer     supply {_num(sm['consumer_supply_c'], '.1f', ' degC')} vs setpoint "
        f"{sm['consumer_setpoint_c']:.1f} ({_signed(err)}), demand {_kw(sm['consumer_demand_w'])}, "
        f"{'available' if avail else 'NOT available' if avail is False else 'availability unknown'}; "
        f"boiler {'ON' if sm['boiler_on'] else 'off'} ({sm['boiler_source']})")
    if st.get("alarms") is not None:  # a daemon with alarms: unacknowledged first, by priority
        from controller.cli.verbs.alarms import summary_line
        add(f"Alarms       {summary_line(st['alarms'].get('counts') or {})}")
    add("")
    # --- mode, hold, trips, overrides ---
    add(f"Mode         {mode['mode']} for {_dur(mode['for_s'])}: {mode['cause']}")
    if mode.get("degrade_causes"):
        lines.extend(labelled("", f"safe_degrade causes: {'; '.join(mode['degrade_causes'])}", wide=wide))
    add(f"Held         {'yes (automatic transitions suspended, safe_degrade still applies)' if mode['held'] else 'no (automatic)'}")
    trips = st.get("trips") or {}
    latched = {n: t for n, t in trips.items() if t["latched"]}
    if not latched:
        add("Trips        none latched")
    for n, t in latched.items():
        state = "condition PRESENT" if t["active"] else "condition clear"
        ack = "acknowledged" if t["acked"] else "NOT acknowledged"
        add(f"Trip         {n} LATCHED {_dur(t['for_s'])}: {t['cause']} ({state}, {ack})")
    ovs = st.get("overrides") or {}
    if not ovs:
        add("Overrides    none")
    for p, o in ovs.items():
        add(f"Override     {p} = {o['value']:g} for {_dur(o['remaining_s'])} more, by {o['user']}: {o['reason']}")
    # --- readings, outputs ---
    add("")
    readings = []
    for n, r in st.get("readings", {}).items():
        q = "good" if r["good"] else f"BAD ({r['reason']})"
        crit = " critical" if r["critical"] else ""
        ne = r.get("ne107")
        ne = f" NE107 {_NE107.get(ne, '?')} ({ne})" if ne and ne != "good" else ""
        readings.append((n, _num(r["value"], ".2f"), r["unit"], f"{q}{crit}{ne}"))
    lines.extend(render(READING_COLUMNS, readings, wide=wide))
    lines.extend(render(OUTPUT_COLUMNS, [(p, f"{o['value']:.1f}", o["unit"], o["source"], o["why"])
                                         for p, o in st.get("outputs", {}).items()], wide=wide))
    drivers = []
    for n, d in st.get("drivers", {}).items():
        state = d["state"]
        detail = d.get("crashed") or d.get("outage") or d.get("last_error")
        if d["state"] != "up":
            state += f": {detail}" if detail else ""
            if d.get("outage_for_s") is not None:
                state += f" (for {_dur(d['outage_for_s'])})"
        read = "-" if d.get("last_read_s") is None else f"{d['last_read_s'] * 1000:.0f} ms"
        drivers.append((n, d["kind"], state, read, d["points"], d["errors_total"], d["restarts_total"]))
    lines.extend(render(DRIVER_COLUMNS, drivers, wide=wide))
    t = st["ticks"]
    add(f"Ticks        {t['count']} every {t['period_s']:g} s; last {_ms(t['last_s'])}, max {_ms(t['max_1min_s'])} "
        f"over 1 min; overruns {t['overruns_total']} (skipped {t['skipped_total']}), failures {t['failures_total']}")
    e = st.get("energy") or {}
    if e:
        erf = "?" if e.get("erf") is None else f"{e['erf']:.3f}"
        add(f"Energy       IT {e['it_j'] / 3.6e6:.2f} kWh, delivered {e['delivered_j'] / 3.6e6:.2f} kWh, "
            f"dumped {e['dumped_j'] / 3.6e6:.2f} kWh, boiler {e['boiler_j'] / 3.6e6:.2f} kWh, ERF {erf}")
    dmn = st["daemon"]
    add(f"Daemon       pid {dmn['pid']}, up {_dur(dmn['uptime_s'])}, config {dmn['config_path']} "
        f"(sha256 {dmn['config_sha256'][:12]}), site {dmn['site']}, policy {dmn['policy']}")
    return "\n".join(lines)


_NE107 = {"failure": "F", "function_check": "C", "out_of_specification": "S", "maintenance_required": "M"}


def _ms(s) -> str:
    return "?" if s is None else f"{s * 1000:.1f} ms"
