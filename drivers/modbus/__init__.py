"""Modbus TCP field driver."""
