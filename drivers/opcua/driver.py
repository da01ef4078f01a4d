"""OPC-UA driver: a data-change subscription per driver, verified writes, its own reconnect.

Layers (STYLE.md): the value codec (`drivers.opcua.codec`), the trust decision
(`drivers.opcua.trust`) and the error wording (`describe_error`) are pure functions; `OpcuaDriver`
is the I/O shell around asyncua's `Client`.

Reading model. One subscription holds one monitored item per point (sampling_interval_ms,
publishing_interval_ms, keepalive_count from the config). Each publish response is handled at once,
in asyncua's publish loop: a data change replaces the point's cached DataValue (value, status,
source timestamp); any publish response, data or keep-alive, confirms that every cached value is
still current at that moment, because the server sends every change it has. `read()` therefore
returns each cached value with `ts` = `clock()` at the latest publish response: a steady value on a
healthy subscription stays fresh, and a silent subscription's values age and go stale in the
controller. (A value stamped only when it last *changed* would make a steady `consumer_available`
look stale after its max_age_s although nothing is wrong.) Status codes map to quality: Good ->
GOOD, Uncertain -> UNCERTAIN, Bad -> BAD with the status name as reason. Booleans read 1.0 / 0.0.

Polling fallback (use_subscription false, or the server refuses the subscription): `read()` sends
one Read request for all nodes, bounded by timeout_s.

Link supervision. The driver runs asyncua's Client with auto_reconnect off and does its own:
- a closed socket changes the client state at once; `read()` checks that state on every call, so
  the points are LOST from the first read after the loss, never the cached values;
- asyncua's supervisor reads ServerState every `_PROBE_PERIOD_S` and reports a dead-but-open link
  through `connection_lost_callback`;
- a subscription silent for longer than RevisedMaxKeepAliveCount x RevisedPublishingInterval (plus
  `timeout_s` for the network) -- no data change and no keep-alive -- is LOST and rebuilt on the
  same session; if that fails, the session is dropped and rebuilt;
- every (re)connect builds a new Client, session and subscription (a restarted server has
  forgotten them all), after a bounded exponential backoff from reconnect_min_s to reconnect_max_s
  (`drivers.backoff`, on the event loop's clock: the supervision task sleeps in real time). Every
  failure line names the endpoint and when the next try is.

Trust (Sign, SignAndEncrypt): before the secure channel opens, the driver asks the server for its
endpoints (GetEndpoints over security None, which every server offers for discovery), takes the
certificate of the endpoint it will use, and decides in `drivers.opcua.trust` whether it is
trusted (a pin, a trust store, trust on first use when asked). An untrusted certificate is refused
with one line naming its SHA-256 fingerprint; the channel is then opened with that certificate,
and asyncua checks that the session's certificate is the same one.

A failure is logged once (structlog, `opcua_failure`) and once more on recovery (`opcua_recovered`).
Health: connected, errors_total, reconnects_total (sessions re-established after a loss),
last_error (kept after recovery, as the last thing that went wrong), requests_total,
writes_failed_total, last_ok_ts.

Writes go out in one Write request with each node's own VariantType (read once per session from the
node's DataType attribute: a Python float sent to a Float node is a Double and gets BadTypeMismatch,
PROTOCOLS.md), then one Read request reads them back; a write is ok only if the read-back matches.
The whole write shares one timeout_s, as a read does.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import structlog
import yaml
from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.crypto import security_policies
from cryptography import x509

from controller.site.access import permission_denied
from controller.core.readings import Quality, Reading
from controller.site.opcua_schema import OpcuaDriverConfig
from drivers.backoff import Backoff
from drivers.base import Clock, Driver, DriverPoint, LinkState, WriteResult, retry_text
from drivers.opcua import quiet, trust
from drivers.opcua.codec import (  # noqa: F401 - re-exported: the codec's public names
    datavalue_to_reading, readback_matches, to_float, to_variant, variant_type_of,
)
from drivers.opcua.trust import TrustedOnFirstUse, TrustError

log = structlog.get_logger(__name__)

# asyncua's supervisor reads ServerState this often (seconds) to find a link that is open but dead;
# its probe times out after the same period. 1 s: a hung server is found within ~2 s, at the cost
# of one small Read a second.
_PROBE_PERIOD_S = 1.0
# How often the supervision loop looks at the link between wake-ups (seconds). Losses that asyncua
# reports wake it at once; this only bounds the delay of the silence check and of a reconnect.
_WATCH_PERIOD_S = 0.1
# Requested session timeout (ms). A controller that dies leaves its session on the server; the server
# frees it (and its subscription) after this long instead of asyncua's default hour.
_SESSION_TIMEOUT_MS = 60_000
# A connect is socket, Hello, OpenSecureChannel, CreateSession, ActivateSession, (GetEndpoints when
# no server certificate is configured), the data-type read, CreateSubscription, CreateMonitoredItems:
# at most 10 round trips, each bounded by timeout_s. The whole attempt is bounded by their sum.
_CONNECT_ROUND_TRIPS = 10
# Server-side lifetime of the subscription in keep-alive periods (Part 4, 5.13.2: lifetime count
# must be at least 3 x keep-alive count). The server drops an abandoned subscription after that.
_LIFETIME_KEEPALIVES = 3
# Our client handles for monitored items: point index + this. Any value works; non-zero helps when
# reading a capture.
_HANDLE_BASE = 1

_APPLICATION_URI = "urn:heatctl:controller"

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}

_CERT_STATUSES = {
    "BadCertificateUntrusted", "BadSecurityChecksFailed", "BadCertificateInvalid",
    "BadCertificateUriInvalid", "BadCertificateTimeInvalid", "BadCertificateRevoked",
    "BadCertificateUseNotAllowed", "BadCertificateIssuerRevocationUnknown",
    "BadCertificateRevocationUnknown", "BadSecurityPolicyRejected",
}
_USER_STATUSES = {
    "BadUserAccessDenied", "BadIdentityTokenRejected", "BadIdentityTokenInvalid",
    "BadUserSignatureInvalid",
}


class ReadMode(enum.Enum):
    """How values arrive: pushed by a subscription, or pulled by one Read per `read()`."""

    SUBSCRIPTION = "subscription"
    POLLING = "polling"


class ConfigProblem(Exception):
    """Something in the driver's config or its files that no retry can fix."""


