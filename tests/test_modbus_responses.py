"""The driver's register responses (drivers.modbus.responses) and raw-byte decoding: the same
registers and values as pymodbus's own classes and the word path, and a request in flight that
fails at once when the peer closes (the one watchdog, not a timer per request)."""

from __future__ import annotations

import asyncio
import random
import struct
import time

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from controller.core.readings import Quality
from drivers.modbus.codec import RequestDecoder, plan_reads
from drivers.modbus.responses import RawHoldingRegistersResponse, RawInputRegistersResponse
from tests.modbus_harness import point, points, poll_until, rig  # noqa: F401 - rig is a fixture


@pytest.mark.parametrize("ours,theirs", [(RawHoldingRegistersResponse, ReadHoldingRegistersResponse),
                                         (RawInputRegistersResponse, ReadInputRegistersResponse)])
def test_raw_response_decodes_the_same_registers_as_pymodbus(ours, theirs):
    rnd = random.Random(7)
    for n in (1, 2, 50, 125):
        regs = [rnd.randrange(65536) for _ in range(n)]
        data = bytes([2 * n]) + struct.pack(f">{n}H", *regs)
        a, b = ours(), theirs()
        a.decode(data)
        b.decode(data)
        assert a.registers == b.registers == regs
        assert a.raw == data[1:] and a.function_code == b.function_code
        assert len(str(a)) < 120  # not every register, as pymodbus's debug line would print


@pytest.mark.parametrize("data", [bytes([6, 0, 1]), bytes([3, 0, 1, 2, 3])])
def test_raw_response_refuses_a_short_or_odd_byte_count(data):
    with pytest.raises(ModbusIOException):
        RawHoldingRegistersResponse().decode(data)


@pytest.mark.parametrize("word_order,byte_order", [("big", "big"), ("little", "big"),
                                                   ("big", "little"), ("little", "little")])
def test_values_from_raw_bytes_equal_values_from_words(word_order, byte_order):
    src = [point(f"f{i}", table="input", address=2 * i, data_type="float32", word_order=word_order,
                 byte_order=byte_order) for i in range(6)]
    src += [point("i", table="input", address=20, data_type="int16", scale=0.1, offset=-3),
            point("u", table="input", address=21, data_type="uint32", word_order=word_order,
                  byte_order=byte_order)]
    (req,) = plan_reads({p.name: p.source for p in src}, 8)
    dec = RequestDecoder(req)
    rnd = random.Random(11)
    for _ in range(200):
        words = [rnd.randrange(65536) for _ in range(req.count)]
        raw = struct.pack(f">{req.count}H", *words)
        want = dec.values(words)
        got = dec.values(words, raw)
        assert [repr(x) for x in got] == [repr(x) for x in want]  # NaN payloads included
        # a raw buffer of the wrong length is not trusted: the words decide
        assert [repr(x) for x in dec.values(words, raw[:-2])] == [repr(x) for x in want]


async def test_a_peer_that_closes_fails_the_request_in_flight_at_once(rig):  # noqa: F811
    pts = points(point("t", table="input", address=0, data_type="float32"))
    srv = await rig.server(pts)
    srv.set_value("t", 21.0)
    drv = await rig.driver(srv, timeout_s=5.0)  # long: the close, not the timeout, must end it
    assert (await drv.read())["t"].good
    srv.silent = True
    before = len(srv.read_requests(1))
    started = time.monotonic()
    read = asyncio.ensure_future(drv.read())

    async def asked() -> bool:
        return len(srv.read_requests(1)) > before
    await poll_until(asked, timeout_s=2.0)
    await srv.stop()
    r = await asyncio.wait_for(read, 3.0)
    assert r["t"].quality is Quality.LOST and r["t"].reason == "connection_lost"
    assert time.monotonic() - started < 2.5  # well inside the 5 s timeout


async def test_overlapping_reads_are_each_bounded_by_the_timeout(rig):  # noqa: F811
    # The watchdog serves one request at a time; a second call of the same driver (not the
    # supervisor's pattern, but `heatctl points` or a test may do it) must not unbound the first.
    pts = points(point("t", table="input", address=0, data_type="float32"))
    srv = await rig.server(pts)
    srv.set_value("t", 21.0)
    drv = await rig.driver(srv)  # TIMEOUT_S 0.15; pymodbus's own backstop is 2 x 0.15 + 0.1
    assert (await drv.read())["t"].good
    srv.silent = True
    started = time.monotonic()
    a, b = await asyncio.gather(drv.read(), drv.read())
    took = time.monotonic() - started
    assert a["t"].quality is Quality.LOST and b["t"].quality is Quality.LOST
    # Whichever times out first closes the silent link; the other then fails as connection lost.
    assert all(r["t"].reason.startswith(("timeout", "connection_lost", "not_connected")) for r in (a, b))
    assert took < 2 * 0.15 + 0.1  # each within its own timeout (queued behind pymodbus's lock)
