"""The driver's own Modbus TCP framing (drivers.modbus.mbap) and client (drivers.modbus.client).

The framing is pure and tested on bytes. The client and the driver's handling of what a misbehaving
peer sends (replies out of order, for an unknown transaction id, from another unit id, late, or not
MBAP at all) are tested against `ScriptedPeer`, a FAKE Modbus TCP server on 127.0.0.1 whose replies
the test scripts: no real server (pymodbus's included) sends such replies on demand. Well-behaved
servers are covered by tests/test_modbus_driver.py against the real pymodbus server.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from typing import Any, Callable

import pytest

from controller.core.readings import Quality
from controller.site.models import PointConfig
from controller.site.modbus_schema import ModbusDriverConfig, ModbusPointSource
from drivers.base import DriverPoint
from drivers.modbus import mbap
from drivers.modbus.client import MbapClient, ReplyUnitMismatch
from drivers.modbus.codec import RequestDecoder, plan_reads
from drivers.modbus.driver import ModbusDriver
from tests.test_modbus_driver import point, poll_until, rig  # noqa: F401 - rig is a fixture

TIMEOUT_S = 0.15


# ------------------------------------------------------------------------------------------
# Framing (pure)
# ------------------------------------------------------------------------------------------


def test_read_request_frame_is_the_spec_layout():
    # Implementation Guide 3.1.3 / Application Protocol 6.4: tid 7, protocol 0, length 6, unit 3,
    # FC4, address 0x0010, count 2.
    assert mbap.frame(7, 3, mbap.read_pdu("input", 0x10, 2)) == bytes.fromhex(
        "0007 0000 0006 03 04 0010 0002")


def test_write_pdus():
    assert mbap.write_coil_pdu(5, True) == bytes.fromhex("05 0005 ff00")
    assert mbap.write_register_pdu(1, 0xBEEF) == bytes.fromhex("06 0001 beef")
    assert mbap.write_registers_pdu(2, [1, 2]) == bytes.fromhex("10 0002 0002 04 0001 0002")


def test_splitter_joins_segments_and_splits_back_to_back_frames():
    a = mbap.frame(1, 1, bytes.fromhex("03 04 0001 0002"))
    b = mbap.frame(2, 9, bytes.fromhex("83 02"))
    sp = mbap.FrameSplitter()
    stream = a + b
    assert sp.feed(stream[:3]) == []
    assert sp.feed(stream[3:10]) == []
    assert sp.feed(stream[10:]) == [(1, 1, bytes.fromhex("03 04 0001 0002")),
                                    (2, 9, bytes.fromhex("83 02"))]
    assert sp.feed(a + a[:5]) == [(1, 1, bytes.fromhex("03 04 0001 0002"))]
    assert sp.feed(a[5:]) == [(1, 1, bytes.fromhex("03 04 0001 0002"))]


@pytest.mark.parametrize("header", ["0001 0001 0006 01", "0001 0000 0001 01", "0001 0000 0100 01"])
def test_splitter_refuses_what_is_not_mbap(header):
    with pytest.raises(mbap.FramingError):
        mbap.FrameSplitter().feed(bytes.fromhex(header) + b"\x03\x00")


def test_read_data_checks_function_code_and_length():
    assert mbap.read_data(bytes.fromhex("03 04 0001 0002"), 3, 4) == bytes.fromhex("0001 0002")
    with pytest.raises(mbap.ReplyError, match="short answer"):
        mbap.read_data(bytes.fromhex("03 02 0001"), 3, 4)
    with pytest.raises(mbap.ReplyError, match="short answer"):
        mbap.read_data(bytes.fromhex("03 04 0001"), 3, 4)  # byte count says 4, 2 arrived
    with pytest.raises(mbap.ReplyError, match="function code"):
        mbap.read_data(bytes.fromhex("04 02 0001"), 3, 2)
    assert mbap.exception_code(bytes.fromhex("83 02")) == 2
    assert mbap.exception_code(bytes.fromhex("03 02 0001")) is None


def test_bits_least_significant_first():
    assert mbap.bits(bytes([0b0000_0101, 0b1]), 9) == [1, 0, 1, 0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("word_order,byte_order", [("big", "big"), ("little", "big"),
                                                   ("big", "little"), ("little", "little")])
def test_values_from_wire_bytes_equal_values_from_words(word_order, byte_order):
    src = [point(f"f{i}", table="input", address=2 * i, data_type="float32", word_order=word_order,
                 byte_order=byte_order) for i in range(6)]
    src += [point("i", table="input", address=20, data_type="int16", scale=0.1, offset=-3),
            point("u", table="input", address=21, data_type="uint32", word_order=word_order,
                  byte_order=byte_order)]
    (req,) = plan_reads({p.name: p.source for p in src}, 8)
    dec = RequestDecoder(req)
    whole = RequestDecoder(plan_reads({p.name: p.source for p in src[:6]}, 8)[0])
    rnd = random.Random(11)
    for _ in range(200):
        words = [rnd.randrange(65536) for _ in range(req.count)]
        raw = struct.pack(f">{req.count}H", *words)
        for d, n in ((dec, req.count), (whole, 12)):
            want = d.values(words[:n])
            got = d.values_from_bytes(raw[:2 * n])
            assert [repr(x) for x in got] == [repr(x) for x in want]  # NaN payloads included
        # a raw buffer of the wrong length is not trusted: the words decide
        assert [repr(x) for x in dec.values(words, raw[:-2])] == [repr(x) for x in dec.values(words)]


async def test_a_peer_that_closes_fails_the_request_in_flight_at_once(rig):  # noqa: F811
    pts = {"t": point("t", table="input", address=0, data_type="float32")}
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


# ------------------------------------------------------------------------------------------
# A scripted peer (FAKE server) and the client
# ------------------------------------------------------------------------------------------


Frame = tuple[int, int, bytes]  # tid, unit, pdu


def registers_reply(pdu: bytes, base: int = 100) -> bytes:
    """A read reply whose register i holds base + address + i."""
    fc, address, count = struct.unpack(">BHH", pdu[:5])
    return bytes([fc, 2 * count]) + struct.pack(f">{count}H", *(base + address + i
                                                                 for i in range(count)))


class ScriptedPeer:
    """FAKE Modbus TCP server: `script(frames_so_far, writer)` decides what each batch gets."""

    def __init__(self, script: Callable[[list[Frame], asyncio.StreamWriter], Any]):
        self.script = script
        self.frames: list[Frame] = []
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        split = mbap.FrameSplitter()
        try:
            while data := await reader.read(4096):
                for f in split.feed(data):
                    self.frames.append(f)
                    self.script(f, writer)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def answer(frame_: Frame, writer: asyncio.StreamWriter, tid: int | None = None,
           unit: int | None = None) -> None:
    t, u, pdu = frame_
    writer.write(mbap.frame(t if tid is None else tid, u if unit is None else unit,
                            registers_reply(pdu)))


async def test_client_matches_replies_out_of_order_by_transaction_id():
    held: list[Frame] = []

    def script(f: Frame, writer: asyncio.StreamWriter) -> None:
        held.append(f)
        if len(held) == 2:  # answer the second request first
            answer(held[1], writer)
            answer(held[0], writer)

    peer = ScriptedPeer(script)
    port = await peer.start()
    client = await MbapClient.connect("127.0.0.1", port)
    try:
        _, first = client.request(1, mbap.read_pdu("holding", 10, 1))
        _, second = client.request(1, mbap.read_pdu("holding", 20, 1))
        r1, r2 = await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert r1 == bytes.fromhex("03 02") + struct.pack(">H", 110)
        assert r2 == bytes.fromhex("03 02") + struct.pack(">H", 120)
    finally:
        client.close()
        await peer.stop()


async def test_client_drops_a_reply_for_an_unknown_transaction_id():
    def script(f: Frame, writer: asyncio.StreamWriter) -> None:
        answer(f, writer, tid=(f[0] + 1000) % 0xFFFF)  # a reply nobody asked for
        answer(f, writer)

    peer = ScriptedPeer(script)
    port = await peer.start()
    client = await MbapClient.connect("127.0.0.1", port)
    try:
        _, fut = client.request(1, mbap.read_pdu("input", 0, 1))
        assert await asyncio.wait_for(fut, 5) == bytes.fromhex("04 02 0064")
        assert client.unmatched == 1
    finally:
        client.close()
        await peer.stop()


async def test_client_reports_a_reply_from_another_unit():
    peer = ScriptedPeer(lambda f, w: answer(f, w, unit=f[1] + 1))
    port = await peer.start()
    client = await MbapClient.connect("127.0.0.1", port)
    try:
        _, fut = client.request(2, mbap.read_pdu("input", 0, 1))
        with pytest.raises(ReplyUnitMismatch, match="unit id 3 to a request for unit id 2"):
            await asyncio.wait_for(fut, 5)
    finally:
        client.close()
        await peer.stop()


# ------------------------------------------------------------------------------------------
# The driver against misbehaving peers
# ------------------------------------------------------------------------------------------


def word_points(*specs: tuple[str, int, int]) -> dict[str, DriverPoint]:
    """(name, device_id, address) -> uint16 holding points far enough apart to be one request each."""
    return {n: DriverPoint(n, PointConfig(unit="x", range=(-1e9, 1e9)),
                           ModbusPointSource(driver="plc", device_id=d, table="holding", address=a))
            for n, d, a in specs}


def make_driver(port: int, pts: dict[str, DriverPoint], **kw: Any) -> ModbusDriver:
    kw.setdefault("timeout_s", TIMEOUT_S)
    kw.setdefault("retries", 0)
    kw.setdefault("reconnect_min_s", 0.05)
    kw.setdefault("reconnect_max_s", 0.2)
    return ModbusDriver("plc", ModbusDriverConfig(kind="modbus", host="127.0.0.1", port=port, **kw),
                        pts)


async def test_late_reply_to_a_timed_out_request_is_not_taken_for_the_next():
    """A reply that arrives after its request timed out must not be read as the next request's."""
    late: list[Frame] = []

    def script(f: Frame, writer: asyncio.StreamWriter) -> None:
        address = struct.unpack(">H", f[2][1:3])[0]
        if address == 0 and not late:
            late.append(f)  # held: answered after the next request arrives
            return
        if late and late[0] is not None:
            answer(late[0], writer)  # the stale reply first, then this one
            late[0] = None
        answer(f, writer)

    peer = ScriptedPeer(script)
    port = await peer.start()
    drv = make_driver(port, word_points(("a", 1, 0), ("b", 1, 100), ("c", 2, 50)))
    await drv.start()
    try:
        first = await drv.read()
        assert first["a"].quality is Quality.LOST and first["a"].reason == "timeout"
        # The device is now silent: one attempt, then its other requests are skipped.
        assert first["b"].reason == "device_not_answering"
        # c's request drew a's stale reply (register 0: 100) first, then its own (register 50).
        assert first["c"].value == 150.0 and first["c"].quality is Quality.GOOD
        assert drv._client.unmatched == 1
        second = await drv.read()
        assert [second[n].value for n in "abc"] == [100.0, 200.0, 150.0]
    finally:
        await drv.close()
        await peer.stop()