# --- pure helpers --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(exc: BaseException, config: OpcuaDriverConfig, stage: str,
                   username: str | None = None) -> str:
    """One operator-readable line for a failure, naming the fix where there is an obvious one."""
    secure = config.security_mode != "None"
    if isinstance(exc, ConfigProblem):
        return f"config: {exc}"
    if isinstance(exc, TrustError):
        return f"{stage}: refused by this client: {exc}"
    if isinstance(exc, ua.UaError) and str(exc).startswith("No matching endpoints"):
        # The session's endpoint list has no endpoint with our security (asyncua's wording).
        return (f"{stage}: {config.endpoint} offers no endpoint with security_mode "
                f"{config.security_mode} and security_policy {config.security_policy}"
                + ("" if secure else " (it requires Sign or SignAndEncrypt)"))
    if isinstance(exc, AssertionError) and stage == "connect":
        # asyncua raises a bare AssertionError when the server answers OpenSecureChannel with a Bad
        # status (PROTOCOLS.md): strict servers do that for a client certificate they do not trust.
        if secure:
            fp = _fingerprint_of(config.client_certificate)
            return (f"connect: the server refused the secure channel: this client's certificate "
                    f"{config.client_certificate}{fp} is probably not trusted by the server "
                    f"(add it to the server's trusted certificates)")
        return ("connect: the server refused to open the channel with security None "
                "(it may require Sign/SignAndEncrypt or a trusted client certificate)")
    if isinstance(exc, ua.UaStatusCodeError):
        name = ua.StatusCode(exc.code).name
        if name == "BadSecurityModeRejected" and not secure:
            return (f"{stage}: the server refused security None ({name}): it requires Sign or "
                    "SignAndEncrypt; set security_mode and security_policy")
        if name in _CERT_STATUSES:
            fp = _fingerprint_of(config.client_certificate)
            return (f"{stage}: the server refused this client's certificate "
                    f"{config.client_certificate}{fp} ({name}): add it to the server's "
                    "trusted certificates")
        if name in _USER_STATUSES:
            who = f"user {username!r}" if username else "anonymous login"
            src = f" from {config.credentials_file}" if config.credentials_file else ""
            return f"{stage}: the server refused {who}{src} ({name}): wrong username or password?"
        return _one_line(f"{stage}: {name}: {ua.StatusCode(exc.code).doc}")
    if isinstance(exc, asyncio.TimeoutError):
        return f"{stage}: no answer within {config.timeout_s} s"
    if isinstance(exc, ConnectionRefusedError):
        return f"{stage}: connection refused by {config.endpoint}"
    if isinstance(exc, (ConnectionError, OSError)):
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
        return _one_line(f"{stage}: connection to {config.endpoint} failed: {detail}")
    return _one_line(f"{stage}: {type(exc).__name__}: {exc}")


