"""A reply that arrives after its request timed out is dropped, never read as the answer to the
next request on the same connection (a slow PLC answering late is the case: its stale registers
must not become another request's points).

The peer here is a FAKE, a scripted Modbus TCP server on 127.0.0.1: the real servers we run
(pymodbus's, the simulated plant's) cannot hold back one chosen reply and send it later. What
protects the driver is pymodbus 3.16 itself: its client keeps one request outstanding per
connection and its framer skips a frame whose transaction id is not the one in flight
(pymodbus/framer/base.py handleFrame, "Skipping"). This test pins that behaviour for the pymodbus
version we ship, since the driver's correctness after a timeout rests on it.
"""

from __future__ import annotations

import asyncio
import struct

from controller.core.readings import Quality
from drivers.modbus.driver import ModbusDriver
from tests.modbus_harness import driver_config, point, points, poll_until


class ScriptedPeer:
    """Answers read-input-registers (function 4) with `value(address)` in every register, except
    that the request it is told to hold gets no answer until the next request arrives; the held
    reply (its registers all `stale`) is then sent just before that next request's own reply."""

    def __init__(self, hold_address: int, stale: int = 0xDEAD):
        self.hold_address = hold_address
        self.stale = stale
        self.requests: list[tuple[int, int, int, int]] = []  # (tid, unit, address, count)
        self.held: bytes | None = None
        self.held_once = False
        self.server: asyncio.Server | None = None

    @staticmethod
    def value(address: int) -> int:
        return 100 + address

    @staticmethod
    def reply(tid: int, unit: int, words: list[int]) -> bytes:
        pdu = struct.pack(">BB", 4, 2 * len(words)) + struct.pack(f">{len(words)}H", *words)
        return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _proto, length, unit = struct.unpack(">HHHB", head)
                body = await reader.readexactly(length - 1)
                fc, address, count = struct.unpack(">BHH", body[:5])
                assert fc == 4, fc
                self.requests.append((tid, unit, address, count))
                if address == self.hold_address and not self.held_once:
                    self.held_once = True
                    self.held = self.reply(tid, unit, [self.stale] * count)
                    continue
                if self.held is not None:  # the late answer first, then the real one
                    writer.write(self.held)
                    self.held = None
                writer.write(self.reply(tid, unit, [self.value(address + i) for i in range(count)]))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_a_late_reply_is_not_taken_for_the_next_requests_answer():
    # Two requests on one device: registers 0 and 200 (too far apart to coalesce).
    pts = points(point("a", table="input", address=0, data_type="uint16"),
                 point("b", table="input", address=200, data_type="uint16"))
    peer = ScriptedPeer(hold_address=200)
    port = await peer.start()
    drv = ModbusDriver("plc", driver_config(port, timeout_s=0.3), pts)
    try:
        await drv.start()
        first = await drv.read()
        # a answered; b's reply was held: b alone is LOST (the device answered, so the link stays)
        assert first["a"].good and first["a"].value == 100
        assert first["b"].quality is Quality.LOST and first["b"].reason == "timeout"

        second = await drv.read()
        # The held reply for b (registers 0xDEAD) arrived first on the connection, ahead of the
        # reply to this read's request for a: it is dropped, a reads its own register.
        assert second["a"].good and second["a"].value == 100, second["a"]
        assert second["a"].value != 0xDEAD
        assert second["b"].good and second["b"].value == 300, second["b"]  # answered this time

        async def no_stale_left() -> bool:
            return peer.held is None
        await poll_until(no_stale_left, timeout_s=1.0)
        tids = [r[0] for r in peer.requests]
        assert len(set(tids)) == len(tids)  # every request had its own transaction id
    finally:
        await drv.close()
        await peer.stop()