async def test_a_reply_from_another_unit_loses_only_its_request():
    def script(f: Frame, writer: asyncio.StreamWriter) -> None:
        answer(f, writer, unit=9 if f[1] == 2 else None)

    peer = ScriptedPeer(script)
    port = await peer.start()
    drv = make_driver(port, word_points(("a", 1, 0), ("b", 2, 0)))
    await drv.start()
    try:
        r = await drv.read()
        assert r["a"].value == 100.0 and r["a"].quality is Quality.GOOD
        assert r["b"].quality is Quality.LOST and r["b"].reason == "protocol_error"
        assert "unit id 9" in drv.health().last_error
        assert drv.health().connected
    finally:
        await drv.close()
        await peer.stop()


async def test_a_short_reply_is_bad_decode_error():
    def script(f: Frame, writer: asyncio.StreamWriter) -> None:
        writer.write(mbap.frame(f[0], f[1], bytes([f[2][0], 2, 0, 1])))  # 1 register of 2

    peer = ScriptedPeer(script)
    port = await peer.start()
    pts = {"f": DriverPoint("f", PointConfig(unit="x", range=(-1e9, 1e9)),
                            ModbusPointSource(driver="plc", table="input", address=0,
                                              data_type="float32"))}
    drv = make_driver(port, pts)
    await drv.start()
    try:
        r = await drv.read()
        assert r["f"].quality is Quality.BAD and r["f"].reason == "decode_error"
        assert "short answer: 2 bytes for 4" in drv.health().last_error
    finally:
        await drv.close()
        await peer.stop()


async def test_a_stream_that_is_not_modbus_drops_the_link_and_reconnects():
    def script(f: Frame, writer: asyncio.StreamWriter) -> None:
        if peer.connections == 1:
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        else:
            answer(f, writer)

    peer = ScriptedPeer(script)
    port = await peer.start()
    drv = make_driver(port, word_points(("a", 1, 0)))
    await drv.start()
    try:
        r = await drv.read()
        assert r["a"].quality is Quality.LOST and r["a"].reason == "connection_lost"
        assert "not a Modbus TCP frame" in drv.health().last_error
        deadline = time.monotonic() + 5
        while (r := await drv.read())["a"].quality is not Quality.GOOD:
            assert time.monotonic() < deadline, r["a"]
            await asyncio.sleep(0.02)
        assert r["a"].value == 100.0 and peer.connections == 2
    finally:
        await drv.close()
        await peer.stop()
