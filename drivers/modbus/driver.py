"""Modbus TCP driver: coalesced reads, verified writes, bounded requests, its own reconnect.

Layers (STYLE.md, "sans-I/O"): the register codec and the read planner live in
`drivers.modbus.codec` (pure, no I/O); `ModbusDriver` here is the thin I/O shell around them, on
pymodbus's AsyncModbusTcpClient: connection, timeouts, retries, verification, health.

Concurrency, documented as the brief asks: **one TCP connection per driver, requests sequential**.
pymodbus keeps one request outstanding per connection (an asyncio.Lock in
TransactionManager.execute), so "concurrent" requests on one connection would only queue behind that
lock, and a queued request's own timeout would run while it waits. Many Modbus TCP gateways and PLCs
also accept only a few connections, so the driver does not open one per device id. Instead:

* every request is bounded by `timeout_s` (our own timeout scope, expired by one watchdog timer
  per driver rather than a timer made and cancelled per request; pymodbus's retries and reconnect
  are disabled so that they cannot stall a tick);
* register responses are decoded in one unpack and handed to the codec as raw bytes
  (`drivers.modbus.responses`, registered on this driver's client only);
* device ids that answered last time are read first; a device id that timed out (or that its
  gateway reports as not answering, exception 0x0A/0x0B) is marked silent: it is read last, gets one
  attempt per read (no retries), and after its first failure in a read its other requests are marked
  LOST without being sent. A silent device thus costs at most one `timeout_s` per read, and never
  delays the readings of the devices that answer;
* an optional overall deadline (`read_deadline_s`) marks the requests not yet sent LOST.

Worst-case `read()` time without a deadline: (answering devices' requests) + (silent devices) x
`timeout_s` + (retries of a device that has just gone silent) x `timeout_s`.

Link handling: if a read timed out and nothing at all answered, the TCP peer is presumed dead (a
half-open socket or a hung server looks exactly like this): the connection is closed and re-opened
after a bounded exponential backoff (`drivers.backoff.Backoff`, `reconnect_min_s` doubling to
`reconnect_max_s`). During the backoff, reads return LOST at once, with a reason that names
host:port and the next try, instead of paying `timeout_s` again. Backoff decisions use the driver's
`clock`; pacing sleeps (`min_request_gap_s`) use the event loop's real time.

Scaling: engineering value = raw * scale + offset. Writes invert it, round to the nearest integer
(ties to even) for integer types and refuse values that do not fit. `bool` points read 0.0 / 1.0
and ignore scale and offset (a coil, a discrete input, or a register read as value != 0).
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from controller.core.readings import Quality, Reading
from controller.site.modbus_schema import ModbusDriverConfig, ModbusPointSource
from drivers.backoff import Backoff
from drivers.base import (Clock, Driver, DriverPoint, LinkState, WriteResult, put_readings,
                          retry_text)
from drivers.modbus.responses import RESPONSE_CLASSES
from drivers.modbus.codec import (  # noqa: F401 - re-exported: the codec's public names
    BIT_TABLES, MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ, WRITABLE_TABLES, PlannedPoint,
    ReadRequest, RequestDecoder, decode_raw, decode_value, encode_raw, encode_value,
    plan_reads, register_count, to_engineering, to_raw,
)

log = structlog.get_logger(__name__)

# Exception codes with which a gateway says that the device behind it did not answer: treated like
# a timeout (the device is silent), not like a device that answered with an error.
_GATEWAY_CODES = {0x0A: "gateway_path_unavailable", 0x0B: "gateway_no_response"}
_EXCEPTION_NAMES = {
    0x01: "illegal_function", 0x02: "illegal_address", 0x03: "illegal_value",
    0x04: "device_failure", 0x05: "acknowledge", 0x06: "device_busy",
    0x07: "negative_acknowledge", 0x08: "memory_parity_error", **_GATEWAY_CODES,
}


# --------------------------------------------------------------------------------------------
# The I/O shell
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fail:
    """A request that did not give an answer usable as data."""

    reason: str  # short token for Reading.reason / WriteResult.reason
    detail: str  # for health().last_error and the log
    # True: the device did not answer (timeout, gateway says so); it becomes "silent".
    silent: bool = False
    # True: the TCP connection is gone.
    link: bool = False


@dataclass(frozen=True)
class _Written:
    words: tuple[int, ...]
    ts: float
    readback: float | None


class ModbusDriver(Driver):
    """Modbus TCP driver (see the module docstring for the request, timeout and reconnect policy).

    `points` maps point name -> DriverPoint whose `source` is a ModbusPointSource. `read_deadline_s`
    (optional) bounds a whole read(): requests not yet sent at the deadline are reported LOST.
    """

    kind = "modbus"

    def __init__(self, name: str, config: ModbusDriverConfig, points: Mapping[str, DriverPoint],
                 clock: Clock = time.monotonic, *, read_deadline_s: float | None = None):
        super().__init__(name, config, points, clock)
        self.config: ModbusDriverConfig = config
        sources: dict[str, ModbusPointSource] = {}
        for pname, point in self.points.items():
            src = point.source
            if not isinstance(src, ModbusPointSource):
                raise TypeError(f"point {pname}: source is {type(src).__name__}, not a Modbus source")
            if src.scale == 0 and src.data_type != "bool":
                raise ValueError(f"point {pname}: scale 0 makes every reading equal its offset")
            if src.address + register_count(src) > 65536:
                raise ValueError(f"point {pname}: registers run past address 65535")
            sources[pname] = src
        self._sources = sources
        self.requests: list[ReadRequest] = plan_reads(sources, config.max_gap_registers)
        self._by_device: dict[int, list[ReadRequest]] = {}
        # Per request, its decoder and the points' units, computed once (the read path is hot).
        self._decoders: dict[int, tuple[RequestDecoder, tuple[str, ...]]] = {}
        for req in self.requests:
            self._by_device.setdefault(req.device_id, []).append(req)
            dec = RequestDecoder(req)
            self._decoders[id(req)] = (dec, tuple(self.points[n].config.unit for n in dec.names))
        # Per request, its pymodbus call and its failure key, built once.
        self._read_calls = {id(req): (self._read_call(req.table, req.address, req.count, req.device_id),
                                      ("read", req.device_id, req.table, req.address))
                            for req in self.requests}
        self.read_deadline_s = read_deadline_s
        self._client: AsyncModbusTcpClient | None = None
        self._client_lost: asyncio.Future[None] | None = None
        self._scope_deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        # The timeout scope of the request in flight, expired by the watchdog (_call). Calls are
        # sequential under the supervisor; a request that overlaps another gets a timer of its own.
        self._scope: asyncio.Timeout | None = None
        self._ever_connected = False
        self._closed = False
        # Reset only when a device answers, not on TCP connect: a peer that accepts connections but
        # never answers still backs off.
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._link_error = ""  # the last link failure, without host:port (for LOST reasons)
        self._health.endpoint = f"{config.host}:{config.port}"
        self._silent: set[int] = set()
        self._last_request_at: dict[int, float] = {}  # event-loop time, for min_request_gap_s
        self._last_written: dict[str, _Written] = {}
        # Failure keys -> reason, so that each failure is logged once and its recovery once.
        self._failing: dict[tuple[Any, ...], str] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Try to connect once; never raises (an unreachable device shows as LOST readings)."""
        self._closed = False
        try:
            await self._ensure_connected()
        except Exception as exc:  # noqa: BLE001 - start must not raise
            self._note_fail(("link",), "internal_error", repr(exc))

    async def close(self) -> None:
        """Close the connection; idempotent."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._drop_client()

    # ---- health helpers --------------------------------------------------------------------

    def health(self):
        h = self._health
        h.connected = self._client is not None and self._client.connected
        wait = self._backoff.wait_s(self.clock())
        if self._closed:
            h.state, h.next_try_in_s = LinkState.CLOSED, None
        elif h.connected:
            h.state = LinkState.DEGRADED if self._silent else LinkState.CONNECTED
            h.next_try_in_s = None
        else:
            h.state = LinkState.BACKING_OFF if wait > 0 else LinkState.CONNECTING
            h.next_try_in_s = wait
        h.extra["silent_devices"] = float(len(self._silent))
        h.extra["backoff_s"] = float(self._backoff.delay_s)
        return h

    def _not_connected(self) -> str:
        """Why a read or write is not sent now: host:port, the last link failure, the next try."""
        detail = f" ({self._link_error})" if self._link_error else ""
        return (f"not_connected: {self._health.endpoint}{detail}; "
                f"{retry_text(self._backoff.wait_s(self.clock()))}")

    def _note_fail(self, key: tuple[Any, ...], reason: str, detail: str, **ctx: Any) -> None:
        self._health.errors_total += 1
        self._health.last_error = detail
        if key not in self._failing:
            log.warning("modbus_failure", driver=self.name, what=key, reason=reason,
                        detail=detail, **ctx)
        self._failing[key] = reason

    def _note_ok(self, key: tuple[Any, ...], **ctx: Any) -> None:
        if key in self._failing:
            reason = self._failing.pop(key)
            log.info("modbus_recovered", driver=self.name, what=key, was=reason, **ctx)

    # ---- connection ------------------------------------------------------------------------

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._client_lost = None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken transport may complain
                pass

    def _link_down(self, detail: str, backoff: bool) -> None:
        """Close the connection. With `backoff`, do not reconnect before the backoff expires."""
        self._drop_client()
        self._link_error = detail
        retry = f"; {retry_text(self._schedule_reconnect())}" if backoff else ""
        self._note_fail(("link",), "connection_lost",
                        f"{self._health.endpoint}: {detail}{retry}",
                        host=self.config.host, port=self.config.port)

    def _schedule_reconnect(self) -> float:
        return self._backoff.failure(self.clock())

    async def _ensure_connected(self) -> bool:
        if self._client is not None and self._client.connected:
            return True
        if self._client is not None:  # lost since the last call (peer closed it)
            self._drop_client()
            self._link_error = "connection closed by peer"
            self._note_fail(("link",), "connection_lost",
                            f"{self._health.endpoint}: connection closed by peer",
                            host=self.config.host, port=self.config.port)
        if self._closed or not self._backoff.ready(self.clock()):
            return False
        cfg = self.config
        # reconnect_delay=0 turns pymodbus's own reconnect task off and retries=0 its retries: the
        # driver does both itself, bounded. pymodbus's timeout is only a backstop behind ours.
        # Resolved when the peer closes the connection, so that a request in flight fails at once
        # instead of waiting out its timeout (pymodbus leaves its response future pending).
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_connect(up: bool) -> None:
            if not up and not lost.done():
                lost.set_result(None)

        def expire_request(_f: asyncio.Future) -> None:
            # The request in flight (if any) fails now rather than at its timeout: one callback
            # per connection, not one added and removed per request (the hot path).
            scope = self._scope
            if scope is not None and scope.expired() is False:
                scope.reschedule(asyncio.get_running_loop().time())

        lost.add_done_callback(expire_request)

        client = AsyncModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.timeout_s * 2 + 0.1,
                                      retries=0, reconnect_delay=0, reconnect_delay_max=0,
                                      name=f"heatctl-{self.name}", trace_connect=on_connect)
        for cls in RESPONSE_CLASSES:  # register responses in one unpack (drivers.modbus.responses)
            client.register(cls)
        try:
            ok = await asyncio.wait_for(client.connect(), timeout=cfg.timeout_s)
            detail = "connect refused or failed"
        except (asyncio.TimeoutError, OSError, ModbusException) as exc:
            ok, detail = False, f"connect: {exc.__class__.__name__}: {exc}"
        if not ok or not client.connected:
            client.close()
            self._link_error = detail
            retry_in_s = self._schedule_reconnect()
            self._note_fail(("link",), "not_connected",
                            f"{cfg.host}:{cfg.port}: {detail}; {retry_text(retry_in_s)}",
                            host=cfg.host, port=cfg.port, retry_in_s=retry_in_s)
            return False
        self._client = client
        self._client_lost = lost
        if self._ever_connected:
            self._health.reconnects_total += 1
            # A device that dropped off may have restarted and lost its setpoints: re-send them all.
            self._last_written.clear()
        self._ever_connected = True
        return True

    # ---- one request -----------------------------------------------------------------------

    async def _call(self, device_id: int, call: Callable[[AsyncModbusTcpClient], Awaitable[Any]],
                    retries: int, deadline: float | None) -> Any:
        """Send one request (with up to `retries` re-sends on timeout); the response or a _Fail."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            client = self._client
            if client is None or not client.connected:
                return _Fail("connection_lost", "connection lost", link=True)
            gap = self.config.min_request_gap_s
            if gap > 0:
                wait = self._last_request_at.get(device_id, float("-inf")) + gap - loop.time()
                if wait > 0:
                    if deadline is not None and loop.time() + wait >= deadline:
                        return _Fail("deadline", "read deadline reached before the request")
                    await asyncio.sleep(wait)  # pacing the device asks for, not a test wait
            budget = self.config.timeout_s
            truncated = False
            if deadline is not None and deadline - loop.time() < budget:
                budget, truncated = deadline - loop.time(), True
                if budget <= 0:
                    return _Fail("deadline", "read deadline reached before the request")
            self._health.requests_total += 1
            sent_at = self._last_request_at[device_id] = loop.time()
            lost = self._client_lost
            # The request runs in this task under a timeout scope (no task per request: this is
            # the hot path). The scope has no timer of its own: the driver's one watchdog
            # (_watch) expires it at its deadline, and a peer that closes the connection expires
            # it at once (_ensure_connected), since pymodbus would leave the response future
            # pending until its own timeout. Same bound as asyncio.timeout(budget), without a
            # timer made and cancelled per request.
            response = None
            # Another request of this driver already holds the watchdog (two calls overlapping,
            # which the supervisor never does): this one is bounded by a timer of its own.
            own_timer = self._scope is not None
            try:
                async with asyncio.timeout(budget if own_timer else None) as scope:
                    if lost is not None and lost.done():
                        return _Fail("connection_lost", "connection lost", link=True)
                    if not own_timer:
                        self._scope, self._scope_deadline = scope, sent_at + budget
                        self._watch(loop)
                    try:
                        response = await call(client)
                    finally:
                        if not own_timer:
                            self._scope = None
                timed_out = False
            except TimeoutError:
                timed_out = True
            except ConnectionException as exc:
                return _Fail("connection_lost", f"{exc}", link=True)
            except (ModbusException, OSError) as exc:
                if not client.connected:
                    return _Fail("connection_lost", f"{exc}", link=True)
                return _Fail("protocol_error", f"device {device_id}: {exc.__class__.__name__}: {exc}")
            if timed_out:
                if not client.connected or (lost is not None and lost.done()):
                    return _Fail("connection_lost", "connection closed while waiting", link=True)
                if truncated:  # cut short by the read deadline: no verdict on the device
                    return _Fail("deadline", f"device {device_id}: read deadline reached "
                                             "while waiting")
                attempt += 1
                if attempt > retries:
                    return _Fail("timeout", f"device {device_id}: no answer within {budget:.3g} s",
                                 silent=True)
                continue
            if response.isError():
                code = int(getattr(response, "exception_code", 0) or 0)
                name = _EXCEPTION_NAMES.get(code, f"exception_{code}")
                return _Fail(name, f"device {device_id}: exception response {code:#04x} ({name})",
                             silent=code in _GATEWAY_CODES)
            return response

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure the watchdog fires no later than the request in flight's deadline."""
        w = self._watchdog
        if w is not None and w.when() <= self._scope_deadline:
            return
        if w is not None:
            w.cancel()
        self._watchdog = loop.call_at(self._scope_deadline, self._watchdog_fired, loop)

    def _watchdog_fired(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        scope = self._scope
        if scope is None or scope.expired() is not False:
            return  # no request in flight: the next one arms it again
        if loop.time() >= self._scope_deadline:
            scope.reschedule(loop.time())  # expires: TimeoutError in the request's task
        else:
            self._watch(loop)  # a later request is in flight: wait for its deadline

    @staticmethod
    def _read_call(table: str, address: int, count: int, device_id: int):
        def call(client: AsyncModbusTcpClient):
            if table == "holding":
                return client.read_holding_registers(address, count=count, device_id=device_id)
            if table == "input":
                return client.read_input_registers(address, count=count, device_id=device_id)
            if table == "coil":
                return client.read_coils(address, count=count, device_id=device_id)
            return client.read_discrete_inputs(address, count=count, device_id=device_id)
        return call

    @staticmethod
    def _words(response: Any, table: str, count: int) -> list[int]:
        if table in BIT_TABLES:
            bits = list(response.bits)[:count]
            if len(bits) < count:
                raise ValueError(f"short answer: {len(bits)} bits for {count}")
            return [1 if b else 0 for b in bits]
        regs = response.registers
        if len(regs) < count:
            raise ValueError(f"short answer: {len(regs)} registers for {count}")
        return regs

    # ---- read ------------------------------------------------------------------------------

    async def read(self) -> dict[str, Reading]:
        """Read every point; never raises. A failed request's points are LOST at once."""
        try:
            return await self._read()
        except Exception as exc:  # noqa: BLE001 - a driver never raises into the control loop
            log.exception("modbus_read_internal_error", driver=self.name)
            self._health.errors_total += 1
            self._health.last_error = f"internal error: {exc!r}"
            return self.lost_all("internal_error")

    def _device_order(self) -> list[int]:
        # Answering devices first, silent ones last: a silent device never delays the others.
        return sorted(self._by_device, key=lambda d: (d in self._silent, d))

    async def _read(self) -> dict[str, Reading]:
        if not await self._ensure_connected():
            return self.lost_all(self._not_connected())
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if self.read_deadline_s is None else started + self.read_deadline_s
        out: dict[str, Reading] = {}
        answered = timed_out = link_lost = cut_short = False
        for device_id in self._device_order():
            skip_reason = ""
            for req in self._by_device[device_id]:
                if link_lost or skip_reason:
                    self._lose(out, req, "connection_lost" if link_lost else skip_reason)
                    continue
                retries = 0 if device_id in self._silent else self.config.retries
                call, key = self._read_calls[id(req)]
                result = await self._call(device_id, call, retries, deadline)
                if isinstance(result, _Fail):
                    self._lose(out, req, result.reason)
                    if result.link:
                        link_lost = True
                        self._link_down(result.detail, backoff=False)
                        continue
                    if result.reason == "deadline":
                        skip_reason, cut_short = "deadline", True
                        continue
                    if result.silent:
                        if result.reason == "timeout":
                            timed_out = True
                        else:
                            answered = True  # a gateway answered for its silent device
                        self._silent.add(device_id)
                        skip_reason = "device_not_answering"
                        self._note_fail(("device", device_id), result.reason, result.detail,
                                        device_id=device_id)
                    else:
                        answered = True  # the device answered, with an error
                        self._note_fail(key, result.reason, result.detail, device_id=device_id,
                                        table=req.table, address=req.address, count=req.count)
                    continue
                answered = True
                if self._failing or self._silent:  # the common case: nothing to recover from
                    self._silent.discard(device_id)
                    self._note_ok(("device", device_id), device_id=device_id)
                    self._note_ok(key)
                self._decode_into(out, req, result)
        if answered:
            self._backoff.success()
            self._health.last_ok_ts = self.clock()
            if self._failing:
                self._note_ok(("link",), host=self.config.host, port=self.config.port)
        elif timed_out and not link_lost and not cut_short:
            # Every device was tried, none answered: presume the peer dead, reconnect later.
            self._link_down("no answer from any device on this connection", backoff=True)
        self._health.extra["read_duration_s"] = loop.time() - started
        # A point is missing only if the plan left it out (never): still, never return fewer.
        if len(out) != len(self.points):
            for name, point in self.points.items():
                if name not in out:
                    out[name] = Reading.lost(point.config.unit, self.clock(), "not_read")
        return out

    def _lose(self, out: dict[str, Reading], req: ReadRequest, reason: str) -> None:
        now = self.clock()
        for p in req.points:
            out[p.name] = Reading.lost(self.points[p.name].config.unit, now, reason)

    def _decode_into(self, out: dict[str, Reading], req: ReadRequest, response: Any) -> None:
        now = self.clock()
        try:
            words = self._words(response, req.table, req.count)
        except (ValueError, AttributeError) as exc:
            self._note_fail(("decode", req.device_id, req.table, req.address), "decode_error",
                            str(exc))
            for p in req.points:
                out[p.name] = Reading(None, self.points[p.name].config.unit, now, Quality.BAD,
                                      "decode_error")
            return
        decoder, units = self._decoders[id(req)]
        if len(words) != req.count:
            words = words[:req.count]
        # A NaN or inf from the device is BAD "not_finite": it answered, the value is unusable.
        put_readings(out, decoder.names, units, decoder.values(words, getattr(response, "raw", None)), now)

    # ---- write -----------------------------------------------------------------------------

    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        """Write each changed value (or each due for refresh) and verify it by reading it back.

        Unchanged values (same registers as last verified write, refresh not due) are not sent and
        come back ok with reason "unchanged". Never raises.
        """
        results: list[WriteResult] = []
        for name, value in commands.items():
            try:
                result = await self._write_one(name, value)
            except Exception as exc:  # noqa: BLE001 - a driver never raises into the control loop
                log.exception("modbus_write_internal_error", driver=self.name, point=name)
                result = WriteResult(name, value, ok=False, reason=f"internal_error: {exc!r}")
            if not result.ok:
                self._health.writes_failed_total += 1
                self._last_written.pop(name, None)  # try again next time
                if ("write", name) not in self._failing:
                    log.warning("modbus_write_failed", driver=self.name, point=name,
                                value=value, reason=result.reason)
                self._failing[("write", name)] = result.reason
            else:
                self._note_ok(("write", name), point=name)
            results.append(result)
        return results

    async def _write_one(self, name: str, value: float) -> WriteResult:
        point = self.points.get(name)
        if point is None:
            return WriteResult(name, value, ok=False, reason="unknown_point")
        src = self._sources[name]
        if src.table not in WRITABLE_TABLES:
            return WriteResult(name, value, ok=False, reason=f"not_writable: table {src.table}")
        try:
            words = encode_value(value, src)
        except (ValueError, OverflowError, struct.error) as exc:
            return WriteResult(name, value, ok=False, reason=f"out_of_type: {exc}")
        now = self.clock()
        last = self._last_written.get(name)
        refresh = self.config.write_refresh_s
        if last is not None and last.words == tuple(words) and (
                refresh <= 0 or now - last.ts < refresh):
            return WriteResult(name, value, ok=True, reason="unchanged", readback=last.readback)
        if not await self._ensure_connected():
            return WriteResult(name, value, ok=False, reason=self._not_connected())

        dev, address = src.device_id, src.address
        if src.table == "coil":
            def call(c: AsyncModbusTcpClient):
                return c.write_coil(address, bool(words[0]), device_id=dev)
        elif len(words) == 1:
            def call(c: AsyncModbusTcpClient):
                return c.write_register(address, words[0], device_id=dev)
        else:
            def call(c: AsyncModbusTcpClient):
                return c.write_registers(address, list(words), device_id=dev)
        # Retrying a write is safe: every write sets an absolute value (FC5/6/16 are idempotent).
        result = await self._call(dev, call, self.config.retries, None)
        if isinstance(result, _Fail):
            return self._write_failed(name, value, result)
        self._silent.discard(dev)

        rb_address = src.readback_address if src.readback_address is not None else address
        count = len(words)
        rb = await self._call(dev, self._read_call(src.table, rb_address, count, dev),
                              self.config.retries, None)
        if isinstance(rb, _Fail):
            return self._write_failed(name, value, rb, prefix="readback_")
        try:
            got = self._words(rb, src.table, count)
        except (ValueError, AttributeError) as exc:
            return WriteResult(name, value, ok=False, reason=f"readback_decode_error: {exc}")
        readback = decode_value(got, src)
        if got != words:
            return WriteResult(name, value, ok=False, readback=readback,
                               reason=f"readback_mismatch: wrote {words}, read {got} "
                                      f"(at {src.table} {rb_address})")
        self._last_written[name] = _Written(tuple(words), now, readback)
        return WriteResult(name, value, ok=True, readback=readback)

    def _write_failed(self, name: str, value: float, fail: _Fail, prefix: str = "") -> WriteResult:
        if fail.link:
            self._link_down(fail.detail, backoff=False)  # counts the error
        else:
            self._health.errors_total += 1
            self._health.last_error = fail.detail
            if fail.silent:
                self._silent.add(self._sources[name].device_id)
        return WriteResult(name, value, ok=False, reason=prefix + fail.reason)