def _fingerprint_of(cert_path: str | None) -> str:
    """" (SHA-256 AA:BB:...)" for a certificate file, "" when it cannot be read."""
    if not cert_path:
        return ""
    try:
        return f" (SHA-256 {trust.fingerprint(trust.load_certificate_der(cert_path))})"
    except TrustError:
        return ""


def load_credentials(path: str) -> tuple[str, str]:
    """username and password from a YAML file with `username:` and `password:` (never inline)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except PermissionError:
        raise ConfigProblem(f"credentials_file {permission_denied(path)}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigProblem(f"credentials_file {path}: cannot read: {_one_line(str(exc))}") from None
    if (not isinstance(data, dict) or not isinstance(data.get("username"), str)
            or not isinstance(data.get("password"), str)):
        raise ConfigProblem(f"credentials_file {path}: expected `username:` and `password:` strings")
    unknown = set(data) - {"username", "password"}
    if unknown:
        raise ConfigProblem(f"credentials_file {path}: unknown keys {sorted(unknown)}")
    return data["username"], data["password"]


def _application_uri_of(cert_path: str) -> str | None:
    """The URI in a certificate's SubjectAltName: the client must present it as its application URI."""
    raw = Path(cert_path).read_bytes()
    try:
        cert = x509.load_der_x509_certificate(raw)
    except ValueError:
        cert = x509.load_pem_x509_certificate(raw)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


@dataclass
class _Sample:
    dv: ua.DataValue
    received: float  # self.clock() when the data change arrived


# --- the driver ----------------------------------------------------------------------------------


