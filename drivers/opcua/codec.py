"""OPC-UA value codec: DataValues to readings, commands to the node's own variant type. Pure.

Status codes map to quality: Good -> GOOD, Uncertain -> UNCERTAIN, Bad -> BAD with the status name
as reason. Booleans read 1.0 / 0.0. A write goes out as the node's own VariantType (read from its
DataType attribute): a Python float sent to a Float node is a Double and gets BadTypeMismatch
(PROTOCOLS.md).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from asyncua import ua

from controller.core.readings import Quality, Reading

_INT_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_WRITABLE_TYPES = frozenset(_INT_RANGES) | {
    ua.VariantType.Boolean, ua.VariantType.Float, ua.VariantType.Double,
}
# Standard subtypes of the built-in numeric types (OPC 10000-6 Annex / NodeSet ids): Duration is a
# Double, UtcTime a DateTime (not numeric), Integer/UInteger abstract, Enumeration an Int32.
_SUBTYPE_VARIANTS = {
    290: ua.VariantType.Double,   # Duration
    29: ua.VariantType.Int32,     # Enumeration
}


def to_float(value: Any) -> float | None:
    """A variant's Python value as a float (booleans 1.0 / 0.0); None when it is not a number."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def datavalue_to_reading(dv: ua.DataValue | None, unit: str, ts: float) -> Reading:
    """One DataValue as a Reading: quality from its status code, value as a float."""
    if dv is None:
        return Reading.lost(unit, ts, "no value yet")
    status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
    if status.is_bad():
        return Reading(value=None, unit=unit, ts=ts, quality=Quality.BAD, reason=status.name)
    raw = dv.Value.Value if dv.Value is not None else None
    value = to_float(raw)
    if value is None:
        what = dv.Value.VariantType.name if dv.Value is not None else "Null"
        return Reading(value=None, unit=unit, ts=ts, quality=Quality.BAD, reason=f"not_a_number:{what}")
    if status.is_uncertain():
        return Reading(value=value, unit=unit, ts=ts, quality=Quality.UNCERTAIN, reason=status.name)
    return Reading(value=value, unit=unit, ts=ts)


def variant_type_of(data_type: ua.NodeId | None, current: ua.Variant | None) -> ua.VariantType | None:
    """The VariantType to write a node with: from its DataType attribute, else from its value."""
    if data_type is not None and data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        ident = data_type.Identifier
        if 1 <= ident <= 25:  # built-in types: DataType i=N is VariantType N (OPC 10000-6, 5.1.2)
            return ua.VariantType(ident)
        if ident in _SUBTYPE_VARIANTS:
            return _SUBTYPE_VARIANTS[ident]
    if current is not None and current.VariantType is not ua.VariantType.Null:
        return current.VariantType
    return None


def to_variant(value: float, vtype: ua.VariantType) -> tuple[ua.Variant, float]:
    """A command as the node's own variant type, and the value the node should then read back.

    Booleans are value >= 0.5; integers are rounded (half to even) and must fit the type; a Float
    holds the nearest binary32. Raises ValueError for what cannot be written.
    """
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    if vtype is ua.VariantType.Boolean:
        b = value >= 0.5
        return ua.Variant(b, vtype), 1.0 if b else 0.0
    if vtype is ua.VariantType.Double:
        return ua.Variant(float(value), vtype), float(value)
    if vtype is ua.VariantType.Float:
        if abs(value) > 3.4028234663852886e38:
            raise ValueError(f"{value} does not fit a Float")
        f32 = struct.unpack("<f", struct.pack("<f", value))[0]
        return ua.Variant(f32, vtype), f32
    if vtype in _INT_RANGES:
        lo, hi = _INT_RANGES[vtype]
        i = int(round(value))
        if not lo <= i <= hi:
            raise ValueError(f"{value} does not fit {vtype.name} [{lo}, {hi}]")
        return ua.Variant(i, vtype), float(i)
    raise ValueError(f"cannot write a number to a {vtype.name} node")


def readback_matches(expected: float, readback: float, vtype: ua.VariantType) -> bool:
    if vtype is ua.VariantType.Float:
        return math.isclose(readback, expected, rel_tol=1e-6, abs_tol=1e-9)
    if vtype is ua.VariantType.Double:
        return math.isclose(readback, expected, rel_tol=1e-12, abs_tol=1e-12)
    return readback == expected
