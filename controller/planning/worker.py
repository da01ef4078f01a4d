"""A solve off the tick, in a child process that is killed if it overruns.

HiGHS's own time limit bounds the solve; the child process bounds everything else (a hung import, a
solver bug): after `kill_after_s` the child is killed and the result is a failure with the reason.
The caller (the daemon's planner task, or the simulation) hands the result to a PlanKeeper.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import time
from typing import Callable

from controller.planning.inputs import PlanInputs
from controller.planning.solver import SolveResult, solve


def _context() -> multiprocessing.context.BaseContext:
    """A "forkserver" context where the platform has one: each child is forked from a small server
    process started once (by exec, not by fork), never from the caller. The daemon that calls this
    runs threads (the database writer, pyghmi's I/O thread, asyncio's executors); a fork of it
    copies any lock another thread holds at that instant (logging, SQLite, the allocator), and the
    child can hang on it. The server imports the solver once, so a child starts with HiGHS loaded.
    Elsewhere "spawn"."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["controller.planning.solver"])
        return ctx
    return multiprocessing.get_context("spawn")


def _child(conn, target: Callable[[PlanInputs, float], SolveResult], inputs: PlanInputs, limit: float) -> None:
    try:
        conn.send(target(inputs, limit))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the failure reason
        conn.send(SolveResult(None, f"solver raised {type(exc).__name__}: {exc}", 0.0, inputs.now_s))
    finally:
        conn.close()


def solve_in_subprocess(inputs: PlanInputs, time_limit_s: float, kill_after_s: float | None = None,
                        target: Callable[[PlanInputs, float], SolveResult] = solve) -> SolveResult:
    """`target(inputs, time_limit_s)` in a child process; killed after `kill_after_s` (default:
    twice the time limit plus one second for the process to start)."""
    kill_after = kill_after_s if kill_after_s is not None else 2.0 * time_limit_s + 1.0
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    started = time.monotonic()
    proc = ctx.Process(target=_child, args=(child, target, inputs, time_limit_s), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(kill_after):
            try:
                return parent.recv()
            except EOFError:
                pass
            proc.join(1.0)
            return SolveResult(None, f"solver process died (exit code {proc.exitcode})",
                               time.monotonic() - started, inputs.now_s)
        proc.kill()
        proc.join(5.0)
        return SolveResult(None, f"solver killed after {kill_after:g} s", time.monotonic() - started, inputs.now_s)
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