class OpcuaDriver(Driver):
    """OPC-UA client for the points of one server (see the module docstring)."""

    kind = "opcua"

    def __init__(self, name: str, config: OpcuaDriverConfig, points: Mapping[str, DriverPoint],
                 clock: Clock = time.monotonic):
        super().__init__(name, config, points, clock)
        self.config: OpcuaDriverConfig = config
        quiet.install()  # asyncua's own copies of the failures this driver reports in one line
        self._nodeids: dict[str, ua.NodeId] = {}
        # Points whose node id does not parse: LOST with this reason, never asked for.
        self._invalid: dict[str, str] = {}
        for pname, dp in self.points.items():
            node_id = getattr(dp.source, "node_id", None)
            try:
                self._nodeids[pname] = ua.NodeId.from_string(node_id)
            except Exception:
                self._invalid[pname] = f"config: invalid node id {node_id!r}"
        self._handles = {i + _HANDLE_BASE: p for i, p in enumerate(self._nodeids)}
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._closing = False
        self._mode = ReadMode.SUBSCRIPTION if config.use_subscription else ReadMode.POLLING
        # Link state: `_up` is True only while a session is active and its values can be trusted.
        self._up = False
        self._down_reason = "not connected yet"
        self._lost_reason: str | None = None  # set by callbacks; the supervision loop acts on it
        self._ever_up = False
        self._failing = False
        # Reconnect backoff on the event loop's clock (the supervision task sleeps in real time).
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._config_failure = False  # the last failure is one no retry fixes (config, trust)
        self._trust_events: list[TrustedOnFirstUse] = []
        self._health.endpoint = config.endpoint
        self._username: str | None = None
        # Per session: data types, the subscription and its cache.
        self._vtypes: dict[str, ua.VariantType] = {}
        self._sub_id: int | None = None
        self._silence_limit_s = math.inf
        self._last_publish_mono = 0.0  # time.monotonic(): silence is wall time, not the tick clock
        self._confirmed_at: float | None = None  # self.clock() at the latest publish response
        self._samples: dict[str, _Sample] = {}
        # Point -> (sample, confirmation time, the Reading made from them): see _read_cached.
        self._made: dict[str, tuple[_Sample, float, Reading]] = {}
        self._item_errors: dict[str, str] = {}  # monitored items the server refused
        self._health.extra.update({"subscription": 0.0, "subscription_rebuilds_total": 0.0})

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def mode(self) -> ReadMode:
        return self._mode

    def _connect_budget_s(self) -> float:
        return self.config.timeout_s * _CONNECT_ROUND_TRIPS

    async def start(self) -> None:
        """Start the supervision task and wait (bounded) for its first connection attempt."""
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"opcua-driver-{self.name}")
        try:
            await asyncio.wait_for(self._first_attempt.wait(), self._connect_budget_s() + 1.0)
        except asyncio.TimeoutError:
            pass

    async def close(self) -> None:
        """Stop reconnecting, close the session; idempotent."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._set_down("driver closed")
        await self._drop_client()

    def health(self):
        h = self._health
        h.connected = self._link_usable()
        h.extra["subscription"] = 1.0 if (h.connected and self._mode is ReadMode.SUBSCRIPTION) else 0.0
        if self._closing:
            h.state, h.next_try_in_s = LinkState.CLOSED, None
        elif h.connected:
            h.state, h.next_try_in_s = LinkState.CONNECTED, None
        else:
            h.next_try_in_s = self._backoff.wait_s(time.monotonic())
            if self._config_failure:
                h.state = LinkState.FAILED
            else:
                h.state = LinkState.BACKING_OFF if h.next_try_in_s > 0 else LinkState.CONNECTING
        return h

    def take_trust_events(self) -> list[TrustedOnFirstUse]:
        """Server certificates trusted on first use since the last call (for the audit log)."""
        events, self._trust_events = self._trust_events, []
        return events

    def _down_line(self) -> str:
        """Why the points are LOST now, with the endpoint and the next try."""
        reason = self._lost_reason or self._down_reason or "not connected"
        wait = self._backoff.wait_s(time.monotonic())
        where = "" if self.config.endpoint in reason else f"{self.config.endpoint}; "
        return f"{reason} ({where}{retry_text(wait)})"

    # --- state bookkeeping -------------------------------------------------------------------

    def _link_usable(self) -> bool:
        client = self._client
        return (self._up and client is not None and self._lost_reason is None
                and client.uaclient.state is UaClientState.CONNECTED)

    def _set_down(self, reason: str) -> None:
        """Points LOST from now on: drop the cache, never serve the old values."""
        self._up = False
        self._down_reason = reason
        self._samples.clear()
        self._made.clear()
        self._confirmed_at = None

    def _note_failure(self, detail: str) -> None:
        self._health.errors_total += 1
        self._health.last_error = detail
        if not self._failing:
            self._failing = True
            log.warning("opcua_failure", driver=self.name, endpoint=self.config.endpoint, error=detail)

    def _note_recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("opcua_recovered", driver=self.name, endpoint=self.config.endpoint,
                     mode=self._mode.value, was=self._health.last_error)

    def _signal_lost(self, reason: str) -> None:
        """From callbacks: mark the link lost now, and wake the supervision loop to rebuild it."""
        if self._lost_reason is None:
            self._lost_reason = reason
        self._set_down(reason)
        self._wake.set()

    # --- supervision -------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                await asyncio.wait_for(self._open(), self._connect_budget_s())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = describe_error(exc, self.config, "connect", self._username)
                self._config_failure = isinstance(exc, (ConfigProblem, TrustError))
                delay = self._backoff.failure(loop.time())
                self._set_down(detail)
                where = "" if self.config.endpoint in detail else f"{self.config.endpoint}; "
                self._note_failure(f"{detail} ({where}{retry_text(delay)})")
                await self._drop_client()
                self._first_attempt.set()
                await asyncio.sleep(delay)
                continue
            self._backoff.success()
            self._config_failure = False
            if self._ever_up:
                self._health.reconnects_total += 1
            self._ever_up = True
            self._note_recovered()
            self._first_attempt.set()
            reason = await self._watch()
            self._set_down(reason)
            # Not at once: a server that drops us right after accepting must not get a tight loop.
            delay = self._backoff.failure(loop.time())
            self._note_failure(f"{reason} ({self.config.endpoint}; {retry_text(delay)})")
            await self._drop_client()
            await asyncio.sleep(delay)

    async def _open(self) -> None:
        """One connection attempt: client, security, session, data types, subscription."""
        cfg = self.config
        self._lost_reason = None
        self._vtypes.clear()
        self._sub_id = None
        self._item_errors.clear()
        creds = load_credentials(cfg.credentials_file) if cfg.credentials_file else None
        self._username = creds[0] if creds else None
        verdict: trust.Verdict | None = None
        server_der = b""

        client = Client(cfg.endpoint, timeout=cfg.timeout_s, watchdog_intervall=_PROBE_PERIOD_S,
                        auto_reconnect=False)
        self._client = client
        client.session_timeout = _SESSION_TIMEOUT_MS
        client.name = client.description = f"heatctl {self.name}"
        client.application_uri = _APPLICATION_URI
        if cfg.security_mode != "None" or cfg.security_policy != "None":
            if cfg.security_mode == "None" or cfg.security_policy == "None":
                raise ConfigProblem(f"security_mode {cfg.security_mode} with security_policy "
                                    f"{cfg.security_policy}: set both, or neither")
            if not cfg.client_certificate or not cfg.client_key:
                raise ConfigProblem(f"security_mode {cfg.security_mode} needs client_certificate "
                                    "and client_key")
            try:
                uri = _application_uri_of(cfg.client_certificate)
            except (OSError, ValueError) as exc:
                raise ConfigProblem(f"client_certificate {cfg.client_certificate}: "
                                    f"{_one_line(str(exc))}") from None
            if uri:
                # Servers check that the application URI matches the certificate's.
                client.application_uri = uri
            server_der, verdict = await self._trusted_server_certificate()
            await client.set_security(
                _POLICIES[cfg.security_policy], cfg.client_certificate, cfg.client_key,
                server_certificate=server_der, mode=_MODES[cfg.security_mode],
            )
        if creds is not None:
            client.set_user(creds[0])
            client.set_password(creds[1])
        client.connection_lost_callback = self._lost_callback_for(client)
        self._health.requests_total += 1
        await client.connect()
        if verdict is not None and verdict.store_as is not None:
            # Stored only now: the server has proved, by opening the secure channel and signing
            # the session, that it holds the certificate's private key.
            self._trust_first_use(server_der, verdict.store_as)
        await self._load_types(client, list(self._nodeids))
        self._mode = ReadMode.POLLING
        if cfg.use_subscription:
            try:
                await self._subscribe(client)
                self._mode = ReadMode.SUBSCRIPTION
            except (asyncio.TimeoutError, ConnectionError, OSError):
                raise
            except Exception as exc:
                # The server answered but will not subscribe (BadTooManySubscriptions,
                # BadServiceUnsupported...): poll instead, and say so once.
                log.warning("opcua_polling_fallback", driver=self.name,
                            error=describe_error(exc, cfg, "subscribe"))
        self._up = True
        self._down_reason = ""

    async def _trusted_server_certificate(self) -> tuple[bytes, trust.Verdict]:
        """The server certificate of the endpoint we will use, if trusted; TrustError if not."""
        cfg = self.config
        if cfg.trust_on_first_use and not cfg.trust_store:
            raise ConfigProblem("trust_on_first_use needs trust_store (the directory to keep the "
                                "certificate in)")
        pinned = None
        if cfg.server_certificate:
            pinned = (trust.load_certificate_der(cfg.server_certificate), cfg.server_certificate)
        store_dir = Path(cfg.trust_store) if cfg.trust_store else None
        store = trust.read_store(store_dir) if store_dir is not None else None
        probe = Client(cfg.endpoint, timeout=cfg.timeout_s)
        self._health.requests_total += 1
        try:
            endpoints = await probe.connect_and_get_server_endpoints()
        finally:
            probe.disconnect_socket()
        policy_uri = _POLICIES[cfg.security_policy].URI
        mode = _MODES[cfg.security_mode]
        offered = [e for e in endpoints if e.SecurityMode == mode and e.SecurityPolicyUri == policy_uri]
        if not offered:
            have = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}"
                           for e in endpoints})
            raise TrustError(f"{cfg.endpoint} offers no endpoint with {cfg.security_policy}/"
                             f"{cfg.security_mode} (it offers {', '.join(have) or 'none'})")
        server_der = trust.first_certificate(bytes(offered[0].ServerCertificate or b""))
        if not server_der:
            raise TrustError(f"{cfg.endpoint} sent no server certificate for "
                             f"{cfg.security_policy}/{cfg.security_mode}")
        verdict = trust.decide(server_der, cfg.endpoint, pinned=pinned, store=store,
                               store_dir=store_dir, trust_on_first_use=cfg.trust_on_first_use)
        if not verdict.trusted:
            raise TrustError(verdict.line)
        return server_der, verdict

    def _trust_first_use(self, der: bytes, path: Path) -> None:
        try:
            trust.store_certificate(path, der)
        except OSError as exc:
            # Trusted for this session (the server proved its key), but not remembered: say so.
            log.error("opcua_trust_store_write_failed", driver=self.name, path=str(path),
                      error=exc.strerror or str(exc))
        event = TrustedOnFirstUse(self.config.endpoint, trust.fingerprint(der),
                                  trust.describe_certificate(der), str(path))
        self._trust_events.append(event)
        log.warning("opcua_server_certificate_trusted_on_first_use", driver=self.name,
                    endpoint=event.endpoint, fingerprint_sha256=event.fingerprint,
                    subject=event.subject, stored_as=event.path)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._sub_id = None
        if client is None:
            return
        client.connection_lost_callback = None
        try:
            await asyncio.wait_for(client.disconnect(), self.config.timeout_s)
        except (asyncio.CancelledError, Exception):
            pass
        finally:
            client.disconnect_socket()

    def _lost_callback_for(self, client: Client):
        async def on_connection_lost(exc: Exception) -> None:
            if client is self._client:  # a late report from a client already replaced is ignored
                self._signal_lost(describe_error(exc, self.config, "connection lost"))
        return on_connection_lost

    async def _watch(self) -> str:
        """Wait until the link is lost; rebuild a silent subscription on the way. Returns why."""
        client = self._client
        assert client is not None
        while True:
            if self._lost_reason is not None:
                return self._lost_reason
            if client.uaclient.state is not UaClientState.CONNECTED:
                return f"connection lost: {self.config.endpoint} ({client.uaclient.state.value})"
            if self._mode is ReadMode.SUBSCRIPTION and self._silence_s() > self._silence_limit_s:
                reason = self._silence_reason()
                self._set_down(reason)
                self._note_failure(reason)
                try:
                    await self._resubscribe(client)
                except Exception as exc:
                    return f"{reason}; rebuilding it failed: {describe_error(exc, self.config, 'subscribe')}"
                self._health.extra["subscription_rebuilds_total"] += 1
                self._up = True
                self._down_reason = ""
                self._note_recovered()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), _WATCH_PERIOD_S)
            except asyncio.TimeoutError:
                pass

    def _silence_s(self) -> float:
        return time.monotonic() - self._last_publish_mono

    def _silence_reason(self) -> str:
        return (f"subscription silent for {self._silence_s():.1f} s (no data change and no "
                f"keep-alive; limit {self._silence_limit_s:.1f} s)")

    # --- subscription ------------------------------------------------------------------------

    async def _subscribe(self, client: Client) -> None:
        cfg = self.config
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = cfg.publishing_interval_ms
        params.RequestedMaxKeepAliveCount = cfg.keepalive_count
        params.RequestedLifetimeCount = cfg.keepalive_count * _LIFETIME_KEEPALIVES
        params.MaxNotificationsPerPublish = 0  # no limit: every point fits one publish
        params.PublishingEnabled = True
        params.Priority = 0
        self._samples.clear()
        self._made.clear()
        self._health.requests_total += 1
        def on_publish(result: ua.PublishResult) -> None:
            # Subscription ids restart at 1 on a restarted server: only the current client counts.
            if client is self._client:
                self._on_publish(result)

        result = await asyncio.wait_for(
            client.uaclient.create_subscription(params, on_publish), cfg.timeout_s)
        self._sub_id = result.SubscriptionId
        self._last_publish_mono = time.monotonic()
        # Silent means: no publish response for a whole keep-alive period, plus one request's
        # timeout for the network and the server's scheduling.
        self._silence_limit_s = (result.RevisedMaxKeepAliveCount * result.RevisedPublishingInterval
                                 / 1000.0 + cfg.timeout_s)
        items = []
        for handle, pname in self._handles.items():
            mparams = ua.MonitoringParameters()
            mparams.ClientHandle = handle
            mparams.SamplingInterval = cfg.sampling_interval_ms
            mparams.QueueSize = 1  # the latest value is all the controller wants
            mparams.DiscardOldest = True
            rv = ua.ReadValueId()
            rv.NodeId = self._nodeids[pname]
            rv.AttributeId = ua.AttributeIds.Value
            mir = ua.MonitoredItemCreateRequest()
            mir.ItemToMonitor = rv
            mir.MonitoringMode = ua.MonitoringMode.Reporting
            mir.RequestedParameters = mparams
            items.append(mir)
        if not items:
            return
        mparams_all = ua.CreateMonitoredItemsParameters()
        mparams_all.SubscriptionId = self._sub_id
        mparams_all.TimestampsToReturn = ua.TimestampsToReturn.Both
        mparams_all.ItemsToCreate = items
        self._health.requests_total += 1
        results = await asyncio.wait_for(client.uaclient.create_monitored_items(mparams_all),
                                         cfg.timeout_s)
        self._item_errors.clear()
        for mir, res in zip(items, results):
            if not res.StatusCode.is_good():
                pname = self._handles[mir.RequestedParameters.ClientHandle]
                self._item_errors[pname] = res.StatusCode.name

    async def _resubscribe(self, client: Client) -> None:
        old, self._sub_id = self._sub_id, None
        if old is not None:
            try:
                await asyncio.wait_for(client.uaclient.delete_subscriptions([old]), self.config.timeout_s)
            except Exception:
                pass  # the server has most likely forgotten it already
        await self._subscribe(client)

    def _on_publish(self, result: ua.PublishResult) -> None:
        """Called by asyncua's publish loop for every publish response (and on link loss)."""
        if self._sub_id is None or result.SubscriptionId != self._sub_id:
            return
        now = self.clock()
        data = result.NotificationMessage.NotificationData or []
        for notif in data:
            if isinstance(notif, ua.StatusChangeNotification):
                status = notif.Status
                if not status.is_good():
                    # BadShutdown when asyncua saw the link die; BadTimeout when the server expired
                    # the subscription.
                    self._signal_lost(f"subscription ended: {status.name}")
                    return
        for notif in data:
            if isinstance(notif, ua.DataChangeNotification):
                for item in notif.MonitoredItems:
                    pname = self._handles.get(item.ClientHandle)
                    if pname is not None:
                        self._samples[pname] = _Sample(item.Value, now)
        self._last_publish_mono = time.monotonic()
        self._confirmed_at = now
        self._health.last_ok_ts = now

    # --- data types --------------------------------------------------------------------------

    async def _load_types(self, client: Client, names: list[str], timeout_s: float | None = None) -> None:
        """Read DataType and Value of the given nodes in one request; cache their VariantTypes."""
        names = [n for n in names if n in self._nodeids]
        if not names:
            return
        params = ua.ReadParameters()
        for n in names:
            for attr in (ua.AttributeIds.DataType, ua.AttributeIds.Value):
                rv = ua.ReadValueId()
                rv.NodeId = self._nodeids[n]
                rv.AttributeId = attr
                params.NodesToRead.append(rv)
        self._health.requests_total += 1
        results = await asyncio.wait_for(client.uaclient.read(params), timeout_s or self.config.timeout_s)
        for i, n in enumerate(names):
            dt_dv, val_dv = results[2 * i], results[2 * i + 1]
            data_type = None
            if dt_dv.StatusCode is None or dt_dv.StatusCode.is_good():
                if dt_dv.Value is not None and isinstance(dt_dv.Value.Value, ua.NodeId):
                    data_type = dt_dv.Value.Value
            vtype = variant_type_of(data_type, val_dv.Value)
            if vtype is not None:
                self._vtypes[n] = vtype

    # --- read --------------------------------------------------------------------------------

    async def read(self) -> dict[str, Reading]:
        """Every point's latest reading; all LOST while the link is down. Never raises."""
        try:
            if not self._link_usable():
                return self.lost_all(self._down_line())
            if self._mode is ReadMode.SUBSCRIPTION:
                return self._read_cached()
            return await self._read_polled()
        except Exception as exc:  # a bug must not stop the controller: LOST, and say why
            log.exception("opcua_read_internal_error", driver=self.name)
            self._note_failure(f"internal error: {exc!r}")
            return self.lost_all(f"internal error: {type(exc).__name__}")

    def _read_cached(self) -> dict[str, Reading]:
        if self._silence_s() > self._silence_limit_s:
            # Do not wait for the supervision loop: from this read on, nothing is vouched for.
            # The supervision loop rebuilds the subscription on the same session.
            reason = self._silence_reason()
            self._set_down(reason)
            self._wake.set()
            return self.lost_all(reason)
        now = self.clock()
        ts = self._confirmed_at if self._confirmed_at is not None else now
        out: dict[str, Reading] = {}
        # A point whose sample and confirmation time are those of the last read gets the same
        # Reading object back: at a tick faster than the publishing interval most ticks change
        # nothing, and 500 items would otherwise be converted again every tick.
        made = self._made
        for pname, dp in self.points.items():
            unit = dp.config.unit
            if pname in self._invalid:
                out[pname] = Reading.lost(unit, now, self._invalid[pname])
            elif pname in self._item_errors:
                out[pname] = Reading(None, unit, now, Quality.BAD, self._item_errors[pname])
            elif (s := self._samples.get(pname)) is None:
                out[pname] = Reading.lost(unit, now, "no value yet")
            elif (m := made.get(pname)) is not None and m[0] is s and m[1] == ts:
                out[pname] = m[2]
            else:
                out[pname] = r = datavalue_to_reading(s.dv, unit, ts)
                made[pname] = (s, ts, r)
        return out

    async def _read_polled(self) -> dict[str, Reading]:
        client = self._client
        assert client is not None
        names = list(self._nodeids)
        self._health.requests_total += 1
        try:
            dvs = await asyncio.wait_for(
                client.uaclient.read_attributes([self._nodeids[n] for n in names], ua.AttributeIds.Value),
                self.config.timeout_s)
        except Exception as exc:
            # A BMS that cannot answer one Read within timeout_s is not to be trusted until a new
            # session proves otherwise: drop the link, let the supervision loop rebuild it.
            detail = describe_error(exc, self.config, "read", self._username)
            self._signal_lost(detail)
            return self.lost_all(detail)
        now = self.clock()
        self._health.last_ok_ts = now
        out = {n: datavalue_to_reading(dv, self.points[n].config.unit, now) for n, dv in zip(names, dvs)}
        for pname, reason in self._invalid.items():
            out[pname] = Reading.lost(self.points[pname].config.unit, now, reason)
        return out

    # --- write -------------------------------------------------------------------------------

    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        """Write each command with its node's own type in one request, read back, verify."""
        results: dict[str, WriteResult] = {}
        try:
            await self._write(commands, results)
        except Exception as exc:
            log.exception("opcua_write_internal_error", driver=self.name)
            self._note_failure(f"internal error: {exc!r}")
            for pname, value in commands.items():
                results.setdefault(pname, WriteResult(pname, float(value), False,
                                                      f"internal error: {type(exc).__name__}"))
        ordered = [results[p] for p in commands]
        failed = [r for r in ordered if not r.ok]
        self._health.writes_failed_total += len(failed)
        for r in failed:
            log.debug("opcua_write_failed", driver=self.name, point=r.point, reason=r.reason)
        return ordered

    async def _write(self, commands: Mapping[str, float], results: dict[str, WriteResult]) -> None:
        # The whole write (data types if not known yet, Write, read-back Read) shares one timeout_s,
        # so that write() stays inside the tick like read() does.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_s

        def remaining() -> float:
            return max(deadline - loop.time(), 0.001)

        todo: list[str] = []
        for pname, value in commands.items():
            if pname not in self.points:
                results[pname] = WriteResult(pname, float(value), False, "unknown point")
            elif pname in self._invalid:
                results[pname] = WriteResult(pname, float(value), False, self._invalid[pname])
            else:
                todo.append(pname)
        if not todo:
            return
        client = self._client
        if client is None or not self._link_usable():
            reason = f"not connected: {self._down_line()}"
            for p in todo:
                results[p] = WriteResult(p, float(commands[p]), False, reason)
            return
        missing = [p for p in todo if p not in self._vtypes]
        if missing:
            try:
                await self._load_types(client, missing, remaining())
            except Exception as exc:
                detail = describe_error(exc, self.config, "read data type", self._username)
                self._note_failure(detail)
                for p in missing:
                    results[p] = WriteResult(p, float(commands[p]), False, detail)
                todo = [p for p in todo if p not in missing]
        planned: list[tuple[str, ua.Variant, float]] = []
        for p in todo:
            value = float(commands[p])
            vtype = self._vtypes.get(p)
            if vtype is None:
                results[p] = WriteResult(p, value, False, "data type unknown (node has no value?)")
                continue
            try:
                variant, expected = to_variant(value, vtype)
            except ValueError as exc:
                results[p] = WriteResult(p, value, False, str(exc))
                continue
            planned.append((p, variant, expected))
        if not planned:
            return
        nodeids = [self._nodeids[p] for p, _, _ in planned]
        # No status and no timestamps in the DataValue: some servers refuse writes that carry them
        # (BadWriteNotSupported); the server stamps the value itself.
        dvs = [ua.DataValue(variant, StatusCode=None) for _, variant, _ in planned]
        self._health.requests_total += 1
        try:
            statuses = await asyncio.wait_for(
                client.uaclient.write_attributes(nodeids, dvs, ua.AttributeIds.Value), remaining())
        except Exception as exc:
            detail = describe_error(exc, self.config, "write", self._username)
            if isinstance(exc, (ConnectionError, OSError)) and not isinstance(exc, TimeoutError):
                self._signal_lost(detail)  # counted and logged once by the supervision loop
            else:
                self._note_failure(detail)
            for p, variant, _ in planned:
                results[p] = WriteResult(p, float(commands[p]), False, detail)
            return
        written: list[tuple[str, ua.Variant, float]] = []
        for (p, variant, expected), status in zip(planned, statuses):
            if status.is_good():
                written.append((p, variant, expected))
            else:
                results[p] = WriteResult(p, float(commands[p]), False, f"write refused: {status.name}")
        if not written:
            return
        self._health.requests_total += 1
        try:
            back = await asyncio.wait_for(
                client.uaclient.read_attributes([self._nodeids[p] for p, _, _ in written],
                                                ua.AttributeIds.Value),
                remaining())
        except Exception as exc:
            detail = describe_error(exc, self.config, "read-back", self._username)
            self._note_failure(detail)
            for p, _, _ in written:
                results[p] = WriteResult(p, float(commands[p]), False, f"written, not verified: {detail}")
            return
        for (p, variant, expected), dv in zip(written, back):
            value = float(commands[p])
            status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
            readback = to_float(dv.Value.Value) if dv.Value is not None else None
            if not status.is_good() or readback is None:
                results[p] = WriteResult(p, value, False, f"read-back {status.name}", readback)
            elif not readback_matches(expected, readback, variant.VariantType):
                results[p] = WriteResult(p, value, False, f"read-back {readback} != written {expected}",
                                         readback)
            else:
                results[p] = WriteResult(p, value, True, "", readback)
