"""Benchmark: one concurrent DCMI power read of 64 simulated BMCs through the IPMI driver.

Starts 64 simulated BMCs on 127.0.0.1 (free ports, one process), reads them all through
`IpmiDriver.read()` several times, and prints the median wall time of one read of all 64 and the
per-reading round trip measured on a single BMC. Bounded: gives up after BENCH_LIMIT_S.

    .venv/bin/python bench/bench_ipmi.py [--bmcs 64] [--reads 20]

Client and servers share one process (and its GIL), so the 64-BMC figure includes the simulated
BMCs' own work; against real BMCs the wall time is set by the slowest BMC, not by this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.site.models import PointConfig  # noqa: E402
from drivers.base import DriverPoint  # noqa: E402
from drivers.ipmi.driver import IpmiDriver  # noqa: E402
from controller.site.ipmi_schema import BmcConfig, IpmiDriverConfig, IpmiPointSource  # noqa: E402
from simulations.wire.bmc import start_bmcs, stop_bmcs  # noqa: E402

USER, PASSWORD = "admin", "heatctl-sim"
BENCH_LIMIT_S = 60.0


def make_driver(bmcs, credentials: str) -> IpmiDriver:
    config = IpmiDriverConfig(
        kind="ipmi", credentials_file=credentials, timeout_s=0.5,
        bmcs=tuple(BmcConfig(name=b.name, host="127.0.0.1", port=b.port, max_power_w=5000,
                             min_power_w=600) for b in bmcs))
    points = {f"{b.name}_power": DriverPoint(f"{b.name}_power", PointConfig(unit="W",
                                                                            range=(0, 6000)),
                                             IpmiPointSource(driver="bmcs", bmc=b.name))
              for b in bmcs}
    return IpmiDriver("bmcs", config, points)


async def bench(n_bmcs: int, reads: int, credentials: str) -> int:
    deadline = time.monotonic() + BENCH_LIMIT_S
    bmcs = start_bmcs(n_bmcs, USER, PASSWORD, power_w=[1000.0 + i for i in range(n_bmcs)])
    driver = make_driver(bmcs, credentials)
    single = make_driver(bmcs[:1], credentials)
    try:
        t0 = time.perf_counter()
        first = await driver.read()
        login_s = time.perf_counter() - t0
        walls, lost = [], 0
        c0 = time.process_time()
        for _ in range(reads):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            readings = await driver.read()
            walls.append(time.perf_counter() - t0)
            lost += sum(1 for r in readings.values() if not r.good)
            wrong = [n for n, b in zip(readings, bmcs) if readings[n].value not in (None, b.power_w)]
            assert not wrong, wrong
        cpu_per_read = (time.process_time() - c0) / max(len(walls), 1)
        await single.read()  # log in
        singles = []
        for _ in range(max(reads, 50)):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            await single.read()
            singles.append(time.perf_counter() - t0)
        first_lost = sum(1 for r in first.values() if not r.good)
        print(f"BMCs: {n_bmcs}, reads: {len(walls)}")
        print(f"first read incl. {n_bmcs} RMCP+ logins: {login_s * 1000:.1f} ms "
              f"({first_lost} lost)")
        print(f"one concurrent read of all {n_bmcs}: median {statistics.median(walls) * 1000:.2f} ms, "
              f"min {min(walls) * 1000:.2f} ms, max {max(walls) * 1000:.2f} ms; lost readings: {lost}")
        print(f"per reading, amortised: {statistics.median(walls) / n_bmcs * 1000:.3f} ms")
        print(f"CPU per read of all {n_bmcs} (this process: the driver and the simulated BMCs, "
              f"all threads): {cpu_per_read * 1000:.2f} ms")
        print(f"per-reading round trip, one BMC through read(): median "
              f"{statistics.median(singles) * 1000:.3f} ms")
        return 0 if lost == 0 else 1
    finally:
        await driver.close()
        await single.close()
        stop_bmcs(bmcs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bmcs", type=int, default=64)
    parser.add_argument("--reads", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        credentials = Path(tmp) / "bmc.yaml"
        credentials.write_text(f"username: {USER}\npassword: {PASSWORD}\n")
        return asyncio.run(bench(args.bmcs, args.reads, str(credentials)))


if __name__ == "__main__":
    sys.exit(main())
