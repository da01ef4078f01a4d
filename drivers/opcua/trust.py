"""Which OPC-UA server certificate the client trusts: a pin, a trust store, or trust on first use.

With Sign or SignAndEncrypt the server's certificate is what proves that the endpoint is the
plant's BMS; a client that takes whatever certificate GetEndpoints offers hands its credentials and
its writes to anyone who answers on that address. So the driver never accepts a certificate
unchecked (OPC 10000-4, 6.1.3: the client validates the server's application instance
certificate against its trust list). The rules, in `decide()` (pure: certificates in, verdict out):

- `server_certificate` (a pin): the server must present exactly that certificate;
- `trust_store` (a directory of trusted server certificates, DER or PEM, any file name): the
  server's certificate must be one of them;
- `trust_on_first_use` (with a trust store, only when asked): a certificate seen on an endpoint
  for which the store holds no first-use record is written to the store as `tofu-HOST-PORT.der`,
  logged with its fingerprint and returned for the audit log; a later, different certificate on
  that endpoint is refused (like SSH's changed host key), until an operator replaces the file;
- neither a pin nor a store: refused.

Every refusal is one line that names the certificate's SHA-256 fingerprint and what to do.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

# Certificate files a trust store may hold (anything else in the directory is ignored).
_CERT_SUFFIXES = (".der", ".cer", ".crt", ".pem")


class TrustError(Exception):
    """The server's certificate is not trusted, or the trust configuration cannot be used."""


def first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER blob that may carry the issuer chain after it.

    Servers may send their certificate followed by its chain (OPC 10000-6, 6.2.3). The outer
    SEQUENCE's length says where the first ends (X.690 8.1.3: long form with 1 or 2 length bytes,
    which covers every certificate up to 64 KiB).
    """
    if len(der) < 2 or der[0] != 0x30:
        return der
    first = der[1]
    if first < 0x80:
        return der[:2 + first]
    n = first & 0x7F
    if n == 0 or n > 2 or len(der) < 2 + n:
        return der
    return der[:2 + n + int.from_bytes(der[2:2 + n], "big")]


def fingerprint(der: bytes) -> str:
    """SHA-256 of the DER certificate as colon-separated hex, as `openssl x509 -fingerprint
    -sha256` and UaExpert print it, so an operator can compare it by eye."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def load_certificate_der(path: str | Path) -> bytes:
    """A certificate file (DER or PEM) as DER; TrustError naming the file if it is neither."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TrustError(f"cannot read certificate {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" in raw:
        try:
            return x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
        except ValueError:
            raise TrustError(f"certificate {path}: not a readable PEM certificate") from None
    try:
        x509.load_der_x509_certificate(first_certificate(raw))
    except ValueError:
        raise TrustError(f"certificate {path}: neither a DER nor a PEM certificate") from None
    return first_certificate(raw)


def describe_certificate(der: bytes) -> str:
    """Subject of a certificate for a log line ("CN=..."), or "" when it does not parse."""
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return ""


def tofu_file_name(endpoint: str) -> str:
    """The trust store file that records the certificate first seen on `endpoint`."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "server").replace(":", "_")
    return f"tofu-{host}-{parts.port or 4840}.der"


@dataclass(frozen=True)
class TrustedOnFirstUse:
    """A certificate that trust on first use has just added to the store (for the audit log)."""

    endpoint: str
    fingerprint: str
    subject: str
    path: str


@dataclass(frozen=True)
class Verdict:
    """`decide()`'s answer: trusted or not, the line that says why, and what to store (TOFU)."""

    trusted: bool
    line: str
    # Set when trust on first use accepts a new certificate: write `der` to this path.
    store_as: Path | None = None


def read_store(directory: Path) -> dict[bytes, Path]:
    """Every certificate in the trust store: DER -> its file. Unreadable files are skipped here and
    reported by `check-config`; a missing directory is a TrustError."""
    if not directory.is_dir():
        raise TrustError(f"trust_store {directory}: not a directory")
    out: dict[bytes, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in _CERT_SUFFIXES and path.is_file():
            try:
                out[load_certificate_der(path)] = path
            except TrustError:
                continue
    return out


def decide(server_der: bytes, endpoint: str, *, pinned: tuple[bytes, str] | None,
           store: dict[bytes, Path] | None, store_dir: Path | None,
           trust_on_first_use: bool) -> Verdict:
    """Is the certificate `server_der` that `endpoint` presents trusted? (module docstring)

    `pinned` is (DER, file) of `server_certificate`; `store` the trust store's certificates.
    """
    fp = fingerprint(server_der)
    if pinned is not None:
        pin_der, pin_path = pinned
        if pin_der == server_der:
            return Verdict(True, f"server certificate SHA-256 {fp} is the pinned {pin_path}")
        return Verdict(False, f"the server presents certificate SHA-256 {fp}, not the pinned "
                              f"server_certificate {pin_path} (SHA-256 {fingerprint(pin_der)}): if "
                              "the server's certificate was renewed, replace the pinned file")
    if store is None or store_dir is None:
        return Verdict(False, f"server certificate SHA-256 {fp} is not checked against anything: "
                              "set server_certificate (a pin) or trust_store (a directory of "
                              "trusted server certificates); a secure endpoint is never "
                              "trusted blindly")
    if server_der in store:
        return Verdict(True, f"server certificate SHA-256 {fp} is trusted ({store[server_der]})")
    record = store_dir / tofu_file_name(endpoint)
    if trust_on_first_use:
        if record.exists():
            return Verdict(False, f"the server presents certificate SHA-256 {fp}, not the one "
                                  f"trusted on first use in {record}: if the server's "
                                  "certificate was renewed, replace that file")
        return Verdict(True, f"server certificate SHA-256 {fp} trusted on first use, stored as "
                             f"{record}", store_as=record)
    return Verdict(False, f"server certificate SHA-256 {fp} is not trusted: put it in the "
                          f"trust store {store_dir} to trust it")


def store_certificate(path: Path, der: bytes) -> None:
    """Write a trusted-on-first-use certificate atomically (a crash leaves no half file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(der)
    os.chmod(tmp, 0o644)  # a certificate is public; the directory's permissions guard changes
    os.replace(tmp, path)
