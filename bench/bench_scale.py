"""Scale benchmark: the daemon on a big generated site, everything served on 127.0.0.1.

    .venv/bin/python bench/bench_scale.py [--duration 300] [--ticks 0.1,1.0] [--profile FILE]

The site is the reference plant plus:
  * 1,000 Modbus registers: 500 float32 input registers over device ids 2-5 of the BMS's Modbus
    server, half in big and half in little word order (ABCD / CDAB);
  * 500 OPC-UA monitored items on the BMS's OPC-UA server (one subscription);
  * 64 BMCs instead of 8 (the plant's IT load spread over them), one DCMI power reading each.
The extra points have no role: the daemon reads, validates and publishes them every tick, which is
the load being measured. Their values change once a second (a random walk, a tenth of them every
100 ms), so the OPC-UA server sends 500 data changes a second and the Modbus decode sees fresh
values.

The simulated plant and its servers run in a child process (`--serve`); the daemon runs in this
process (`controller.daemon.runtime.Daemon`), so this process's CPU and memory are the daemon's.
Tick lateness is how late each tick starts against its grid deadline, taken from the daemon's own
scheduler (`Daemon._account` gets start and deadline; wrapped here, nothing else changed). The
first 10 s after `ready` are start-up and not measured.

Prints, per tick period: lateness p50/p99/p99.9/max, tick duration p50/p99/max, overruns, CPU
(% of one core) and RSS. `--profile FILE` writes a cProfile of the 100 ms run. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

REFERENCE = ROOT / "config" / "reference-plant.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 10.0
MODBUS_DEVICES = (2, 3, 4, 5)
MODBUS_FLOATS_PER_DEVICE = 125   # x 2 registers x 4 devices = 1,000 registers
OPCUA_ITEMS = 500
BMCS = 64


# --- the generated site ---------------------------------------------------------------------


def scale_site(tick_s: float, bmcs: int = BMCS, ipmi_read_interval_s: float = 0.0) -> dict:
    data = yaml.safe_load(REFERENCE.read_text())
    data["tick_period_s"] = tick_s
    for d in data["drivers"].values():
        if d.get("kind") == "ipmi":
            d["credentials_file"] = str(ROOT / d["credentials_file"])
            d["min_read_interval_s"] = ipmi_read_interval_s
            template = d["bmcs"][0]
            total_w = sum(b["max_power_w"] for b in d["bmcs"])
            # Placeholder ports: the plant serves on free ports and writes them into the config.
            d["bmcs"] = [{**template, "name": f"srv{i}", "port": 20000 + i,
                          "max_power_w": total_w / bmcs, "min_power_w": 50}
                         for i in range(1, bmcs + 1)]
    points = data["points"]
    power = dict(points["srv1_power"])
    for name in [n for n in points if re.fullmatch(r"srv\d+_power", n)]:
        del points[name]
    for i in range(1, bmcs + 1):
        points[f"srv{i}_power"] = {**power, "source": {"driver": "bmcs", "bmc": f"srv{i}"}}
    for dev in MODBUS_DEVICES:
        for i in range(MODBUS_FLOATS_PER_DEVICE):
            points[f"mb_d{dev}_{i}"] = {
                "unit": "degC", "range": [-1000, 1000],
                "source": {"driver": "bms_modbus", "device_id": dev, "table": "input",
                           "address": 2 * i, "data_type": "float32",
                           "word_order": "big" if i % 2 == 0 else "little"}}
    for i in range(OPCUA_ITEMS):
        points[f"ua_{i}"] = {"unit": "degC", "range": [-1000, 1000],
                             "source": {"driver": "bms_opcua", "node_id": f"ns=2;s=Scale.Item{i}"}}
    return data


# --- the plant side (child process) ---------------------------------------------------------


async def serve(config_in: Path, config_out: Path) -> None:
    from controller.site.loader import load_config
    from simulations.wire.sim_plant import SimPlant

    loaded = load_config(str(config_in))
    extra_mb = [n for n in loaded.site.points if n.startswith("mb_d")]
    extra_ua = [n for n in loaded.site.points if n.startswith("ua_")]
    rng = random.Random(1)
    values = {n: rng.uniform(-100, 100) for n in extra_mb + extra_ua}
    async with SimPlant(loaded, free_ports=True) as sim:
        sim.write_config(config_out)
        [modbus] = sim.modbus.values()
        [opcua] = sim.opcua.values()
        # A tenth of the values every 100 ms: each changes once a second, and the plant's event
        # loop (which also answers the daemon's Modbus requests) is never busy for long.
        names = extra_mb + extra_ua
        step = 0
        while True:
            for n in names[step::10]:
                values[n] += rng.uniform(-1, 1)
                if n.startswith("mb_"):
                    modbus.set_value(n, values[n])
                else:
                    await opcua.set_value(n, values[n])
            step = (step + 1) % 10
            await asyncio.sleep(0.1)


# --- the daemon side (this process) ---------------------------------------------------------


def cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib() -> tuple[float, float]:
    text = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024
    return rss, hwm


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] if s else float("nan")


async def measure(config: Path, state: Path, duration_s: float, profile: str | None,
                  plant_pid: int) -> dict:
    from controller.daemon import logging_setup
    from controller.daemon.runtime import Daemon, RuntimeOptions
    from controller.site.loader import load_config

    logging_setup.configure(json_lines=True)
    loaded = load_config(str(config))
    options = RuntimeOptions(config_path=str(config), state_dir=str(state),
                             socket_path=str(state / "heatctl.sock"), metrics_addr=None)
    from drivers.registry import build_drivers
    daemon = Daemon(options, loaded, driver_factory=build_drivers)
    samples: list[tuple[float, float, float, int]] = []  # (start, lateness, duration, skipped)
    account = daemon._account

    def recording_account(start, end, deadline, skipped, completed):
        samples.append((start, start - deadline, end - start, skipped))
        account(start, end, deadline, skipped, completed)

    daemon._account = recording_account  # type: ignore[method-assign]
    await daemon.start()
    # Each driver's read() duration (wrapped here, for the figures only).
    reads: dict[str, list[float]] = {}
    for name, sup in daemon.supervisors.items():
        def timed(read=sup.driver.read, out=reads.setdefault(name, [])):
            async def run():
                t = time.perf_counter()
                try:
                    return await read()
                finally:
                    out.append(time.perf_counter() - t)
            return run
        sup.driver.read = timed()
    runner = asyncio.create_task(daemon.run())
    t_ready = time.monotonic() + 60
    while not daemon._ready:
        if time.monotonic() > t_ready:
            raise RuntimeError("daemon not ready within 60 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(WARMUP_S)
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    first = len(samples)
    read_first = {n: len(v) for n, v in reads.items()}
    cpu0, t0, plant0 = cpu_seconds(), time.monotonic(), cpu_seconds(plant_pid)
    overruns0 = daemon.overruns_total
    await asyncio.sleep(duration_s)
    cpu1, t1, plant1 = cpu_seconds(), time.monotonic(), cpu_seconds(plant_pid)
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    measured = samples[first:]
    rss, hwm = rss_mib()
    status = {
        "mode": daemon.state.mode.value if daemon.state is not None else None,
        "good": sum(1 for c in daemon.last.checked.values() if getattr(c, "good", False))
        if daemon.last is not None else 0,
        "drivers": {n: s.status().get("connected") for n, s in daemon.supervisors.items()},
    }
    overruns = daemon.overruns_total - overruns0
    daemon._stopping = True
    daemon._wake.set()
    try:
        await asyncio.wait_for(runner, 30)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the figures are taken already
        pass
    read_ms = {n: round(1e3 * quantile(v[read_first[n]:], 0.5), 2) for n, v in reads.items()}
    read_p99 = {n: round(1e3 * quantile(v[read_first[n]:], 0.99), 2) for n, v in reads.items()}
    late = [x[1] for x in measured]
    dur = [x[2] for x in measured]
    return {"ticks": len(measured), "late_p50": quantile(late, 0.5), "late_p99": quantile(late, 0.99),
            "late_p999": quantile(late, 0.999), "late_max": max(late, default=float("nan")),
            "dur_p50": quantile(dur, 0.5), "dur_p99": quantile(dur, 0.99),
            "dur_max": max(dur, default=float("nan")), "overruns": overruns,
            "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_mib": rss, "hwm_mib": hwm,
            "plant_cpu_pct": 100 * (plant1 - plant0) / (t1 - t0),
            "seconds": t1 - t0, "read_p50_ms": read_ms, "read_p99_ms": read_p99, **status}


def run_one(tick_s: float, duration_s: float, workdir: Path, profile: str | None,
            bmcs: int = BMCS, ipmi_read_interval_s: float = 0.0) -> dict:
    src = workdir / f"scale-src-{tick_s:g}.yaml"
    out = workdir / f"scale-{tick_s:g}.yaml"
    src.write_text(yaml.safe_dump(scale_site(tick_s, bmcs, ipmi_read_interval_s), sort_keys=False))
    log = open(workdir / f"plant-{tick_s:g}.log", "w")
    plant = subprocess.Popen([sys.executable, __file__, "--serve", str(src), str(out)],
                             stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not out.exists():
            if plant.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plant did not start; see {log.name}")
            time.sleep(0.2)
        time.sleep(1.0)  # the servers are up when the config is written; let the first step run
        state = workdir / f"state-{tick_s:g}"
        state.mkdir()
        return asyncio.run(measure(out, state, duration_s, profile, plant.pid))
    finally:
        plant.send_signal(signal.SIGTERM)
        try:
            plant.wait(timeout=20)
        except subprocess.TimeoutExpired:
            plant.kill()
        log.close()


def report(tick_s: float, r: dict) -> str:
    ms = lambda v: f"{1e3 * v:.2f} ms"  # noqa: E731
    return (f"tick {tick_s:g} s, {r['ticks']} ticks over {r['seconds']:.0f} s: "
            f"lateness p50 {ms(r['late_p50'])}, p99 {ms(r['late_p99'])}, p99.9 {ms(r['late_p999'])}, "
            f"max {ms(r['late_max'])}; tick duration p50 {ms(r['dur_p50'])}, p99 {ms(r['dur_p99'])}, "
            f"max {ms(r['dur_max'])}; overruns {r['overruns']}; CPU {r['cpu_pct']:.1f} % of one core; "
            f"RSS {r['rss_mib']:.0f} MiB (peak {r['hwm_mib']:.0f}); plant process CPU "
            f"{r['plant_cpu_pct']:.0f} %; mode {r['mode']}, "
            f"{r['good']} readings good; drivers connected {r['drivers']}; driver read() p50 "
            f"{r['read_p50_ms']} ms, p99 {r['read_p99_ms']} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=300.0, help="measured seconds per tick period")
    ap.add_argument("--ticks", default="0.1,1.0", help="tick periods to run (s), comma-separated")
    ap.add_argument("--profile", default=None, help="write a cProfile of the 100 ms run here")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument("--bmcs", type=int, default=BMCS, help=f"number of BMCs (default {BMCS})")
    ap.add_argument("--ipmi-read-interval", type=float, default=0.0, metavar="S",
                    help="ask each BMC at most every S seconds (the IPMI driver's "
                         "min_read_interval_s; default 0: every tick, the shipped default)")
    ap.add_argument("--serve", nargs=2, metavar=("CONFIG_IN", "CONFIG_OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), Path(args.serve[1])))
        return
    ticks = [float(t) for t in args.ticks.split(",")]
    print(f"# heatctl scale benchmark: {len(MODBUS_DEVICES) * MODBUS_FLOATS_PER_DEVICE * 2} extra "
          f"Modbus registers, {OPCUA_ITEMS} OPC-UA items, {args.bmcs} BMCs; {os.cpu_count()} cores; "
          f"{args.duration:g} s measured per tick period after {WARMUP_S:g} s warm-up; IPMI read "
          f"interval {args.ipmi_read_interval:g} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for tick in ticks:
            prof = args.profile if (args.profile and tick < 0.5) else None
            r = run_one(tick, args.duration, Path(tmp), prof, args.bmcs, args.ipmi_read_interval)
            print(report(tick, r), flush=True)
            if args.json:
                print(json.dumps({"tick_s": tick, **r}), flush=True)


if __name__ == "__main__":
    main()
