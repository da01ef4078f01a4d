"""Benchmark of the daemon against the simulated plant on the wire (127.0.0.1 only).

For a 1 s and a 100 ms tick: starts `heatctl sim-plant` and `heatctl run` as processes, lets them
run (the first 10 s are start-up and not measured), then prints the daemon's tick duration over the
last minute (median, p99, max), its overruns, its CPU use and its resident memory (current and peak).

    .venv/bin/python bench/bench_daemon.py [--seconds 70]

Prints its figures; asserts nothing. The simulated plant runs on the same 2 cores, so these figures
include its competition for the CPU.
"""

from __future__ import annotations

import argparse
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

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> tuple[float, float]:
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024
    return rss, hwm


def wait_for(cond, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise RuntimeError("not ready in time")


def run_one(tick_s: float, seconds: float, workdir: Path) -> str:
    cfg = workdir / f"site-{tick_s:g}.yaml"
    text = (ROOT / "config" / "reference-plant.yaml").read_text()
    text = text.replace("tick_period_s: 1.0", f"tick_period_s: {tick_s}")
    text = text.replace("credentials_file: config/", f"credentials_file: {ROOT}/config/")
    cfg.write_text(text)
    state = workdir / f"state-{tick_s:g}"
    state.mkdir()
    sock = state / "heatctl.sock"
    exe = [sys.executable, "-m", "controller.cli"]
    log = open(workdir / f"log-{tick_s:g}.txt", "w")
    sim = subprocess.Popen(exe + ["sim-plant", "--config", str(cfg), "--control-port", "0"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    daemon = None
    try:
        time.sleep(0.5)
        wait_for(lambda: "control" in (workdir / f"log-{tick_s:g}.txt").read_text(), 60)
        daemon = subprocess.Popen(exe + ["run", "--config", str(cfg), "--state-dir", str(state),
                                         "--socket", str(sock), "--log-format", "json"],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def ready() -> bool:
            try:
                return call(str(sock), {"op": "status"}, timeout_s=2)["status"]["daemon"]["ready"]
            except (ApiError, KeyError):
                return False

        wait_for(ready, 60)
        time.sleep(10)  # start-up: sessions opening, first values arriving
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
        st = call(str(sock), {"op": "status"}, timeout_s=5)["status"]
        ticks = st["ticks"]
        rss, hwm = rss_mib(daemon.pid)
        ms = lambda v: f"{v * 1000:7.1f} ms" if v is not None else "      -"  # noqa: E731
        return (f"daemon, {tick_s:g} s tick: last minute ({ticks['samples_1min']} ticks) median {ms(ticks['p50_1min_s'])}"
                f"  p99 {ms(ticks['p99_1min_s'])}  max {ms(ticks['max_1min_s'])};  overruns {ticks['overruns_total']}"
                f" of {ticks['count']} ticks;  CPU {100 * (cpu1 - cpu0) / (t1 - t0):4.1f} % of one core;"
                f"  RSS {rss:.0f} MiB (peak {hwm:.0f} MiB);  mode {st.get('mode', {}).get('mode')}")
    finally:
        for p in (daemon, sim):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=70.0, help="measured seconds per tick period")
    args = ap.parse_args()
    print(f"# heatctl daemon benchmark against the simulated plant (127.0.0.1), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for tick in (1.0, 0.1):
            print(run_one(tick, args.seconds, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
