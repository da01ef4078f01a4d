"""A thin Modbus TCP client: MBAP frames over one asyncio connection, replies matched by transaction id.

Why not pymodbus's client: profiling `bench/bench_modbus.py` showed its per-request path (a PDU
object per request, a per-register decode loop, trace hooks, `asyncio.wait_for`) costing more than
the driver's own work; the driver needs only the raw reply bytes, which its codec decodes in one
struct unpack. Timeouts are the caller's (`expire`); this class only sends, matches and fails.

Replies are matched by transaction id, so several requests may be outstanding on the connection;
a reply whose transaction id is not outstanding (a late reply to a request that timed out, or a
peer's mistake) is counted in `unmatched` and dropped. A stream that is not MBAP closes the
connection: nothing after it can be trusted to be in step.
"""

from __future__ import annotations

import asyncio

from drivers.modbus.mbap import FrameSplitter, FramingError, frame


class ReplyUnitMismatch(ValueError):
    """The reply came back with another unit id than the request's."""


class MbapClient(asyncio.Protocol):
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()  # the factory runs inside create_connection
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, tuple[int, asyncio.Future[bytes]]] = {}
        self._tid = 0
        self._split = FrameSplitter()
        self.unmatched = 0
        self.lost_reason = ""

    @classmethod
    async def connect(cls, host: str, port: int) -> "MbapClient":
        """Open the connection (the caller bounds the time); raises OSError."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, host, port)
        return proto

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def request(self, unit: int, pdu: bytes) -> tuple[int, asyncio.Future[bytes]]:
        """Send one request; its reply PDU (or ConnectionError) arrives on the future."""
        transport = self._transport
        if transport is None:
            raise ConnectionError(self.lost_reason or "not connected")
        tid = self._tid
        while True:  # 1..65535, skipping ids still outstanding
            tid = tid + 1 if tid < 0xFFFF else 1
            if tid not in self._pending:
                break
        self._tid = tid
        fut = self._loop.create_future()
        self._pending[tid] = (unit, fut)
        transport.write(frame(tid, unit, pdu))
        return tid, fut

    def forget(self, tid: int) -> None:
        """Stop waiting for `tid`: a reply that still comes counts as unmatched."""
        self._pending.pop(tid, None)

    def close(self) -> None:
        if self._transport is not None:
            self.lost_reason = self.lost_reason or "connection closed by the driver"
            self._transport.close()

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._split.feed(data)
        except FramingError as exc:
            self.lost_reason = str(exc)
            self._fail_all(ConnectionError(str(exc)))
            self._transport.close()  # type: ignore[union-attr]
            return
        pending = self._pending
        for tid, unit, pdu in frames:
            entry = pending.pop(tid, None)
            if entry is None:
                self.unmatched += 1
                continue
            want, fut = entry
            if fut.done():
                continue
            if unit != want:
                fut.set_exception(ReplyUnitMismatch(
                    f"reply from unit id {unit} to a request for unit id {want}"))
            else:
                fut.set_result(pdu)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.lost_reason:
            self.lost_reason = f"connection lost: {exc}" if exc else "connection closed by peer"
        self._fail_all(ConnectionError(self.lost_reason))

    def _fail_all(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for _, fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
