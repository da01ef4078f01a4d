"""`heatctl commission --plan FILE --reason TEXT [--sim-control PORT] [--out DIR] [--yes]`.

Runs a commissioning plan (controller/ops/commissioning.py) against the running daemon: point check-out,
modes, trip proofs, failure drills; writes a Markdown and JSON report with a sign-off block.
Exit 0: every step passed; 1: a step failed; 2: the plan is invalid; 3: the daemon is unreachable
(one line, no report written). `--check` validates the plan offline (no daemon, no report).
"""

from __future__ import annotations

import argparse
import sys

from controller.cli.table import add_wide_argument, fit, is_wide
from controller.ops.api_client import CHANGE_TIMEOUT_S, ApiError, add_socket_argument, call, reason_type, socket_path
from controller.ops.commissioning import PlanError, Runner, load_plan, stdin_ask, write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("commission", help="run a commissioning plan (points, modes, trips, drills)")
    p.add_argument("--plan", required=True, metavar="FILE", help="the plan (YAML)")
    p.add_argument("--reason", default=None, type=reason_type,
                   help="why (audited with every change; required unless --check)")
    p.add_argument("--check", action="store_true", help="validate the plan offline and exit (0 valid, 2 not)")
    p.add_argument("--sim-control", type=int, default=None, metavar="PORT",
                   help="the simulated plant's control port: drills are injected there, not done by hand")
    p.add_argument("--out", default=".", metavar="DIR", help="where the report goes (default: .)")
    p.add_argument("--yes", action="store_true", help="confirm manual steps unattended (only where the plan allows)")
    add_socket_argument(p)
    add_wide_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.plan)
    except PlanError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    if args.check:
        print("\n".join(fit(f"{args.plan}: OK: plan valid", wide=is_wide(args))))
        return 0
    if not args.reason:
        print("heatctl commission: --reason is required (unless --check)", file=sys.stderr)
        return 2
    path = socket_path(args.socket)
    try:
        call(path, {"op": "status"}, timeout_s=10.0)
    except ApiError as exc:  # before any step: no report for a run that never started
        print(f"heatctl commission: {exc}", file=sys.stderr)
        return exc.exit_code
    sim = None
    if args.sim_control is not None:
        from simulations.wire.sim_plant import control_request

        def sim(op: str, **fields):
            return control_request(args.sim_control, op, **fields)

    runner = Runner(plan, args.reason, lambda req: call(path, req, timeout_s=CHANGE_TIMEOUT_S if req["op"] != "status" else 10.0),
                    sim, stdin_ask, yes=args.yes)
    rep = runner.run()
    md, js = write_report(rep, args.out)
    print("\n".join(fit(f"{'PASS' if rep['passed'] else 'FAIL'}: report {md} and {js}", wide=is_wide(args))))
    return 0 if rep["passed"] else 1
