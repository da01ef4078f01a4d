"""The simulated plant's Modbus TCP server (pymodbus), with fault hooks for tests.

One datastore per device id (the device ids of the points, plus any passed in `devices`), each a
sparse map of the four tables; unmapped addresses read as 0. Values are encoded from each point's
ModbusPointSource with pymodbus's own converters (`convert_to_registers`) plus a byte swap, not with
the driver's codec, so that tests of the driver against this server are not a codec checked against
itself.

Fault hooks:
  silent = True           the server keeps its TCP sockets but never answers (clients time out)
  silent_devices = {2}    only those device ids never answer (a dead device behind a gateway)
  ignore_writes = {"p1"}  a write to that point is acknowledged but does not change its value
  exception_devices = {3: 0x04}  every request to that device id gets that exception code

`requests` records every request PDU the server received: (device_id, function_code, address, count).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer

from drivers.base import DriverPoint
from controller.site.modbus_schema import ModbusPointSource

# Function code -> table (Modbus Application Protocol v1.1b3, 6.1-6.17).
_FC_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete_input",
             3: "holding", 6: "holding", 16: "holding", 22: "holding", 23: "holding", 4: "input"}
_BIT_TABLES = {"coil", "discrete_input"}
_WRITE_FCS = {5, 6, 15, 16, 22, 23}
_SIZE = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bool": 1}
_INT_TYPES = {"int16", "uint16", "int32", "uint32"}
_DT = AsyncModbusTcpClient.DATATYPE


@dataclass(frozen=True)
class RequestRecord:
    device_id: int
    function_code: int
    address: int
    count: int

    @property
    def is_read(self) -> bool:
        return self.function_code in (1, 2, 3, 4)


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _size(src: ModbusPointSource) -> int:
    return 1 if src.table in _BIT_TABLES else _SIZE[src.data_type]


def encode_point(value: float, src: ModbusPointSource) -> list[int]:
    """Engineering value -> words (or [bit]) for `src`, using pymodbus's converters."""
    if src.table in _BIT_TABLES or src.data_type == "bool":
        return [1 if value else 0]
    raw: float | int = (value - src.offset) / src.scale
    if src.data_type in _INT_TYPES:
        raw = int(round(raw))
    regs = AsyncModbusTcpClient.convert_to_registers(
        raw, _DT[src.data_type.upper()], word_order=src.word_order)
    if src.byte_order == "little":
        regs = [_swap(r) for r in regs]
    return regs


def decode_point(words: list[int], src: ModbusPointSource) -> float:
    """Words (or [bit]) -> engineering value for `src`, using pymodbus's converters."""
    if src.table in _BIT_TABLES or src.data_type == "bool":
        return 1.0 if words[0] else 0.0
    if src.byte_order == "little":
        words = [_swap(w) for w in words]
    raw = AsyncModbusTcpClient.convert_from_registers(
        words, _DT[src.data_type.upper()], word_order=src.word_order)
    return float(raw) * src.scale + src.offset  # type: ignore[arg-type]


class _PlantContext(ModbusServerContext):
    """The server's datastore, backed by ModbusPlantServer.

    pymodbus 3.16 accepts a ModbusServerContext whose `old_simulator` is set and calls its
    async_getValues / async_setValues directly; the rest of ModbusServerContext (deprecated,
    SimDevice-based) is not used, hence no super().__init__.
    """

    def __init__(self, owner: "ModbusPlantServer"):  # noqa: D107 - no super().__init__ on purpose
        self._owner = owner
        self.old_simulator = True
        self.simdevices = []

    def device_ids(self) -> list[int]:
        return list(self._owner._stores)

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):
        return self._owner._get(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):
        return self._owner._set(device_id, func_code, address, list(values))


