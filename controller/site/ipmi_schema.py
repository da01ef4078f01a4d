"""Configuration of the IPMI/DCMI driver: the BMCs, and which one a point reads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.site.strict_model import StrictModel


class BmcConfig(StrictModel):
    name: str
    host: str = "127.0.0.1"
    port: int = Field(623, ge=1, le=65535)
    # The largest and smallest power limit this server accepts (W); the site cap is shared in them.
    max_power_w: float = Field(gt=0)
    min_power_w: float = Field(0, ge=0)


class IpmiDriverConfig(StrictModel):
    kind: Literal["ipmi"]
    # A YAML file with `username:` and `password:`, the same for all BMCs of this driver.
    credentials_file: str
    bmcs: tuple[BmcConfig, ...]
    timeout_s: float = Field(0.5, gt=0, le=10)
    # Ask each BMC at most this often (s); 0: at every read. BMC firmware refreshes its power
    # reading about once a second, so a site at a sub-second tick with many BMCs can set ~0.9 for
    # the same values with a tenth of the round trips; a BMC going silent then shows LOST up to
    # this much later. Never more than half the smallest max_age_s of the driver's points (the
    # driver holds it there), so a cached answer cannot go stale between asks.
    min_read_interval_s: float = Field(0.0, ge=0, le=60)


class IpmiPointSource(StrictModel):
    driver: str
    # For a server_power reading: the BMC's name. For the power_cap actuator: omitted (all BMCs).
    bmc: str | None = None
