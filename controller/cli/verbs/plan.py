"""`heatctl plan [--json]`: the 24-hour plan slot by slot, with the reason for each decision.

From the daemon (API op "plan": `{"ok": true, "plan": Plan.as_dict() or null, "in_force": bool,
"note": str}`), or, with `--simulate SCENARIO`, a plan made here from the simulation's forecasts and
the workload model's queue at `--day`/`--hour` (no daemon needed: what the plan would say there).
Per slot: the batch power budget the workload manager is given, the tank's target state of charge,
the policy, the expected demand, IT power, boiler and dump, and why.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from controller.cli.table import Col, add_wide_argument, fit, is_wide, render
from controller.ops.api_client import READ_TIMEOUT_S, ApiError, add_socket_argument, call, socket_path


# A one-off plan an operator asks for may take longer than the daemon's solve beside its tick (the
# site's planning.solve_time_limit_s, 0.5 s in the reference config): on a busy machine that limit
# failed it (seen at load 40). HiGHS solves the reference day in tens of milliseconds when idle.
SIMULATE_TIME_LIMIT_S = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="the 24-hour plan: batch budget, tank target, policy per 15 minutes")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--simulate", metavar="SCENARIO", help="make the plan offline for a year scenario (pool-year, dhw-year)")
    p.add_argument("--day", type=int, default=15, help="with --simulate: day of the year (1-365, default 15)")
    p.add_argument("--hour", type=float, default=0.0, help="with --simulate: hour of that day (default 0)")
    p.add_argument("--every", type=int, default=4, help="print every Nth slot (default 4: hourly)")
    p.add_argument("--time-limit", type=float, default=SIMULATE_TIME_LIMIT_S, metavar="S",
                   help=f"with --simulate: the solver's wall-clock limit (default {SIMULATE_TIME_LIMIT_S:g} s; "
                        "the site's planning.solve_time_limit_s is for the daemon, beside its tick)")
    add_wide_argument(p)
    add_socket_argument(p)
    p.set_defaults(func=run)


def simulated_plan(name: str, day: int, hour: float, time_limit_s: float = SIMULATE_TIME_LIMIT_S) -> dict:
    """The plan the simulation would make at (day, hour): a day of the workload run freely first."""
    from simulations.runners.planned import PlannedController, with_workload, workload_for
    from simulations.scenarios.year import SCENARIOS, site_for

    if name not in ("pool-year", "dhw-year"):
        raise ValueError(f"unknown or unsupported scenario {name!r}; expected pool-year or dhw-year")
    if not 1 <= day <= 365 or not 0.0 <= hour < 24.0:
        raise ValueError(f"--day must be 1-365 and --hour 0-24, got {day} and {hour:g}")
    if not 0.0 < time_limit_s <= 600.0:
        raise ValueError(f"--time-limit must be more than 0 and at most 600 s, got {time_limit_s:g}")
    sc = SCENARIOS[name]
    site = site_for(sc).model_copy(update={"tick_period_s": 60.0})
    now = (day - 1) * 86400.0 + hour * 3600.0
    wl = workload_for(site, sc, 60.0, max(now - 86400.0, 0.0))
    t = wl.start_s
    while t < now:
        wl.load(t)
        t += 60.0
    ctrl = PlannedController(site, with_workload(sc, wl), wl)
    res = ctrl.solver(ctrl.inputs(now, 0.5), time_limit_s)
    if res.plan is None:
        return {"plan": None, "in_force": False, "note": res.reason}
    return {"plan": res.plan.as_dict(), "in_force": True,
            "note": f"simulated: {name}, day {day} {hour:g}:00, {len(wl.queue)} batch jobs queued, tank SoC 0.5 assumed"}


PLAN_COLUMNS = (Col("slot"), Col("batch kW", right=True), Col("tank", right=True), Col("policy", drop=3),
                Col("demand", right=True), Col("IT kW", right=True, drop=2), Col("boiler", right=True),
                Col("dump", right=True, drop=1), Col("why", wrap=True))


def format_plan(resp: dict, every: int = 4, wide: bool = False) -> list[str]:
    """The plan as lines that fit 100 columns (`wide`: one line per slot, however long)."""
    plan = resp.get("plan")
    last = resp.get("last_solve")
    solve = (f"; last solve {last['status']} in {last['solve_s'] * 1000:.0f} ms"
             + ("" if last.get("accepted") else " (not used)")) if last else ""
    if not plan:
        return fit(f"no plan: {resp.get('note', 'none made yet')} (today's rules are in force){solve}", wide=wide)
    c = resp.get("counters")
    age = f" (age {resp['age_s']:.0f} s)" if resp.get("age_s") is not None else ""
    state = "in force" if resp.get("in_force", True) else "NOT in force (rules)"
    tail = (f"; solves {c['accepted']} taken, {c['failed']} failed, {c['late']} late; "
            f"fallbacks to the rules {c['fallbacks']}") if c else ""
    made = plan["made_at_s"]
    # A live plan is stamped with the wall clock; a simulated one with seconds into its year.
    when = (datetime.datetime.fromtimestamp(made, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            if made > 1e9 else f"t={made:.0f} s")
    lines = fit(f"plan made at {when}{age} in {plan['solve_s'] * 1000:.0f} ms ({plan['status']}); "
                f"{state}{solve}{tail}", wide=wide)
    if resp.get("note") and not (resp.get("in_force") and resp.get("age_s") is not None):
        lines += fit(resp["note"], wide=wide, indent=2)  # (a live plan in force: its age says it all)
    rows = []
    for s in plan["slots"][::max(every, 1)]:
        hh = (s["start_s"] % 86400.0) / 3600.0
        rows.append((f"{int(hh):02d}:{int(round((hh % 1) * 60)):02d}", f"{s['batch_budget_w'] / 1000:.1f}",
                     f"{s['tank_target_soc']:.2f}", s["policy"], f"{s['demand_w'] / 1000:.1f}",
                     f"{s['it_w'] / 1000:.1f}", f"{s['boiler_w'] / 1000:.1f}", f"{s['dump_w'] / 1000:.1f}",
                     s["reason"]))
    return lines + render(PLAN_COLUMNS, rows, wide=wide)


def run(args: argparse.Namespace) -> int:
    if args.simulate:
        try:
            resp = simulated_plan(args.simulate, args.day, args.hour, args.time_limit)
        except ValueError as exc:
            print(f"heatctl plan: {exc}", file=sys.stderr)
            return 2
    else:
        try:
            resp = call(socket_path(args.socket), {"op": "plan"}, timeout_s=READ_TIMEOUT_S)
        except ApiError as exc:
            print(f"heatctl: {exc}", file=sys.stderr)
            return exc.exit_code
        if not resp.get("ok"):
            print(f"heatctl plan: {resp.get('error', 'failed')}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(resp, indent=2, default=str))
        return 0 if resp.get("plan") else 1
    print("\n".join(format_plan(resp, args.every, wide=is_wide(args))))
    return 0 if resp.get("plan") else 1
