"""Register read responses decoded in one struct call, for the driver's own pymodbus client.

pymodbus 3.16 decodes a register response one `struct.unpack(">H")` per register, and formats the
whole response (every register) with `str()` for a debug log line that is off, twice per request:
together the largest cost of a coalesced read after the server's own (bench/bench_modbus.py under
cProfile). These subclasses decode the same bytes into the same `registers` with one unpack, keep
the raw bytes (`raw`: the registers big-endian, as on the wire) so that the codec can unpack values
without packing the words again, and describe themselves in a few words.

They go in through pymodbus's public extension point, `client.register(cls)`, which replaces the
response class of function codes 3 and 4 for that one client only (pymodbus copies its decode table
per client): the simulated plant's server and every other pymodbus client are untouched.
"""

from __future__ import annotations

import struct

from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

_WORDS: dict[int, struct.Struct] = {}


def _decode(pdu, data: bytes) -> None:
    """The register response's decode (byte count, then big-endian words), in one unpack."""
    n = int(data[0])
    if n >= len(data) or n % 2:  # pymodbus raises on the first; an odd count fails its unpack
        raise ModbusIOException(f"byte_count {n} > length of packet {len(data)}" if n >= len(data)
                                else f"odd byte_count {n} in a register response",
                                function_code=pdu.function_code)
    raw = bytes(data[1:1 + n])
    words = _WORDS.get(n)
    if words is None:
        words = _WORDS[n] = struct.Struct(f">{n // 2}H")
    pdu.raw = raw
    pdu.registers = list(words.unpack(raw))


def _describe(pdu) -> str:
    return (f"{pdu.__class__.__name__}(dev_id={pdu.dev_id}, transaction_id={pdu.transaction_id}, "
            f"{len(pdu.registers)} registers)")


class RawHoldingRegistersResponse(ReadHoldingRegistersResponse):
    """Function code 3's response: `registers` as pymodbus gives them, plus `raw`."""

    raw = b""
    decode = _decode
    __str__ = _describe


class RawInputRegistersResponse(ReadInputRegistersResponse):
    """Function code 4's response: `registers` as pymodbus gives them, plus `raw`."""

    raw = b""
    decode = _decode
    __str__ = _describe


RESPONSE_CLASSES = (RawHoldingRegistersResponse, RawInputRegistersResponse)
