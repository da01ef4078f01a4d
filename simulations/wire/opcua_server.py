"""The simulated building BMS as a real OPC-UA server (asyncua), one variable per point.

Every point's source names its node (`ns=2;s=Consumer.SupplyTemp`); this server creates that node in
the project's namespace (registered first, so it gets index 2), with a variant type that suits the
point (Double for measurements, Boolean for `bool` points; a test may ask for Float or Int32), and
makes actuators writable. It binds and advertises 127.0.0.1 only unless told otherwise
(PROTOCOLS.md: asyncua listens on every interface by default).

Faults for driver tests:
- `stop()` then `start()` again: a server restart on the same port, sessions and subscriptions gone.
- `set_silent(True)`: the TCP connections stay open but nothing is read or answered any more, and
  new connections are dropped at once (a hung BMS behind a live switch).
- `set_value(point, value, status="BadSensorFailure")`: a value with a bad or uncertain status.
- `drop_subscriptions()`: the server forgets every subscription, sessions stay up.
- `refuse_subscriptions()`: CreateSubscription answers BadTooManySubscriptions.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509

from controller.site.roles import ROLE_SPECS, PointKind, Role
from drivers.base import DriverPoint

_log = logging.getLogger(__name__)

# The project's namespace. Registered first on a fresh asyncua server (ns=0 is OPC-UA's own, ns=1 the
# server's application URI), so it gets index 2, which the node ids in the site config assume.
NAMESPACE_URI = "urn:heatctl:plant"
PROJECT_NS_INDEX = 2

# Security settings that can be offered, by the names used in the driver config.
SECURITY_CHOICES: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes256_Sha256_RsaPss_Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256_Sha256_RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}

# Tries at finding a free port when port=0: another process (xdist runs tests in parallel) may take
# the port between our probe and the server's bind; three collisions in a row do not happen.
_FREE_PORT_TRIES = 5

WriteCallback = Callable[[str, float], Any]


@dataclass
class _Node:
    point: str
    nodeid: ua.NodeId
    vtype: ua.VariantType
    writable: bool


class _OneUserManager:
    """Accepts exactly one username/password pair; everything else (anonymous too) is refused."""

    def __init__(self, username: str, password: str):
        self._username = username
        self._password = password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username == self._username and password == self._password:
            # UserRole.User, not Admin: asyncua lets an Admin write read-only nodes.
            return User(role=UserRole.User, name=username)
        return None


def default_variant_type(dp: DriverPoint) -> ua.VariantType:
    """Boolean for `bool` points, Double for everything else (temperatures, power, percentages)."""
    return ua.VariantType.Boolean if dp.config.unit == "bool" else ua.VariantType.Double


def is_actuator(dp: DriverPoint) -> bool:
    role = dp.config.role
    try:
        spec = ROLE_SPECS[Role(role)] if role is not None else None
    except ValueError:
        spec = None
    return spec is not None and spec.kind is PointKind.ACTUATOR


def _to_variant_value(value: float, vtype: ua.VariantType) -> Any:
    if vtype is ua.VariantType.Boolean:
        return bool(value >= 0.5)
    if vtype in (ua.VariantType.Float, ua.VariantType.Double):
        return float(value)
    return int(round(value))


def _from_variant_value(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _status(status: int | str | ua.StatusCode) -> ua.StatusCode:
    if isinstance(status, ua.StatusCode):
        return status
    if isinstance(status, str):
        return ua.StatusCode(getattr(ua.StatusCodes, status))
    return ua.StatusCode(status)


def _pick_free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class OpcuaPlantServer:
    """An OPC-UA server holding one variable per point, for the simulated plant and driver tests.

    `points` maps point name -> DriverPoint whose source has a `node_id`. `variant_types` overrides
    the default variant type per point; `writable` overrides which points clients may write
    (default: the actuator roles). `security` lists the endpoints offered ("None",
    "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt", ...); anything but "None" needs
    `certificate` and `private_key`. `trusted_certificates`: when given, only these client
    certificates are accepted (others get BadCertificateUntrusted); when None, any client
    certificate is. `username`/`password`: when given, only that user may open a session.
    `on_write(point, value)` is called after each successful client write.
    """

    def __init__(
        self,
        points: Mapping[str, DriverPoint],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        security: Iterable[str] = ("None",),
        certificate: str | Path | bytes | None = None,
        private_key: str | Path | bytes | None = None,
        trusted_certificates: Iterable[str | Path] | None = None,
        username: str | None = None,
        password: str | None = None,
        variant_types: Mapping[str, ua.VariantType] | None = None,
        writable: Iterable[str] | None = None,
        initial_values: Mapping[str, float] | None = None,
        on_write: WriteCallback | None = None,
        application_uri: str = "urn:heatctl:sim:bms",
    ):
        self.points = dict(points)
        self.host = host
        self._requested_port = port
        self.port: int = port
        self._security = list(security)
        for name in self._security:
            if name not in SECURITY_CHOICES:
                raise ValueError(f"unknown security {name!r}; choose from {sorted(SECURITY_CHOICES)}")
        if any(s != "None" for s in self._security) and (certificate is None or private_key is None):
            raise ValueError("a secure endpoint needs certificate and private_key")
        self._certificate = certificate
        self._private_key = private_key
        self._trusted = [Path(p) for p in trusted_certificates] if trusted_certificates is not None else None
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self._username = username
        self._password = password
        self.on_write = on_write
        self.application_uri = application_uri
        writable_set = set(writable) if writable is not None else {
            n for n, dp in self.points.items() if is_actuator(dp)
        }
        overrides = dict(variant_types or {})
        unknown = (set(overrides) | writable_set | set(initial_values or {})) - set(self.points)
        if unknown:
            raise ValueError(f"unknown points: {sorted(unknown)}")
        self._nodes: dict[str, _Node] = {}
        for name, dp in self.points.items():
            node_id = getattr(dp.source, "node_id", None)
            if not isinstance(node_id, str):
                raise ValueError(f"point {name!r}: source has no node_id")
            nodeid = ua.NodeId.from_string(node_id)
            if nodeid.NamespaceIndex != PROJECT_NS_INDEX:
                raise ValueError(f"point {name!r}: node {node_id} is not in ns={PROJECT_NS_INDEX}, "
                                 f"the project's namespace ({NAMESPACE_URI})")
            self._nodes[name] = _Node(name, nodeid, overrides.get(name, default_variant_type(dp)),
                                      name in writable_set)
        self._by_nodeid = {n.nodeid: n for n in self._nodes.values()}
        # Values survive a restart, as a real BMS keeps its process image across a service restart.
        self._values: dict[str, float] = {name: 0.0 for name in self._nodes}
        self._values.update(initial_values or {})
        self._server: Server | None = None
        self._silent = False
        self._saved_max_connections: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/heatctl/"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Start listening. With port=0 a free port is chosen once and kept across restarts."""
        if self._server is not None:
            return
        tries = _FREE_PORT_TRIES if self.port == 0 else 1
        last_exc: Exception | None = None
        for _ in range(tries):
            if self._requested_port == 0 and self.port == 0:
                self.port = _pick_free_port(self.host)
            try:
                self._server = await self._build_and_start()
                return
            except OSError as exc:  # the port was taken under us
                last_exc = exc
                if self._requested_port != 0 or self._server is not None:
                    raise
                self.port = 0
        raise RuntimeError(f"could not bind an OPC-UA server on {self.host}: {last_exc}")

    async def _build_and_start(self) -> Server:
        user_manager = (_OneUserManager(self._username, self._password)
                        if self._username is not None and self._password is not None else None)
        server = Server(user_manager=user_manager)
        await server.init()
        # Bind and advertise the given host only (PROTOCOLS.md): endpoint url and bind address both.
        server.set_endpoint(self.endpoint)
        server.socket_address = (self.host, self.port)
        server.set_server_name("heatctl simulated BMS")
        await server.set_application_uri(self.application_uri)
        server.set_security_policy([SECURITY_CHOICES[s] for s in self._security])
        if user_manager is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if self._certificate is not None and self._private_key is not None:
            await server.load_certificate(self._certificate)
            await server.load_private_key(self._private_key)
        if self._trusted is not None:
            server.set_certificate_validator(await self._pinned_validator(self._trusted))

        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != PROJECT_NS_INDEX:
            raise RuntimeError(f"namespace {NAMESPACE_URI} got index {idx}, expected {PROJECT_NS_INDEX}")
        objects = server.nodes.objects
        for n in self._nodes.values():
            name = n.nodeid.Identifier if isinstance(n.nodeid.Identifier, str) else n.point
            var = await objects.add_variable(
                n.nodeid, ua.QualifiedName(str(name), idx),
                ua.Variant(_to_variant_value(self._values[n.point], n.vtype), n.vtype),
            )
            if n.writable:
                await var.set_writable(True)
        server.subscribe_server_callback(CallbackType.PostWrite, self._post_write)
        await server.start()
        _log.info("OPC-UA plant server listening on %s", self.endpoint)
        return server

    @staticmethod
    async def _pinned_validator(paths: list[Path]) -> Callable[..., Any]:
        """A validator that accepts exactly the given client certificates (a trust list of pins).

        Self-signed application certificates are trusted one by one on real OPC-UA servers (the
        "trusted" folder), not through a CA chain, so an exact match is the realistic check.
        """
        trusted = set()
        for p in paths:
            cert = await uacrypto.load_certificate(p)
            trusted.add(uacrypto.der_from_x509(cert))

        async def validate(cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
            now = datetime.now(timezone.utc)
            if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
                raise ServiceError(ua.StatusCodes.BadCertificateTimeInvalid)
            if uacrypto.der_from_x509(cert) not in trusted:
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

        return validate

    async def stop(self) -> None:
        """Stop the server: connections close, sessions and subscriptions are gone. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        # Keep the current values for a restart.
        for name in self._nodes:
            v = self._read_from(server, name)
            if v is not None:
                self._values[name] = v
        self._silent = False
        await server.stop()

    async def restart(self) -> None:
        """Stop and start again on the same port."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> "OpcuaPlantServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- values ------------------------------------------------------------------------------

    async def set_value(self, point: str, value: float | None,
                        status: int | str | ua.StatusCode = "Good") -> None:
        """Set a point's value (in the point's unit) and status, as the BMS would; subscribers see it."""
        n = self._nodes[point]
        code = _status(status)
        if value is not None:
            self._values[point] = float(value)
        if self._server is None:
            return
        variant = (ua.Variant(_to_variant_value(value, n.vtype), n.vtype) if value is not None
                   else ua.Variant(None, ua.VariantType.Null))
        now = datetime.now(timezone.utc)
        dv = ua.DataValue(variant, StatusCode=code, SourceTimestamp=now, ServerTimestamp=now)
        await self._server.write_attribute_value(n.nodeid, dv)

    def get_value(self, point: str) -> float | None:
        """The point's current value as a float (booleans 1.0/0.0), None if it holds no number."""
        if self._server is None:
            return self._values[point]
        return self._read_from(self._server, point)

    def variant_type(self, point: str) -> ua.VariantType:
        return self._nodes[point].vtype

    def nodeid(self, point: str) -> ua.NodeId:
        return self._nodes[point].nodeid

    def _read_from(self, server: Server, point: str) -> float | None:
        dv = server.read_attribute_value(self._nodes[point].nodeid)
        if dv.Value is None:
            return None
        return _from_variant_value(dv.Value.Value)

    async def _post_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external or self.on_write is None:
            return
        for wv, status in zip(event.request_params.NodesToWrite, event.response_params):
            n = self._by_nodeid.get(wv.NodeId)
            if n is None or wv.AttributeId != ua.AttributeIds.Value or not status.is_good():
                continue
            value = _from_variant_value(wv.Value.Value.Value if wv.Value.Value is not None else None)
            if value is None:
                continue
            try:
                result = self.on_write(n.point, value)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                _log.exception("on_write callback failed for %s", n.point)

    # --- faults ------------------------------------------------------------------------------

    @property
    def silent(self) -> bool:
        return self._silent

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) reading and answering on every open connection; refuse new ones meanwhile.

        The sockets stay open, so a client sees no error, only silence: no responses, no
        publish answers, no keep-alives. That is the fault only timeouts and keep-alive
        supervision can find.
        """
        if self._server is None or silent == self._silent:
            return
        iserver = self._server.iserver
        self._silent = silent
        if silent:
            # A connection accepted while silent is closed at once by asyncua's own admission check.
            self._saved_max_connections = iserver.max_connections
            iserver.max_connections = 0
            for transport in list(iserver.asyncio_transports):
                transport.pause_reading()
        else:
            iserver.max_connections = self._saved_max_connections or 1000
            for transport in list(iserver.asyncio_transports):
                if not transport.is_closing():
                    transport.resume_reading()

    def refuse_subscriptions(self, refuse: bool = True) -> None:
        """Answer CreateSubscription with BadTooManySubscriptions, as a BMS at its limit does."""
        if self._server is not None:
            self._server.iserver.max_subscriptions = 0 if refuse else 1_000

    async def drop_subscriptions(self) -> int:
        """Forget every subscription while sessions stay up, as a BMS whose OPC-UA stack lost them.

        Clients are not told: their subscription just goes silent (no data, no keep-alive), which is
        what the driver's keep-alive supervision must find. Returns how many were dropped.
        """
        if self._server is None:
            return 0
        service = self._server.iserver.subscription_service
        ids = list(service.subscriptions)
        await service.delete_subscriptions(ids)
        return len(ids)
