"""Configuration of the OPC-UA driver and of one point's node."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.site.strict_model import StrictModel


class OpcuaDriverConfig(StrictModel):
    kind: Literal["opcua"]
    endpoint: str
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    security_policy: Literal["None", "Basic256Sha256", "Aes256_Sha256_RsaPss"] = "None"
    client_certificate: str | None = None
    client_key: str | None = None
    # The server's certificate, pinned (DER or PEM): the server must present exactly this one.
    server_certificate: str | None = None
    # A directory of trusted server certificates (DER or PEM files): with Sign or SignAndEncrypt,
    # the server's certificate must be one of them (or the pin above). Without either, a secure
    # endpoint is refused.
    trust_store: str | None = None
    # With trust_store: trust the first certificate an endpoint presents, store it there as
    # tofu-HOST-PORT.der (logged and audited with its SHA-256 fingerprint), refuse a different one
    # later. Off unless asked.
    trust_on_first_use: bool = False
    # A YAML file with `username:` and `password:`; credentials are never inline in the site config.
    credentials_file: str | None = None
    timeout_s: float = Field(0.5, gt=0, le=10)
    sampling_interval_ms: float = Field(250, ge=0)
    # Subscription publishing interval; silence past keepalive_count intervals rebuilds it.
    publishing_interval_ms: float = Field(250, gt=0)
    keepalive_count: int = Field(10, ge=1)
    use_subscription: bool = True
    reconnect_min_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)


class OpcuaPointSource(StrictModel):
    driver: str
    node_id: str
