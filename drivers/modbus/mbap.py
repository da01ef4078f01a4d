"""Modbus TCP framing (MBAP header + PDU): pure functions, no I/O (STYLE.md, "sans-I/O").

Source: Modbus Messaging on TCP/IP Implementation Guide v1.0b, 3.1.3 (MBAP header: transaction id,
protocol id 0, length = unit id + PDU bytes, unit id) and Modbus Application Protocol v1.1b3, 6.1-6.11
(function codes 1-6 and 16, their request and response PDUs) and 7 (exception responses: the
function code with bit 0x80 set, then one exception code byte).
"""

from __future__ import annotations

import struct

FC_READ = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}
FC_WRITE_COIL, FC_WRITE_REGISTER, FC_WRITE_REGISTERS = 5, 6, 16

_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_READ = struct.Struct(">BHH")
# The largest PDU is 253 bytes (Application Protocol 4.1), so length (unit id + PDU) is 2..254.
MAX_LENGTH = 254


class FramingError(ValueError):
    """The byte stream is not MBAP (wrong protocol id or length): the connection is out of step."""


class ReplyError(ValueError):
    """A reply PDU that does not answer its request (wrong function code, short data)."""


def frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return _HEADER.pack(tid, 0, len(pdu) + 1, unit) + pdu


def read_pdu(table: str, address: int, count: int) -> bytes:
    return _READ.pack(FC_READ[table], address, count)


def write_coil_pdu(address: int, on: bool) -> bytes:
    return _READ.pack(FC_WRITE_COIL, address, 0xFF00 if on else 0x0000)


def write_register_pdu(address: int, word: int) -> bytes:
    return _READ.pack(FC_WRITE_REGISTER, address, word)


def write_registers_pdu(address: int, words: list[int] | tuple[int, ...]) -> bytes:
    n = len(words)
    return struct.pack(f">BHHB{n}H", FC_WRITE_REGISTERS, address, n, 2 * n, *words)


class FrameSplitter:
    """Bytes as they arrive -> whole frames (tid, unit, pdu); keeps a partial frame for later."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buf = self._buf + data if self._buf else data
        frames = []
        at, end = 0, len(buf)
        while end - at >= 7:
            tid, proto, length, unit = _HEADER.unpack_from(buf, at)
            if proto != 0 or not 2 <= length <= MAX_LENGTH:
                raise FramingError(f"not a Modbus TCP frame (protocol id {proto}, length {length})")
            stop = at + 6 + length
            if stop > end:
                break
            frames.append((tid, unit, buf[at + 7:stop]))
            at = stop
        self._buf = buf[at:]
        return frames


def exception_code(pdu: bytes) -> int | None:
    """The exception code of an exception reply, None for a normal reply."""
    if pdu[0] & 0x80:
        return pdu[1] if len(pdu) > 1 else 0
    return None


def read_data(pdu: bytes, fc: int, nbytes: int) -> bytes:
    """The data bytes of a read reply (FC 1-4) that must carry at least `nbytes`."""
    if pdu[0] != fc:
        raise ReplyError(f"reply function code {pdu[0]} to a request with {fc}")
    if len(pdu) < 2 or len(pdu) - 2 < pdu[1] or pdu[1] < nbytes:
        got = pdu[1] if len(pdu) > 1 else 0
        raise ReplyError(f"short answer: {min(got, max(len(pdu) - 2, 0))} bytes for {nbytes}")
    return pdu[2:2 + nbytes]


def reply_bytes(table: str, count: int) -> int:
    """Data bytes a read of `count` registers or bits returns."""
    return (count + 7) // 8 if table in ("coil", "discrete_input") else 2 * count


def bits(data: bytes, count: int) -> list[int]:
    """Coil / discrete-input bits, least significant bit of the first byte first (6.1)."""
    return [(data[i >> 3] >> (i & 7)) & 1 for i in range(count)]


def words(data: bytes, count: int) -> list[int]:
    return list(struct.unpack_from(f">{count}H", data))
