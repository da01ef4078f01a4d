"""Modbus driver throughput against a bare pymodbus client, on 127.0.0.1 only. Bounded (< 30 s).

    .venv/bin/python bench/bench_modbus.py [--seconds 2.0]

Prints:
  1. points read per second through ModbusDriver.read() vs the same registers read with a bare
     AsyncModbusTcpClient issuing the same coalesced requests (no decoding, no readings): the ratio
     is the driver's overhead (codec, Reading objects, per-request timeout bookkeeping), by wall
     time and by this process's CPU time per read (the steadier one on a loaded machine);
  2. the wall time of one read() of 500 float32 points spread over 4 device ids of one server.

Server and client share one event loop and one CPU (pymodbus's server is pure Python): absolute
figures are a floor for a real PLC on a LAN, the ratio is the figure to watch.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from controller.site.models import PointConfig  # noqa: E402
from drivers.base import DriverPoint  # noqa: E402
from drivers.modbus.driver import ModbusDriver  # noqa: E402
from controller.site.modbus_schema import ModbusDriverConfig, ModbusPointSource  # noqa: E402
from simulations.wire.modbus_server import ModbusPlantServer  # noqa: E402


def float_points(n: int, devices: int) -> dict[str, DriverPoint]:
    pts = {}
    for i in range(n):
        dev = 1 + i % devices
        addr = 2 * (i // devices)
        name = f"t{i}"
        pts[name] = DriverPoint(name, PointConfig(unit="degC", range=(-1e9, 1e9)),
                                ModbusPointSource(driver="bench", device_id=dev, table="input",
                                                  address=addr, data_type="float32"))
    return pts


def config(port: int) -> ModbusDriverConfig:
    return ModbusDriverConfig(kind="modbus", host="127.0.0.1", port=port, timeout_s=1.0,
                              retries=0)


async def interleaved(fns, seconds: float,
                      slice_s: float = 0.2) -> list[tuple[int, float, float]]:
    """Run each fn() in turn for `slice_s` slices until `seconds` have passed; per fn, (calls,
    elapsed wall time, elapsed CPU time of this process). Interleaving keeps a noisy machine from
    favouring whichever ran in a quiet moment; CPU time (server and client are both in this
    process) does not count the time other processes held the CPU, so it is the steadier figure
    on a loaded machine."""
    for fn in fns:
        await fn()  # warm-up
    totals = [[0, 0.0, 0.0] for _ in fns]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for total, fn in zip(totals, fns):
            start, cpu_start = time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - start) < slice_s:
                await fn()
                total[0] += 1
            total[1] += elapsed
            total[2] += time.process_time() - cpu_start
    return [(int(c), s, cpu) for c, s, cpu in totals]


async def bench_throughput(seconds: float) -> None:
    pts = float_points(200, 1)  # 200 float32 = 400 registers = 4 requests
    server = ModbusPlantServer(pts)
    await server.start()
    for i, name in enumerate(pts):
        server.set_value(name, 20.0 + i / 10)
    driver = ModbusDriver("bench", config(server.port), pts)
    await driver.start()
    plan = driver.requests

    async def driver_read():
        readings = await driver.read()
        assert all(r.good for r in readings.values())

    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, retries=0,
                                  reconnect_delay=0)
    await client.connect()

    async def bare_read():
        for req in plan:
            rr = await client.read_input_registers(req.address, count=req.count,
                                                   device_id=req.device_id)
            assert not rr.isError()

    try:
        (d_calls, d_s, d_cpu), (b_calls, b_s, b_cpu) = await interleaved([driver_read, bare_read],
                                                                       2 * seconds)
    finally:
        client.close()
        await driver.close()
        await server.stop()
    d_pps = d_calls * len(pts) / d_s
    b_pps = b_calls * len(pts) / b_s
    print(f"[1] {len(pts)} float32 points, {len(plan)} coalesced requests per read "
          f"({sum(r.count for r in plan)} registers)")
    print(f"    driver   : {d_calls / d_s:8.0f} reads/s  {d_pps:10.0f} points/s  "
          f"{1e3 * d_s / d_calls:6.2f} ms/read")
    print(f"    bare     : {b_calls / b_s:8.0f} reads/s  {b_pps:10.0f} points/s  "
          f"{1e3 * b_s / b_calls:6.2f} ms/read")
    print(f"    ratio    : driver / bare = {d_pps / b_pps:.2f} (wall time); "
          f"{(b_cpu / b_calls) / (d_cpu / d_calls):.2f} (CPU time: {1e3 * d_cpu / d_calls:.2f} "
          f"vs {1e3 * b_cpu / b_calls:.2f} ms per read)")


async def bench_500_over_4(seconds: float) -> None:
    pts = float_points(500, 4)
    server = ModbusPlantServer(pts)
    await server.start()
    for i, name in enumerate(pts):
        server.set_value(name, float(i))
    driver = ModbusDriver("bench", config(server.port), pts)
    await driver.start()
    times: list[float] = []
    try:
        cold_start = time.perf_counter()
        readings = await driver.read()
        cold = time.perf_counter() - cold_start
        assert all(r.good for r in readings.values())
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            readings = await driver.read()
            times.append(time.perf_counter() - t0)
        assert all(r.good for r in readings.values())
    finally:
        await driver.close()
        await server.stop()
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"[2] one read() of {len(pts)} float32 points over 4 device ids "
          f"({len(driver.requests)} requests, sequential on one connection)")
    print(f"    first read {1e3 * cold:.2f} ms; over {len(times)} reads: median "
          f"{1e3 * statistics.median(times):.2f} ms, p95 {1e3 * p95:.2f} ms, "
          f"max {1e3 * times[-1]:.2f} ms")


async def main(seconds: float) -> None:
    start = time.perf_counter()
    await bench_throughput(seconds)
    await bench_500_over_4(seconds)
    print(f"(bench took {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per measured phase (max 8)")
    args = ap.parse_args()
    asyncio.run(main(min(args.seconds, 8.0)))
