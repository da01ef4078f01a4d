"""Configuration of the Modbus TCP driver and of one point's register."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.site.strict_model import StrictModel


class ModbusDriverConfig(StrictModel):
    kind: Literal["modbus"]
    host: str = "127.0.0.1"
    port: int = Field(502, ge=1, le=65535)
    # Per-request timeout. pymodbus's 3 s default is longer than a control tick.
    timeout_s: float = Field(0.3, gt=0, le=10)
    retries: int = Field(1, ge=0, le=5)
    # Reconnect backoff: first delay, doubled each failure up to the max (bounded exponential).
    reconnect_min_s: float = Field(0.1, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    # Registers that may lie unused between two points and still be read in one request.
    max_gap_registers: int = Field(8, ge=0, le=124)
    # Minimum time between two requests to one device (slow serial gateways need it).
    min_request_gap_s: float = Field(0.0, ge=0)
    # Re-send unchanged setpoints this often, for devices that forget them (0 = never).
    write_refresh_s: float = Field(0.0, ge=0)


class ModbusPointSource(StrictModel):
    driver: str
    device_id: int = Field(1, ge=0, le=255)
    table: Literal["holding", "input", "coil", "discrete_input"]
    # The PDU address: a 0-based register offset within `table`. Modicon notation (30001, 40001) is
    # not: 40001 there is holding register 0 here.
    address: int = Field(ge=0, le=65535, description=(
        "0-based register offset within the table (the address on the wire). Modicon notation is not "
        "accepted: 40001 is Modicon notation for holding register 0, 30001 for input register 0"))
    data_type: Literal[
        "int16", "uint16", "int32", "uint32", "float32", "float64", "bool"
    ] = "uint16"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    # engineering value = raw * scale + offset
    scale: float = 1.0
    offset: float = 0.0
    # Register to read back after a write, if the device reports the applied value elsewhere.
    readback_address: int | None = Field(None, ge=0, le=65535)
