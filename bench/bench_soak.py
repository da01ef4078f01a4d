"""Soak benchmark: does the daemon's memory, lateness or database grow with time?

Two runs (issue 13, "a soak"):

1. real time: the simulated plant (real Modbus, OPC-UA and IPMI servers on 127.0.0.1, free ports) and
   `heatctl run` as processes, the reference plant at a 100 ms tick, for `--seconds` (default 3600).
   Every `--every` seconds it prints the daemon's resident memory (VmRSS), its ticks, overruns and
   tick lateness (the daemon's own figures from `heatctl status`), and the database size.
2. simulated time: the real Daemon class on simulated time (simulations/runners/daemon_simtime.py:
   the plant model behind a fake driver, the real SQLite history and events) for `--days` (default
   30) at a `--sim-tick` (default 10 s), printing this process's resident memory every simulated
   day and the database size.

Growth per day: the least-squares slope of resident memory over the samples of the second half
of each run (the first half includes warm-up: bounded windows filling - the 10,000-tick lateness
window takes 1,000 s at 100 ms - SQLite's page cache, imports on first use), scaled to 24 h, and the
plain last-minus-first figure beside it. Prints its figures; asserts nothing.

    .venv/bin/python bench/bench_soak.py [--seconds 3600] [--every 300] [--days 30] [--sim-tick 10]
                                         [--only real|sim]

The simulated plant and (usually) other work share the machine's cores: the figures say so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.ops.api_client import ApiError, call  # noqa: E402

DAY_S = 86400.0


def rss_mib(pid: int | str = "self") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


def db_mib(state_dir: Path) -> float:
    return sum(p.stat().st_size for p in state_dir.glob("heatctl.sqlite3*")) / 2**20


def slope_per_day(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t_s, MiB) in MiB per day, or None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    if den <= 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in samples) / den * DAY_S


def growth_line(what: str, samples: list[tuple[float, float]], unit_s: float = 1.0) -> str:
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    late = slope_per_day([(t * unit_s, v) for t, v in half])
    whole = samples[-1][1] - samples[0][1]
    span_d = (samples[-1][0] - samples[0][0]) * unit_s / DAY_S
    per_day = whole / span_d if span_d > 0 else float("nan")
    return (f"{what}: RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB; growth per day: "
            f"{'n/a' if late is None else f'{late:+.2f} MiB'} (slope over the second half), "
            f"{per_day:+.2f} MiB (last minus first)")


# --- 1. real time -----------------------------------------------------------------------------

def real_time(seconds: float, every: float, workdir: Path) -> None:
    from tests.plant_harness import HEATCTL, SIM_SCRIPT

    text = (ROOT / "config" / "reference-plant.yaml").read_text()
    assert "tick_period_s: 1.0" in text
    text = text.replace("tick_period_s: 1.0", "tick_period_s: 0.1")
    src = workdir / "sim-input.yaml"
    src.write_text(text)
    cfg = workdir / "site.yaml"
    state = workdir / "state"
    sock = workdir / "heatctl.sock"
    log = open(workdir / "soak.log", "w")
    sim = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT, str(src), str(cfg)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=log, text=True)
    daemon = None
    try:
        if not sim.stdout.readline():
            raise RuntimeError("the simulated plant did not start; see soak.log")
        daemon = subprocess.Popen([*HEATCTL, "run", "--config", str(cfg), "--state-dir", str(state),
                                   "--socket", str(sock), "--log-format", "json"],
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(str(sock), {"op": "status"}, timeout_s=2)["status"]["daemon"]["ready"]:
                    break
            except (ApiError, KeyError, OSError):
                pass
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("the daemon did not become ready; see soak.log")
            time.sleep(0.2)
        t0 = time.monotonic()
        samples: list[tuple[float, float]] = []
        print(f"# real time: daemon pid {daemon.pid}, 100 ms tick, {seconds:.0f} s, sample every {every:.0f} s",
              flush=True)
        print("#   t_s   RSS_MiB    ticks  overruns  late_p99_ms  late_max_ms  DB_MiB  mode", flush=True)
        next_at = 0.0
        while True:
            now = time.monotonic() - t0
            if now >= next_at:
                st = call(str(sock), {"op": "status"}, timeout_s=5)["status"]
                tk = st["ticks"]
                lat = tk.get("lateness") or {}
                rss = rss_mib(daemon.pid)
                samples.append((now, rss))
                ms = lambda v: f"{v * 1000:.1f}" if v is not None else "-"  # noqa: E731
                print(f"  {now:6.0f}  {rss:8.1f}  {tk['count']:7d}  {tk['overruns_total']:8d}  "
                      f"{ms(lat.get('p99_s')):>11}  {ms(lat.get('max_s')):>11}  {db_mib(state):6.2f}  "
                      f"{st.get('mode', {}).get('mode')}", flush=True)
                next_at += every
                if now >= seconds:
                    break
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({daemon.returncode}); see soak.log")
            time.sleep(min(1.0, max(0.0, next_at - (time.monotonic() - t0))))
        print(growth_line("real time, 100 ms tick", samples), flush=True)
    finally:
        for p in (daemon, sim):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        log.close()


# --- 2. simulated time ------------------------------------------------------------------------

def simulated(days: float, tick_s: float, workdir: Path) -> None:
    import structlog

    from controller.site.loader import load_config
    from simulations.runners.daemon_simtime import SimClock, SimulatedPlant, make_daemon
    from simulations.scenarios.definitions import SCENARIOS
    import simulations.scenarios.year  # noqa: F401 - registers pool-year

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    text = (ROOT / "config" / "reference-plant.yaml").read_text().replace(
        "tick_period_s: 1.0", f"tick_period_s: {tick_s:g}")
    cfg = workdir / "sim-site.yaml"
    cfg.write_text(text)
    loaded = load_config(cfg)
    state = workdir / "sim-state"
    plant = SimulatedPlant(loaded, SCENARIOS["pool-year"], 0.0, tick_s)
    clock = SimClock(plant, 1767225600.0)  # 2026-01-01T00:00Z
    samples: list[tuple[float, float]] = []
    holder: dict = {}
    t_real0 = time.monotonic()
    print(f"# simulated time: the Daemon class, {tick_s:g} s tick, {days:g} days, pool-year from 1 January",
          flush=True)
    print("#  day   RSS_MiB     ticks  overruns  DB_MiB  real_s", flush=True)

    def sample() -> None:
        d = holder.get("d")
        rss = rss_mib()
        samples.append((plant.t, rss))
        print(f"  {plant.t / DAY_S:5.1f}  {rss:8.1f}  {d.ticks if d else 0:8d}  "
              f"{d.overruns_total if d else 0:8d}  {db_mib(state) if state.exists() else 0:6.2f}  "
              f"{time.monotonic() - t_real0:6.0f}", flush=True)

    # Once a simulated day: just after the first tick, then at the end of each day (the run ends
    # with its last day's tick).
    clock.at(tick_s / 2, sample)
    for k in range(1, int(days) + 1):
        clock.at(k * DAY_S - tick_s / 2, sample)

    async def run() -> None:
        d = holder["d"] = make_daemon(loaded, str(state), plant, clock)
        await d.start()
        await d.run(max_ticks=int(round(days * DAY_S / tick_s)))

    asyncio.run(run())
    print(growth_line(f"simulated time, {tick_s:g} s tick", samples), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="real-time run length (s)")
    ap.add_argument("--every", type=float, default=300.0, help="real-time sample interval (s)")
    ap.add_argument("--days", type=float, default=30.0, help="simulated-time run length (days)")
    ap.add_argument("--sim-tick", type=float, default=10.0, help="simulated-time tick (s)")
    ap.add_argument("--only", choices=["real", "sim"], default=None)
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"# heatctl soak, {os.cpu_count()} cores, load average at start {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "real"):
            real_time(args.seconds, args.every, Path(tmp))
        if args.only in (None, "sim"):
            simulated(args.days, args.sim_tick, Path(tmp))
    load = os.getloadavg()
    print(f"# load average at end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)


if __name__ == "__main__":
    main()
