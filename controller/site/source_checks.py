"""Safety invariants that need each point's parsed source: what its register, node or BMC can hold.

- register_fit / register_resolution: every value the site can send to an actuator (its range, and
  so every trip action and clamp) is representable by its Modbus register: data type, scale, offset;
- heartbeat: the counter counts through integers its register holds (no constant, no overflow);
- trip_can_fire: a trip's limit lies inside what its reading's register can report;
- register_shared / register_overlap: no two points on one register, node or BMC reading, and no
  multi-register value overlapping another;
- modicon_address: 30001/40001-style addresses (Modicon notation), where 0-based offsets are expected.

The register arithmetic mirrors drivers/modbus/codec.py (`to_raw`), which the site layer may not
import; tests/test_config_invariants.py holds the two to the same limits.
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping

from pydantic import BaseModel

from controller.site.checks import Problem, point_kind
from controller.site.ipmi_schema import IpmiPointSource
from controller.site.modbus_schema import ModbusPointSource
from controller.site.models import SiteConfig
from controller.site.opcua_schema import OpcuaPointSource
from controller.site.roles import PointKind, Role
from controller.site.rules import MIN_ACTUATOR_STEPS

# Raw limits of the integer register types (Modbus Application Protocol: 16-bit registers; 32-bit
# values in two), the same as drivers/modbus/codec.py.
INT_LIMITS = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
FLOAT32_MAX = 3.4028234663852886e38
# Largest integer a float counts exactly to (IEEE 754 binary32 / binary64 significands).
FLOAT_EXACT_INT = {"float32": 2**24, "float64": 2**53}
REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bool": 1}
BIT_TABLES = ("coil", "discrete_input")
# Modicon notation puts the table in the first digit and counts from 1: 3xxxx input registers,
# 4xxxx holding registers, 1xxxx discrete inputs (five-digit form).
MODICON_PREFIX = {"input": 30001, "holding": 40001, "discrete_input": 10001}


def check_sources(site: SiteConfig, sources: Mapping[str, BaseModel]) -> Iterator[Problem]:
    for name, src in sources.items():
        if isinstance(src, ModbusPointSource):
            yield from _modbus_point(site, name, src)
    yield from _heartbeat_other(site, sources)
    yield from _shared(site, sources)


def _src_key(site: SiteConfig, name: str, key: str) -> tuple[str | int, ...]:
    """The path of a source key, or of the source itself when the key was left at its default."""
    base: tuple[str | int, ...] = ("points", name, "source")
    return base + (key,) if key in (site.points[name].source or {}) else base


def engineering_span(src: ModbusPointSource) -> tuple[float, float] | None:
    """The lowest and highest engineering value an integer register can report (None: not integer)."""
    if src.table in BIT_TABLES or src.data_type not in INT_LIMITS:
        return None
    lo, hi = INT_LIMITS[src.data_type]
    a, b = lo * src.scale + src.offset, hi * src.scale + src.offset
    return (min(a, b), max(a, b))


def _raw(value: float, src: ModbusPointSource) -> float:
    return (value - src.offset) / src.scale


def _modbus_point(site: SiteConfig, name: str, src: ModbusPointSource) -> Iterator[Problem]:
    p = site.points[name]
    bits = src.table in BIT_TABLES or src.data_type == "bool"
    modicon = MODICON_PREFIX.get(src.table)
    if modicon is not None and modicon <= src.address < modicon + 10000 - 1:
        yield Problem(("points", name, "source", "address"),
                      f"address {src.address} looks like Modicon notation; addresses are 0-based register "
                      f"offsets: {modicon} is Modicon notation for 0, so expected address: "
                      f"{src.address - modicon}", "modicon_address")
    if not bits and src.scale == 0:
        yield Problem(_src_key(site, name, "scale"), "expected a non-zero scale (engineering value = raw * "
                                                     "scale + offset), got 0", "register_fit")
        return
    kind = point_kind(site, name)
    lo, hi = p.range
    if p.role == Role.HEARTBEAT.value:
        yield from _heartbeat_modbus(site, name, src)
        return
    if kind is PointKind.ACTUATOR:
        if bits:
            if not (0 <= lo and hi <= 1):
                yield Problem(("points", name, "range"), f"a {src.table if src.table in BIT_TABLES else 'bool'} "
                                                         f"holds 0 or 1: expected a range inside [0, 1], got "
                                                         f"{list(p.range)}", "register_fit")
            return
        if src.data_type in INT_LIMITS:
            rlo, rhi = INT_LIMITS[src.data_type]
            for value in (lo, hi):
                raw = _raw(value, src)
                if not math.isfinite(raw) or not rlo <= round(raw) <= rhi:
                    yield Problem(("points", name, "range"),
                                  f"value {value:g} is raw {raw:g} with scale {src.scale:g} and offset "
                                  f"{src.offset:g}, outside {src.data_type} [{rlo}, {rhi}]; expected a range "
                                  f"the register can hold", "register_fit")
                    return
            steps = (hi - lo) / abs(src.scale)
            if p.unit not in ("bool", "count") and steps < MIN_ACTUATOR_STEPS:
                yield Problem(_src_key(site, name, "scale"),
                              f"scale {src.scale:g} gives {steps:.3g} steps over the range {list(p.range)}; "
                              f"expected at least {MIN_ACTUATOR_STEPS} (commands would round to a few values)",
                              "register_resolution")
        elif src.data_type == "float32":
            for value in (lo, hi):
                raw = _raw(value, src)
                if not math.isfinite(raw) or abs(raw) > FLOAT32_MAX:
                    yield Problem(("points", name, "range"),
                                  f"value {value:g} is raw {raw:g}, outside float32; expected a range the "
                                  f"register can hold", "register_fit")
                    return
        return
    # A reading: each trip on it must lie inside what its register can report.
    span = engineering_span(src)
    if span is None:
        return
    for tname, trip in site.trips.items():
        if trip.point != name or trip.limit is None or trip.kind not in ("high", "low", "low_flow"):
            continue
        if not span[0] < trip.limit < span[1]:
            yield Problem(("trips", tname, "limit"),
                          f"point {name!r} ({src.data_type}, scale {src.scale:g}, offset {src.offset:g}) can "
                          f"only read [{span[0]:g}, {span[1]:g}]; a limit of {trip.limit:g} could never fire",
                          "trip_can_fire")


def _heartbeat_range(site: SiteConfig, name: str, top: float | None) -> Iterator[Problem]:
    """The counter goes 0, 1, ..., int(max), 0 (controller/core/sequences/arbitration.py)."""
    lo, hi = site.points[name].range
    if lo != 0 or hi < 1 or hi != int(hi):
        yield Problem(("points", name, "range"),
                      f"the heartbeat counts 0, 1, 2, ... and wraps after its maximum: expected [0, N] with "
                      f"an integer N >= 1, got {list(site.points[name].range)}"
                      + (" (it would always be 0)" if hi < 1 else ""), "heartbeat")
    elif top is not None and hi > top:
        yield Problem(("points", name, "range"), f"the heartbeat counts up to {hi:g}, more than its register "
                                                 f"holds ({top:g}); expected N <= {top:g}", "heartbeat")


def _heartbeat_modbus(site: SiteConfig, name: str, src: ModbusPointSource) -> Iterator[Problem]:
    if src.scale != 1 or src.offset != 0:
        yield Problem(_src_key(site, name, "scale" if src.scale != 1 else "offset"),
                      f"the heartbeat is a raw count: expected scale 1 and offset 0, got scale "
                      f"{src.scale:g} and offset {src.offset:g}", "heartbeat")
        return
    if src.table in BIT_TABLES or src.data_type == "bool":
        top: float = 1
    elif src.data_type in INT_LIMITS:
        top = INT_LIMITS[src.data_type][1]
    else:
        top = FLOAT_EXACT_INT[src.data_type]
    yield from _heartbeat_range(site, name, top)


def _heartbeat_other(site: SiteConfig, sources: Mapping[str, BaseModel]) -> Iterator[Problem]:
    for name in site.points_with_role(Role.HEARTBEAT):
        if not isinstance(sources.get(name), ModbusPointSource):
            # OPC-UA (or no source): the node's type is the server's; a double counts exactly to 2**53.
            yield from _heartbeat_range(site, name, FLOAT_EXACT_INT["float64"])


def _shared(site: SiteConfig, sources: Mapping[str, BaseModel]) -> Iterator[Problem]:
    # (driver, device, table) -> [(first register, last register, point)]
    spans: dict[tuple, list[tuple[int, int, str]]] = {}
    seen: dict[tuple, str] = {}
    for name, src in sources.items():
        if isinstance(src, ModbusPointSource):
            count = 1 if src.table in BIT_TABLES else REGISTERS[src.data_type]
            first, last = src.address, src.address + count - 1
            bucket = spans.setdefault((src.driver, src.device_id, src.table), [])
            for ofirst, olast, other in bucket:
                if first == ofirst:
                    yield Problem(("points", name, "source", "address"),
                                  f"{src.table} register {first} is already point {other!r}'s (driver "
                                  f"{src.driver}, device {src.device_id}); expected one point per register",
                                  "register_shared")
                    break
                if first <= olast and ofirst <= last:
                    yield Problem(("points", name, "source", "address"),
                                  f"{src.data_type} at {first} occupies {src.table} registers {first}..{last}, "
                                  f"overlapping point {other!r} at {ofirst}..{olast}; expected separate "
                                  f"registers", "register_overlap")
                    break
            bucket.append((first, last, name))
            continue
        if isinstance(src, OpcuaPointSource):
            key: tuple = ("opcua", src.driver, src.node_id)
            what, path = f"node {src.node_id!r}", ("points", name, "source", "node_id")
        elif isinstance(src, IpmiPointSource) and src.bmc is not None:
            key = ("ipmi", src.driver, src.bmc)
            what, path = f"BMC {src.bmc!r}", ("points", name, "source", "bmc")
        else:
            continue
        if key in seen:
            yield Problem(path, f"{what} of driver {src.driver} is already point {seen[key]!r}'s; expected "
                                f"one point per {what.split()[0]}", "register_shared")
        else:
            seen[key] = name
