"""The Modbus request decoder (the hot path) against the plain per-point codec, its oracle."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from controller.site.modbus_schema import ModbusPointSource
from drivers.modbus.codec import RequestDecoder, decode_value, encode_value, plan_reads

TYPES = ("int16", "uint16", "int32", "uint32", "float32", "float64")
ORDERS = ("big", "little")


def src(address: int, data_type: str, word_order: str = "big", byte_order: str = "big", **kw):
    return ModbusPointSource(driver="d", device_id=1, table=kw.pop("table", "holding"),
                             address=address, data_type=data_type, word_order=word_order,
                             byte_order=byte_order, **kw)


def registers(sources: dict[str, ModbusPointSource], values: dict[str, float], count: int,
              base: int) -> list[int]:
    words = [0] * count
    for name, s in sources.items():
        for i, w in enumerate(encode_value(values[name], s)):
            words[s.address - base + i] = w
    return words


@pytest.mark.parametrize("data_type,word_order,byte_order",
                         list(itertools.product(TYPES, ORDERS, ORDERS)))
def test_one_point_every_type_and_layout_matches_the_plain_codec(data_type, word_order, byte_order):
    s = src(3, data_type, word_order, byte_order, scale=0.5, offset=-2.0)
    [req] = plan_reads({"p": s}, 0)
    raw_value = {"int16": -1234, "uint16": 54321, "int32": -123456789, "uint32": 3_000_000_000,
                 "float32": 1.5, "float64": -2.25e100}[data_type]
    eng = raw_value * 0.5 - 2.0
    words = encode_value(eng, s)
    assert RequestDecoder(req).values(words) == [decode_value(words, s)]
    assert RequestDecoder(req).values(words)[0] == pytest.approx(eng)


def test_mixed_request_with_gaps_overlaps_and_bools_matches_point_by_point():
    rng = random.Random(7)
    sources: dict[str, ModbusPointSource] = {}
    address = 0
    for i in range(60):
        data_type = rng.choice(TYPES + ("bool",))
        s = src(address, data_type, rng.choice(ORDERS), rng.choice(ORDERS),
                scale=rng.choice((1.0, 0.1, 2.5)), offset=rng.choice((0.0, -40.0)))
        sources[f"p{i}"] = s
        address += (1 if data_type == "bool" else {"int16": 1, "uint16": 1, "int32": 2,
                                                     "uint32": 2, "float32": 2,
                                                     "float64": 4}[data_type]) + rng.choice((0, 0, 2))
    # Two points that share registers with others: a float32 over a pair, a uint16 inside it.
    first = next(s for s in sources.values() if s.data_type in ("float32", "int32", "uint32"))
    sources["overlap32"] = src(first.address, "uint32", scale=1.0)
    sources["overlap16"] = src(first.address + 1, "uint16")
    requests = plan_reads(sources, 8)
    words_all = [rng.randrange(0, 65536) for _ in range(address + 4)]
    checked = 0
    for req in requests:
        words = words_all[req.address:req.address + req.count]
        dec = RequestDecoder(req)
        got = dict(zip(dec.names, dec.values(words)))
        for p in req.points:
            want = decode_value(words[p.offset:p.offset + p.count], p.source)
            assert (math.isnan(want) and math.isnan(got[p.name])) or got[p.name] == want, p.name
            checked += 1
    assert checked == len(sources)


def test_bit_tables_read_zero_or_one():
    sources = {"c0": src(0, "bool", table="coil"), "c5": src(5, "bool", table="coil")}
    [req] = plan_reads(sources, 8)
    dec = RequestDecoder(req)
    assert dict(zip(dec.names, dec.values([1, 0, 0, 0, 0, 0]))) == {"c0": 1.0, "c5": 0.0}
    assert dict(zip(dec.names, dec.values([0, 0, 0, 0, 0, 1]))) == {"c0": 0.0, "c5": 1.0}


def test_nan_and_inf_pass_through_for_the_driver_to_mark_bad():
    s = src(0, "float32")
    [req] = plan_reads({"p": s}, 0)
    assert math.isnan(RequestDecoder(req).values([0x7FC0, 0])[0])
    assert RequestDecoder(req).values([0x7F80, 0])[0] == math.inf
