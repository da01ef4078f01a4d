"""ModbusDriver against the real simulated plant server on 127.0.0.1 (free ports only: xdist-safe).

Waits are bounded polls of a condition (`poll_until`), never a sleep standing in for one.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest
from structlog.testing import capture_logs

from controller.core.readings import Quality
from drivers.base import LinkState
from drivers.modbus.driver import (
    ModbusDriver,
    decode_raw,
    encode_raw,
    plan_reads,
    to_raw,
)
from controller.site.modbus_schema import ModbusPointSource
from simulations.wire.modbus_server import ModbusPlantServer
from tests.modbus_harness import (  # noqa: F401 - rig is a fixture
    TIMEOUT_S, driver_config, point, points, poll_until, rig)


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------
# Codec (pure)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word_order,byte_order,words", [
    ("big", "big", [0x3F80, 0x0000]),        # ABCD
    ("little", "big", [0x0000, 0x3F80]),     # CDAB
    ("big", "little", [0x803F, 0x0000]),     # BADC
    ("little", "little", [0x0000, 0x803F]),  # DCBA
])
def test_float32_layouts_are_the_four_usual_orders(word_order, byte_order, words):
    assert encode_raw(1.0, "float32", word_order, byte_order) == words
    assert decode_raw(words, "float32", word_order, byte_order) == 1.0


def test_int_codec_known_words():
    assert encode_raw(-2, "int16") == [0xFFFE]
    assert encode_raw(0x12345678, "uint32", "little") == [0x5678, 0x1234]
    assert decode_raw([0x0102, 0x0304, 0x0506, 0x0708], "float64") == struct.unpack(
        ">d", bytes(range(1, 9)))[0]


def test_to_raw_rounds_and_refuses_what_does_not_fit():
    src = ModbusPointSource(driver="plc", table="holding", address=0, data_type="uint16", scale=0.1)
    assert to_raw(55.56, src) == 556  # nearest integer
    assert to_raw(55.54, src) == 555
    with pytest.raises(ValueError):
        to_raw(-0.1, src)
    with pytest.raises(ValueError):
        to_raw(6553.6, src)
    with pytest.raises(ValueError):
        to_raw(float("nan"), src)
    b = ModbusPointSource(driver="plc", table="coil", address=0, data_type="bool")
    with pytest.raises(ValueError):
        to_raw(0.5, b)


# ------------------------------------------------------------------------------------------
# Every data type x word order x byte order, over the wire, with scale and offset
# ------------------------------------------------------------------------------------------

# raw values that use every byte of their type
RAW = {"int16": -12345, "uint16": 54321, "int32": -123456789, "uint32": 3_000_000_000,
       "float32": 1234.5, "float64": -98765.4321}
RAW_WRITE = {"int16": 23456, "uint16": 1234, "int32": 987654321, "uint32": 4_000_000_001,
             "float32": -0.375, "float64": 12345.678901}


@pytest.mark.parametrize("byte_order", ["big", "little"])
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("data_type", sorted(RAW))
async def test_round_trip_every_type_and_order(rig, data_type, word_order, byte_order):
    scale, offset = (0.5, -10.0) if data_type.startswith(("int", "uint")) else (2.0, 1.0)
    common = dict(data_type=data_type, word_order=word_order, byte_order=byte_order,
                  scale=scale, offset=offset)
    pts = points(point("in", table="input", address=7, **common),
                 point("out", table="holding", address=20, **common))
    srv = await rig.server(pts)
    read_eng = RAW[data_type] * scale + offset
    srv.set_value("in", read_eng)
    srv.set_value("out", 0.0 * scale + offset)
    drv = await rig.driver(srv)

    readings = await drv.read()
    assert readings["in"].good and readings["in"].value == pytest.approx(read_eng, rel=1e-12)
    assert readings["out"].value == pytest.approx(offset)

    write_eng = RAW_WRITE[data_type] * scale + offset
    [result] = await drv.write({"out": write_eng})
    assert result.ok, result.reason
    assert result.readback == pytest.approx(write_eng, rel=1e-12)
    # The server decodes with pymodbus's converters: the driver's codec agrees with them.
    assert srv.get_value("out") == pytest.approx(write_eng, rel=1e-12)
    assert (await drv.read())["out"].value == pytest.approx(write_eng, rel=1e-12)


async def test_bools_in_coils_discrete_inputs_and_registers(rig):
    pts = points(point("coil", table="coil", address=3, data_type="bool"),
                 point("di", table="discrete_input", address=9, data_type="bool"),
                 point("reg", table="holding", address=5, data_type="bool"))
    srv = await rig.server(pts)
    srv.set_value("di", 1)
    srv.set_words(1, "holding", 5, [0x0100])  # any non-zero register reads as true
    drv = await rig.driver(srv)
    r = await drv.read()
    assert (r["coil"].value, r["di"].value, r["reg"].value) == (0.0, 1.0, 1.0)
    results = await drv.write({"coil": 1, "reg": 0})
    assert all(res.ok for res in results), results
    assert srv.get_value("coil") == 1.0 and srv.get_value("reg") == 0.0
    [refused] = await drv.write({"di": 0})
    assert not refused.ok and refused.reason.startswith("not_writable")


async def test_readings_carry_unit_and_the_driver_clock(rig):
    clock = FakeClock(1234.5)
    pts = points(point("t", unit="degC", table="input", address=0, data_type="float32"))
    srv = await rig.server(pts)
    srv.set_value("t", 21.5)
    drv = await rig.driver(srv, clock=clock)
    r = (await drv.read())["t"]
    assert (r.value, r.unit, r.ts, r.quality) == (21.5, "degC", 1234.5, Quality.GOOD)


async def test_nan_from_the_device_is_bad_not_good(rig):
    pts = points(point("t", table="input", address=0, data_type="float32"))
    srv = await rig.server(pts)
    srv.set_words(1, "input", 0, [0x7FC0, 0x0000])
    drv = await rig.driver(srv)
    r = (await drv.read())["t"]
    assert r.quality is Quality.BAD and not r.good and r.reason == "not_finite"


# ------------------------------------------------------------------------------------------
# Coalescing
# ------------------------------------------------------------------------------------------


def test_plan_merges_within_gap_and_splits_beyond_it():
    def plan(addresses, gap):
        srcs = {f"p{a}": ModbusPointSource(driver="plc", table="holding", address=a)
                for a in addresses}
        return [(r.address, r.count) for r in plan_reads(srcs, gap)]

    assert plan([0, 1, 2], 0) == [(0, 3)]
    assert plan([0, 9], 8) == [(0, 10)]          # 8 unused registers between: one request
    assert plan([0, 10], 8) == [(0, 1), (10, 1)]  # 9 unused: two
    # Never across devices or tables.
    srcs = {"a": ModbusPointSource(driver="plc", table="holding", address=0),
            "b": ModbusPointSource(driver="plc", table="input", address=1),
            "c": ModbusPointSource(driver="plc", table="holding", address=1, device_id=2)}
    assert len(plan_reads(srcs, 8)) == 3


def test_plan_respects_the_register_and_bit_limits():
    regs = {f"r{a}": ModbusPointSource(driver="plc", table="input", address=a) for a in range(300)}
    assert [r.count for r in plan_reads(regs, 8)] == [125, 125, 50]
    # A float32 never straddles two requests.
    floats = {f"f{a}": ModbusPointSource(driver="plc", table="input", address=2 * a,
                                         data_type="float32") for a in range(100)}
    assert [r.count for r in plan_reads(floats, 0)] == [124, 76]
    bits = {f"c{a}": ModbusPointSource(driver="plc", table="coil", address=a, data_type="bool")
            for a in range(2500)}
    assert [r.count for r in plan_reads(bits, 8)] == [2000, 500]


async def test_ten_points_in_three_clusters_take_three_requests(rig):
    addresses = [0, 2, 4, 6, 40, 42, 44, 100, 102, 104]
    pts = points(*(point(f"p{a}", table="input", address=a, data_type="float32")
                   for a in addresses))
    srv = await rig.server(pts)
    for i, a in enumerate(addresses):
        srv.set_value(f"p{a}", 10.0 + i)
    drv = await rig.driver(srv, max_gap_registers=8)
    before = drv.health().requests_total
    r = await drv.read()
    assert [r[f"p{a}"].value for a in addresses] == [10.0 + i for i in range(10)]
    assert drv.health().requests_total - before == 3
    assert [(q.address, q.count) for q in srv.read_requests()] == [(0, 8), (40, 6), (100, 6)]


async def test_gap_beyond_max_gap_splits_on_the_wire(rig):
    pts = points(point("a", table="holding", address=0), point("b", table="holding", address=5))
    srv = await rig.server(pts)
    drv = await rig.driver(srv, max_gap_registers=3)  # 4 unused registers between: split
    await drv.read()
    assert [(q.address, q.count) for q in srv.read_requests()] == [(0, 1), (5, 1)]


async def test_300_contiguous_registers_take_three_requests(rig):
    pts = points(*(point(f"r{a}", table="holding", address=a) for a in range(300)))
    srv = await rig.server(pts)
    for a in range(300):
        srv.set_value(f"r{a}", a)
    drv = await rig.driver(srv)
    r = await drv.read()
    assert all(r[f"r{a}"].value == a for a in range(300))
    assert [q.count for q in srv.read_requests()] == [125, 125, 50]
    assert max(q.count for q in srv.read_requests()) <= 125


# ------------------------------------------------------------------------------------------
# Writes
# ------------------------------------------------------------------------------------------


def write_requests(srv: ModbusPlantServer) -> list:
    return [q for q in srv.requests if not q.is_read]


async def test_write_that_does_not_take_fails_verification(rig):
    pts = points(point("p1", unit="pct", table="holding", address=0, scale=0.1))
    srv = await rig.server(pts)
    srv.set_value("p1", 20.0)
    srv.ignore_writes.add("p1")
    drv = await rig.driver(srv)
    [res] = await drv.write({"p1": 55.0})
    assert not res.ok and res.reason.startswith("readback_mismatch")
    assert res.readback == pytest.approx(20.0)
    assert drv.health().writes_failed_total == 1
    # A failed write is not remembered: the next call sends it again.
    [res] = await drv.write({"p1": 55.0})
    assert not res.ok and len(write_requests(srv)) == 2
    assert drv.health().writes_failed_total == 2
    srv.ignore_writes.clear()
    [res] = await drv.write({"p1": 55.0})
    assert res.ok and srv.get_value("p1") == pytest.approx(55.0)


async def test_write_verified_at_readback_address(rig):
    pts = points(point("sp", table="holding", address=0, readback_address=100))
    srv = await rig.server(pts)
    drv = await rig.driver(srv)
    [res] = await drv.write({"sp": 7})
    assert not res.ok and res.reason.startswith("readback_mismatch")  # register 100 still 0
    # The device applies the setpoint and reports it at 100: verification passes.
    srv.on_write = lambda name, value: srv.set_words(1, "holding", 100, [int(value)])
    [res] = await drv.write({"sp": 8})
    assert res.ok and res.readback == 8.0
    assert srv.read_requests()[-1].address == 100


async def test_writes_only_on_change_plus_refresh(rig):
    clock = FakeClock()
    pts = points(point("p1", unit="pct", table="holding", address=0, scale=0.1))
    srv = await rig.server(pts)
    seen: list[tuple[str, float]] = []
    srv.on_write = lambda n, v: seen.append((n, round(v, 3)))
    drv = await rig.driver(srv, clock=clock, write_refresh_s=10.0)

    assert (await drv.write({"p1": 50.0}))[0].ok
    [same] = await drv.write({"p1": 50.0})
    [same_raw] = await drv.write({"p1": 50.04})  # the same register value (500)
    assert same.ok and same.reason == "unchanged" and same_raw.reason == "unchanged"
    assert len(write_requests(srv)) == 1
    assert (await drv.write({"p1": 51.0}))[0].reason == ""
    assert len(write_requests(srv)) == 2
    clock.advance(10.0)  # refresh due: re-sent although unchanged
    assert (await drv.write({"p1": 51.0}))[0].reason == ""
    assert len(write_requests(srv)) == 3
    assert seen == [("p1", 50.0), ("p1", 51.0), ("p1", 51.0)]


async def test_values_that_do_not_fit_are_refused_without_a_request(rig):
    pts = points(point("u", table="holding", address=0, data_type="uint16"),
                 point("i", table="holding", address=1, data_type="int16", scale=0.01))
    srv = await rig.server(pts)
    drv = await rig.driver(srv)
    results = await drv.write({"u": -1, "i": 400.0, "nope": 1})
    assert [r.ok for r in results] == [False, False, False]
    assert results[0].reason.startswith("out_of_type") and results[2].reason == "unknown_point"
    assert write_requests(srv) == []
    assert drv.health().writes_failed_total == 3


# ------------------------------------------------------------------------------------------
# Link loss, reconnect, silent devices
# ------------------------------------------------------------------------------------------


async def test_server_stopped_then_restarted_on_the_same_port(rig):
    pts = points(point("t", table="input", address=0, data_type="float32"),
                 point("q", table="holding", address=0))
    srv = await rig.server(pts)
    srv.set_value("t", 30.0)
    drv = await rig.driver(srv, reconnect_min_s=0.05, reconnect_max_s=0.2)
    assert (await drv.read())["t"].good

    await srv.stop()
    started = time.monotonic()
    r = await drv.read()  # the very next read
    assert all(x.quality is Quality.LOST for x in r.values())
    assert all(x.value is None for x in r.values())  # never the last value
    assert time.monotonic() - started < TIMEOUT_S  # the closed socket is noticed, not waited out
    # Let the backoff grow to its bound while the server is down.
    for _ in range(5):
        await drv.read()
    assert not drv.health().connected

    await srv.start()  # same port
    assert srv.port == drv.config.port

    async def good() -> bool:
        return (await drv.read())["t"].good
    took = await poll_until(good, timeout_s=2.0)
    assert took <= 0.2 + TIMEOUT_S + 0.2  # reconnect_max_s + one request + scheduling slack
    assert drv.health().connected and drv.health().reconnects_total == 1


async def test_silent_device_does_not_stall_the_other_device_on_the_same_connection(rig):
    # Device 2 has three requests' worth of points; device 1 one request.
    pts = points(point("a", table="input", address=0, data_type="float32", device_id=1),
                 *(point(f"s{i}", table="input", address=50 * i, device_id=2) for i in range(3)))
    srv = await rig.server(pts)
    srv.set_value("a", 1.5)
    drv = await rig.driver(srv, retries=1)
    assert all(r.good for r in (await drv.read()).values())

    srv.silent_devices.add(2)
    first = await drv.read()  # device 2 times out: timeout x (1 + retries), then skipped
    assert first["a"].good
    assert {first[f"s{i}"].reason for i in range(3)} == {"timeout", "device_not_answering"}
    for _ in range(3):
        before = len(srv.read_requests(2))
        started = time.monotonic()
        r = await drv.read()
        took = time.monotonic() - started
        assert r["a"].good and r["a"].value == 1.5
        assert all(r[f"s{i}"].quality is Quality.LOST for i in range(3))
        # one probe of the silent device per read, without retries: at most one timeout
        assert len(srv.read_requests(2)) - before == 1
        assert took < 2 * TIMEOUT_S
    assert drv.health().connected  # device 1 answers: the link is kept
    assert drv.health().state is LinkState.DEGRADED

    srv.silent_devices.clear()
    r = await drv.read()
    assert all(x.good for x in r.values())
    assert drv.health().state is LinkState.CONNECTED and drv.health().next_try_in_s is None


async def test_silent_server_does_not_affect_another_driver(rig):
    a_pts = points(point("a", table="input", address=0, data_type="float32"))
    b_pts = points(point("b", table="input", address=0, data_type="float32", device_id=7))
    srv_a, srv_b = await rig.server(a_pts), await rig.server(b_pts)
    srv_a.set_value("a", 1.0)
    srv_b.set_value("b", 2.0)
    drv_a = await rig.driver(srv_a, name="a")
    drv_b = await rig.driver(srv_b, name="b", reconnect_min_s=0.05, reconnect_max_s=0.1)
    srv_b.silent = True
    reasons = []
    for _ in range(3):
        started = time.monotonic()
        ra, rb = await asyncio.gather(drv_a.read(), drv_b.read())
        assert ra["a"].good and rb["b"].quality is Quality.LOST
        assert time.monotonic() - started < 2 * TIMEOUT_S
        reasons.append(rb["b"].reason)
    # Nothing answered on b's connection: presumed dead and closed, re-opened after a backoff;
    # meanwhile its reads return at once instead of paying the timeout again.
    assert reasons[0] == "timeout" and reasons[1].startswith("not_connected: 127.0.0.1:")
    assert "next try" in reasons[1]
    srv_b.silent = False

    async def good() -> bool:
        return (await drv_b.read())["b"].good
    await poll_until(good, timeout_s=2.0)
    assert (await drv_a.read())["a"].good


async def test_exception_response_loses_only_its_request_and_keeps_the_link(rig):
    pts = points(point("ok", table="input", address=0, device_id=1),
                 point("bad", table="input", address=0, device_id=3))
    srv = await rig.server(pts)
    srv.exception_devices[3] = 0x02
    drv = await rig.driver(srv)
    r = await drv.read()
    assert r["ok"].good and r["bad"].quality is Quality.LOST and r["bad"].reason == "illegal_address"
    assert drv.health().connected and drv.health().errors_total == 1
    srv.exception_devices[3] = 0x0B  # gateway: target device failed to respond
    r = await drv.read()
    assert r["bad"].reason == "gateway_no_response" and r["ok"].good


async def test_unreachable_device_never_raises(rig):
    port = free_port()  # nothing listens there
    pts = points(point("t", table="input", address=0))
    drv = ModbusDriver("plc", driver_config(port), pts)
    await drv.start()
    try:
        r = await drv.read()
        assert r["t"].quality is Quality.LOST and r["t"].reason.startswith("not_connected")
        [w] = await drv.write({"t": 1})
        assert not w.ok
        h = drv.health()
        assert not h.connected and h.errors_total >= 1 and h.last_error
        # Issue 15: the line names the host and port and when the next try is.
        assert h.state is LinkState.BACKING_OFF and h.endpoint == f"127.0.0.1:{port}"
        assert f"127.0.0.1:{port}" in h.last_error and "next try in" in h.last_error
        assert f"127.0.0.1:{port}" in r["t"].reason and "next try" in r["t"].reason
        assert 0 < h.next_try_in_s <= drv.config.reconnect_max_s
    finally:
        await drv.close()
    assert drv.health().state is LinkState.CLOSED


async def test_read_deadline_bounds_a_read_and_answering_devices_go_first(rig):
    pts = points(*(point(f"d{d}", table="input", address=0, device_id=d) for d in (1, 2, 3)))
    srv = await rig.server(pts)
    srv.set_value("d3", 33)
    srv.silent_devices.update({1, 2})
    deadline_s = TIMEOUT_S * 1.5
    drv = await rig.driver(srv, read_deadline_s=deadline_s)
    started = time.monotonic()
    r = await drv.read()  # 1 times out, 2 runs into the deadline, 3 is never sent
    assert time.monotonic() - started < deadline_s + 0.1
    assert [r[f"d{d}"].reason for d in (1, 2, 3)] == ["timeout", "deadline", "deadline"]
    # Next read: device 3 (not known silent) is read before the silent ones.
    started = time.monotonic()
    r = await drv.read()
    assert time.monotonic() - started < deadline_s + 0.1
    assert r["d3"].good and r["d3"].value == 33
    assert r["d1"].quality is Quality.LOST and r["d2"].quality is Quality.LOST


async def test_min_request_gap_paces_requests_to_one_device(rig):
    pts = points(*(point(f"r{i}", table="holding", address=100 * i) for i in range(3)))
    srv = await rig.server(pts)
    drv = await rig.driver(srv, min_request_gap_s=0.05)
    await drv.read()  # the first read may start at once; the next three requests are paced
    started = time.monotonic()
    r = await drv.read()
    assert all(x.good for x in r.values())
    assert time.monotonic() - started >= 3 * 0.05 * 0.9


async def test_failure_logged_once_and_recovery_once(rig):
    pts = points(point("a", table="input", address=0, device_id=1),
                 point("b", table="input", address=0, device_id=2))
    srv = await rig.server(pts)
    drv = await rig.driver(srv)
    await drv.read()
    srv.silent_devices.add(2)
    with capture_logs() as logs:
        for _ in range(3):
            await drv.read()
        srv.silent_devices.clear()
        for _ in range(2):
            await drv.read()
    events = [e["event"] for e in logs]
    assert events == ["modbus_failure", "modbus_recovered"], logs
    assert drv.health().errors_total == 3
