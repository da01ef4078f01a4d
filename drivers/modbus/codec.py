"""Modbus register codec and read planner: pure functions, no I/O (STYLE.md, "sans-I/O").

- `encode_raw` / `decode_raw` / `to_raw` / `encode_value` / `decode_value`: one point's registers
  <-> its engineering value (raw * scale + offset), the plain version and the test oracle;
- `plan_reads`: coalesce points into as few requests as the protocol limits allow;
- `RequestDecoder`: the hot path, one request's registers -> every point's value, with the struct
  formats computed once per request (checked against `decode_value` by the tests).

Byte layout (word_order, byte_order): "big"/"big" is ABCD, "little"/"big" CDAB, "big"/"little" BADC,
"little"/"little" DCBA.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Mapping, Sequence

from controller.site.modbus_schema import ModbusPointSource

# Protocol limits (Modbus Application Protocol v1.1b3, 6.1-6.4): FC3/FC4 read at most 125
# registers, FC1/FC2 at most 2000 bits per request.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000

BIT_TABLES = frozenset({"coil", "discrete_input"})
WRITABLE_TABLES = frozenset({"holding", "coil"})

_STRUCT_FORMAT = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d",
}
_INT_LIMITS = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
# Largest finite IEEE 754 binary32 value: a larger float does not fit a float32 register pair.
_FLOAT32_MAX = 3.4028234663852886e38



# --------------------------------------------------------------------------------------------
# Codec: pure functions, no I/O
# --------------------------------------------------------------------------------------------


def register_count(source: ModbusPointSource) -> int:
    """Registers (or bits, for coils and discrete inputs) that one point occupies."""
    if source.table in BIT_TABLES or source.data_type == "bool":
        return 1
    return struct.calcsize(_STRUCT_FORMAT[source.data_type]) // 2


def decode_raw(words: Sequence[int], data_type: str, word_order: str = "big",
               byte_order: str = "big") -> int | float:
    """Registers (16-bit words, as on the wire) -> the raw value of `data_type`.

    word_order "little": the least significant word comes first (CDAB); byte_order "little": the two
    bytes inside each register are swapped (BADC). Both little: DCBA.
    """
    if data_type == "bool":
        return 1 if words[0] else 0
    ordered = list(words)
    if word_order == "little":
        ordered.reverse()
    data = b"".join(int(w).to_bytes(2, byte_order) for w in ordered)  # type: ignore[arg-type]
    return struct.unpack(">" + _STRUCT_FORMAT[data_type], data)[0]


def encode_raw(raw: int | float, data_type: str, word_order: str = "big",
               byte_order: str = "big") -> list[int]:
    """The raw value of `data_type` -> registers, the inverse of `decode_raw`."""
    if data_type == "bool":
        return [1 if raw else 0]
    data = struct.pack(">" + _STRUCT_FORMAT[data_type], raw)
    words = [int.from_bytes(data[i:i + 2], byte_order) for i in range(0, len(data), 2)]  # type: ignore[arg-type]
    if word_order == "little":
        words.reverse()
    return words


def to_engineering(raw: int | float, source: ModbusPointSource) -> float:
    """Raw register value -> engineering value (raw * scale + offset; bool: 0.0 / 1.0)."""
    if source.data_type == "bool" or source.table in BIT_TABLES:
        return 1.0 if raw else 0.0
    return float(raw) * source.scale + source.offset


def to_raw(value: float, source: ModbusPointSource) -> int | float:
    """Engineering value -> raw register value; ValueError if it cannot be represented exactly
    enough (not finite, outside the integer type, not 0/1 for a bool)."""
    if not isinstance(value, (int, float)):
        raise ValueError(f"value {value!r} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"value {value!r} is not finite")
    if source.data_type == "bool" or source.table in BIT_TABLES:
        if value not in (0, 1):
            raise ValueError(f"value {value!r} is not a bool (0 or 1)")
        return int(value)
    if source.scale == 0:
        raise ValueError("scale is 0: no raw value gives this engineering value")
    raw = (value - source.offset) / source.scale
    if source.data_type in _INT_LIMITS:
        lo, hi = _INT_LIMITS[source.data_type]
        rounded = round(raw)
        if not lo <= rounded <= hi:
            raise ValueError(
                f"value {value!r} is raw {raw:g}, outside {source.data_type} [{lo}, {hi}]")
        return rounded
    if source.data_type == "float32" and abs(raw) > _FLOAT32_MAX:
        raise ValueError(f"value {value!r} is raw {raw:g}, outside float32")
    return raw


def encode_value(value: float, source: ModbusPointSource) -> list[int]:
    """Engineering value -> the registers (or [bit]) to write. ValueError if it does not fit."""
    raw = to_raw(value, source)
    if source.table in BIT_TABLES:
        return [int(raw)]
    return encode_raw(raw, source.data_type, source.word_order, source.byte_order)


def decode_value(words: Sequence[int], source: ModbusPointSource) -> float:
    """Registers (or [bit]) -> engineering value."""
    if source.table in BIT_TABLES:
        return 1.0 if words[0] else 0.0
    raw = decode_raw(words, source.data_type, source.word_order, source.byte_order)
    return to_engineering(raw, source)


# --------------------------------------------------------------------------------------------
# Read planning: pure
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedPoint:
    name: str
    # Position of the point's first register (or bit) inside the request.
    offset: int
    count: int
    source: ModbusPointSource


@dataclass(frozen=True)
class ReadRequest:
    """One Modbus read: a contiguous span of one table of one device, and the points inside it."""

    device_id: int
    table: str
    address: int
    count: int
    points: tuple[PlannedPoint, ...]


def plan_reads(sources: Mapping[str, ModbusPointSource], max_gap_registers: int) -> list[ReadRequest]:
    """Coalesce points into as few requests as the limits allow.

    Group by (device_id, table), sort by address, and merge a point into the current request when
    the unused registers between them are at most `max_gap_registers` and the request stays within
    125 registers (2000 bits for coils and discrete inputs). Overlapping points share registers.
    """
    groups: dict[tuple[int, str], list[tuple[str, ModbusPointSource]]] = {}
    for name, src in sources.items():
        groups.setdefault((src.device_id, src.table), []).append((name, src))
    requests: list[ReadRequest] = []
    for (device_id, table), members in sorted(groups.items()):
        limit = MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ
        members.sort(key=lambda m: (m[1].address, m[0]))
        span: list[tuple[str, ModbusPointSource]] = []
        start = end = 0
        for name, src in members:
            a, b = src.address, src.address + register_count(src)
            if span and a - end <= max_gap_registers and max(end, b) - start <= limit:
                end = max(end, b)
                span.append((name, src))
                continue
            if span:
                requests.append(_request(device_id, table, start, end, span))
            span, start, end = [(name, src)], a, b
        if span:
            requests.append(_request(device_id, table, start, end, span))
    return requests


def _request(device_id: int, table: str, start: int, end: int,
             span: list[tuple[str, ModbusPointSource]]) -> ReadRequest:
    pts = tuple(PlannedPoint(n, s.address - start, register_count(s), s) for n, s in span)
    return ReadRequest(device_id, table, start, end - start, pts)


# --------------------------------------------------------------------------------------------
# The hot path: one request's registers -> every point's value
# --------------------------------------------------------------------------------------------


def _unpack_layout(word_order: str, byte_order: str) -> tuple[str, str]:
    """(buffer endianness, value endianness) that read a (word_order, byte_order) value in one go.

    The registers are packed into bytes as 16-bit words, big-endian (">") when word and byte order
    agree, else little-endian ("<"); the value is then unpacked big-endian for word_order "big",
    little-endian for "little". E.g. CDAB (words little, bytes big): "<H" packing of the words puts
    the value's bytes in reverse order, which "<f" reads. 16-bit values come out right either way.
    """
    return (">" if word_order == byte_order else "<"), (">" if word_order == "big" else "<")


class RequestDecoder:
    """Decodes every point of one ReadRequest with one struct unpack per layout, not one per point.

    Built once per request (the plan does not change); `values(words)` returns the engineering
    values in `names` order. Same results as `decode_value` point by point, which the tests use as
    the oracle. Points that overlap (they share registers) go into separate unpack passes.
    """

    def __init__(self, req: ReadRequest):
        self.names: tuple[str, ...] = tuple(p.name for p in req.points)
        self._bits = req.table in BIT_TABLES
        index = {p.name: i for i, p in enumerate(req.points)}
        # Register-table bools (value != 0): (position in names, register offset).
        self._bools: list[tuple[int, int]] = []
        # layout -> lanes; a lane is a list of points whose registers do not overlap.
        lanes: dict[tuple[str, str], list[list[PlannedPoint]]] = {}
        for p in sorted(req.points, key=lambda p: (p.offset, p.name)):
            if self._bits or p.source.data_type == "bool":
                self._bools.append((index[p.name], p.offset))
                continue
            layout = _unpack_layout(p.source.word_order, p.source.byte_order)
            for lane in lanes.setdefault(layout, []):
                if lane[-1].offset + lane[-1].count <= p.offset:
                    lane.append(p)
                    break
            else:
                lanes[layout].append([p])
        words_fmt = {e: struct.Struct(f"{e}{req.count}H") for e in "<>"}
        self._big_words = words_fmt[">"]  # the wire's own layout: raw bytes serve as they are
        # One pass: (struct over the words' bytes, its buffer packing, positions, scales, offsets).
        self._passes: list[tuple[struct.Struct, struct.Struct, tuple[int, ...],
                                 tuple[float, ...] | None, tuple[float, ...] | None]] = []
        for (buf_e, val_e), layout_lanes in sorted(lanes.items()):
            for lane in layout_lanes:
                fmt, at = [val_e], 0
                for p in lane:
                    if p.offset > at:
                        fmt.append(f"{2 * (p.offset - at)}x")
                    fmt.append(_STRUCT_FORMAT[p.source.data_type])
                    at = p.offset + p.count
                # Floats with scale 1 and offset 0 are their raw values: no arithmetic per point
                # (x * 1.0 + 0.0 == x for every float, -0.0 == 0.0 included; NaN stays NaN).
                # Integers still go through float() * scale + offset.
                identity = all(p.source.data_type in ("float32", "float64") and float(p.source.scale) == 1.0
                               and float(p.source.offset) == 0.0 for p in lane)
                self._passes.append((
                    words_fmt[buf_e], struct.Struct("".join(fmt)),
                    tuple(index[p.name] for p in lane),
                    None if identity else tuple(float(p.source.scale) for p in lane),
                    None if identity else tuple(float(p.source.offset) for p in lane)))
        # The common request: one identity pass over every point in order, no bools.
        self._whole = (len(self._passes) == 1 and not self._bools and self._passes[0][3] is None
                       and self._passes[0][2] == tuple(range(len(self.names))))

    def values(self, words: Sequence[int], raw: bytes | None = None) -> list[float]:
        """Engineering values of every point, in `names` order (NaN/inf passed through). `raw`:
        the same registers as bytes, big-endian as on the wire (drivers.modbus.responses), which
        spares packing the words again for the big-endian layouts; ignored unless its length fits."""
        out = [0.0] * len(self.names)
        if self._bits:
            for i, off in self._bools:
                out[i] = 1.0 if words[off] else 0.0
            return out
        big = self._big_words
        if raw is not None and len(raw) != big.size:
            raw = None
        if self._whole:
            words_struct, unpacker = self._passes[0][:2]
            if raw is not None and words_struct is big:
                return list(unpacker.unpack_from(raw))
            return list(unpacker.unpack_from(words_struct.pack(*words)))
        packed: dict[struct.Struct, bytes] = {} if raw is None else {big: raw}
        for words_struct, unpacker, positions, scales, offsets in self._passes:
            buf = packed.get(words_struct)
            if buf is None:
                buf = packed[words_struct] = words_struct.pack(*words)
            if scales is None:
                for i, raw in zip(positions, unpacker.unpack_from(buf)):
                    out[i] = raw
                continue
            for i, raw, scale, add in zip(positions, unpacker.unpack_from(buf), scales, offsets):
                out[i] = raw * scale + add
        for i, off in self._bools:
            out[i] = 1.0 if words[off] else 0.0
        return out
