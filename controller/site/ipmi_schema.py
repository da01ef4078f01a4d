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


class IpmiPointSource(StrictModel):
    driver: str
    # For a server_power reading: the BMC's name. For the power_cap actuator: omitted (all BMCs).
    bmc: str | None = None
