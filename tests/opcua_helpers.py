"""Helpers for the OPC-UA driver tests: certificates, credentials files, a channel-rejecting server.

Every server here binds 127.0.0.1 on a port the kernel picks (tests run in parallel under xdist).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Awaitable, Callable

from asyncua import ua
from asyncua.common.connection import SecureConnection, TransportLimits
from asyncua.common.utils import Buffer, NotEnoughData
from asyncua.crypto import security_policies
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from asyncua.ua.ua_binary import header_from_binary, struct_from_binary, struct_to_binary, uatcp_to_binary
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID


def make_cert(folder: Path, name: str, app_uri: str, *, server: bool) -> tuple[Path, Path]:
    """A self-signed application instance certificate (DER) and its key (PEM), as OPC-UA wants."""
    key = generate_private_key()
    usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri), x509.DNSName("localhost")]
    cert = generate_self_signed_app_certificate(key, app_uri, {}, sans, usage, days=2)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


def write_credentials(folder: Path, username: str, password: str, name: str = "creds.yaml") -> Path:
    path = folder / name
    path.write_text(f"username: {username}\npassword: {password}\n")
    path.chmod(0o600)
    return path


async def wait_for(cond: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str,
                   poll_s: float = 0.02) -> None:
    """Poll `cond` until true; fail the test with `what` after `timeout_s` (never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = cond()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


class ChannelRejectingServer:
    """Speaks just enough OPC-UA to answer OpenSecureChannel with a Bad service result.

    Strict servers (UA-.NET, open62541 with a trust list) refuse an untrusted client certificate at
    OpenSecureChannel, not at CreateSession; asyncua's client then fails with a bare AssertionError
    (PROTOCOLS.md). asyncua's own server only checks at CreateSession, so this stands in for the
    strict kind. Security policy None only: enough to reach the client's failing code path.
    """

    def __init__(self, status: int = ua.StatusCodes.BadSecurityChecksFailed):
        self.status = status
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/heatctl/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = TransportLimits(65535, 65535, 0, 0)
        conn = SecureConnection(security_policies.SecurityPolicyNone(), limits)
        data = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                data += chunk
                while data:
                    buf = Buffer(data)
                    try:
                        header = header_from_binary(buf)
                    except NotEnoughData:
                        break
                    if len(buf) < header.body_size:
                        break
                    data = data[header.header_size + header.body_size:]
                    msg = conn.receive_from_header_and_body(header, buf)
                    if isinstance(msg, ua.Hello):
                        ack = limits.create_acknowledge_and_set_limits(msg)
                        writer.write(uatcp_to_binary(ua.MessageType.Acknowledge, ack))
                    elif header.MessageType == ua.MessageType.SecureOpen:
                        request = struct_from_binary(ua.OpenSecureChannelRequest, msg.body())
                        response = ua.OpenSecureChannelResponse()
                        response.ResponseHeader.RequestHandle = request.RequestHeader.RequestHandle
                        response.ResponseHeader.ServiceResult = ua.StatusCode(self.status)
                        writer.write(conn.message_to_binary(
                            struct_to_binary(response), message_type=ua.MessageType.SecureOpen,
                            request_id=msg.SequenceHeader().RequestId))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