class ModbusPlantServer:
    """A pymodbus async TCP server for the simulated plant's Modbus points."""

    def __init__(self, points: Mapping[str, DriverPoint], host: str = "127.0.0.1", port: int = 0,
                 *, devices: Iterable[int] = ()):
        self.points = dict(points)
        self.host = host
        self.port = port
        self.silent = False
        self.silent_devices: set[int] = set()
        self.ignore_writes: set[str] = set()
        self.exception_devices: dict[int, int] = {}
        # Called (point, engineering value) after a client's write changed a point.
        self.on_write: Callable[[str, float], None] | None = None
        self.requests: list[RequestRecord] = []
        self._sources: dict[str, ModbusPointSource] = {}
        for name, p in self.points.items():
            if not isinstance(p.source, ModbusPointSource):
                raise TypeError(f"point {name}: not a Modbus source")
            self._sources[name] = p.source
        ids = set(devices) | {s.device_id for s in self._sources.values()}
        self._stores: dict[int, dict[str, dict[int, int]]] = {
            d: {t: {} for t in ("coil", "discrete_input", "holding", "input")} for d in ids}
        self._server: ModbusTcpServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen on host:port (port 0: a free port, then kept in `.port` for restarts)."""
        if self._server is not None:
            return
        server = ModbusTcpServer(_PlantContext(self), address=(self.host, self.port),
                                 ignore_missing_devices=True, trace_pdu=self._trace_pdu)
        await server.serve_forever(background=True)
        if not server.transport:
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}")
        self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every client connection; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            # Let the closed transports' callbacks run, so the port is free for a restart.
            await asyncio.sleep(0)

    async def __aenter__(self) -> "ModbusPlantServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- values ----------------------------------------------------------------------------

    def set_value(self, point: str, value: float) -> None:
        """Set a point's engineering value (encoded by its source), as the plant model does."""
        src = self._sources[point]
        table = self._stores[src.device_id][src.table]
        for i, w in enumerate(encode_point(value, src)):
            table[src.address + i] = w

    def get_value(self, point: str) -> float:
        """A point's engineering value, decoded from the store."""
        src = self._sources[point]
        table = self._stores[src.device_id][src.table]
        return decode_point([table.get(src.address + i, 0) for i in range(_size(src))], src)

    def set_words(self, device_id: int, table: str, address: int, words: list[int]) -> None:
        """Raw access for tests: store words (or bits) from `address`."""
        store = self._stores.setdefault(
            device_id, {t: {} for t in ("coil", "discrete_input", "holding", "input")})
        for i, w in enumerate(words):
            store[table][address + i] = w

    def read_requests(self, device_id: int | None = None) -> list[RequestRecord]:
        return [r for r in self.requests
                if r.is_read and (device_id is None or r.device_id == device_id)]

    # ---- pymodbus callbacks ----------------------------------------------------------------

    def _trace_pdu(self, sending: bool, pdu):
        if not sending:
            count = getattr(pdu, "count", 0) or len(
                getattr(pdu, "registers", None) or getattr(pdu, "bits", None) or [0])
            self.requests.append(RequestRecord(pdu.dev_id, pdu.function_code,
                                               getattr(pdu, "address", 0), count))
        return pdu

    def _store(self, device_id: int, func_code: int):
        if self.silent or device_id in self.silent_devices:
            # With ignore_missing_devices, pymodbus sends no answer at all: the client times out.
            raise NoSuchIdException(f"device {device_id} is silent")
        if device_id in self.exception_devices:
            return ExcCodes(self.exception_devices[device_id])
        if device_id not in self._stores:
            return ExcCodes.GATEWAY_NO_RESPONSE  # what a gateway answers for an absent device
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        return self._stores[device_id][table]

    def _get(self, device_id: int, func_code: int, address: int, count: int):
        store = self._store(device_id, func_code)
        if isinstance(store, ExcCodes):
            return store
        if address + count > 65536:
            return ExcCodes.ILLEGAL_ADDRESS
        values = [store.get(address + i, 0) for i in range(count)]
        if _FC_TABLE[func_code] in _BIT_TABLES:
            return [bool(v) for v in values]
        return values

    def _set(self, device_id: int, func_code: int, address: int, values: list):
        store = self._store(device_id, func_code)
        if isinstance(store, ExcCodes):
            return store
        if func_code not in _WRITE_FCS:
            return ExcCodes.ILLEGAL_FUNCTION
        table = _FC_TABLE[func_code]
        if address + len(values) > 65536:
            return ExcCodes.ILLEGAL_ADDRESS
        written = range(address, address + len(values))
        touched = [n for n, s in self._sources.items()
                   if s.device_id == device_id and s.table == table
                   and s.address < written.stop and written.start < s.address + _size(s)]
        frozen: set[int] = set()
        for n in touched:
            if n in self.ignore_writes:
                s = self._sources[n]
                frozen.update(range(s.address, s.address + _size(s)))
        for i, v in enumerate(values):
            if address + i not in frozen:
                store[address + i] = int(bool(v)) if table in _BIT_TABLES else int(v)
        if self.on_write is not None:
            for n in touched:
                if n not in self.ignore_writes:
                    self.on_write(n, self.get_value(n))
        return None
