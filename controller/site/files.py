"""The files a site config names (credentials, certificates, trust stores): there and readable.

`check-config` runs these after loading; the daemon's drivers report the same files at run time, but
a commissioning engineer should hear of a missing file before the plant does (issue 15). Paths are
resolved as the drivers resolve them (controller.site.paths.resolve_config_file).

A file that exists but that this user may not read is a warning, not an error: an operator checking
/etc/heatctl/site.yaml is deliberately not allowed to read the device credentials (the daemon's user
is), so check-config says it could not verify the file instead of failing the config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import yaml

from controller.site.checks import ProblemRecord
from controller.site.paths import resolve_config_file

# Longest credentials or certificate file worth reading; a real one is a few kB.
_MAX_FILE_BYTES = 1024 * 1024
# Fields that hold file paths, by what they hold.
_CREDENTIALS = ("credentials_file",)
_CERTIFICATES = ("client_certificate", "server_certificate")
_KEYS = ("client_key",)
_DIRECTORIES = ("trust_store",)


def check_files(loaded) -> Iterator[ProblemRecord]:
    """One ProblemRecord per file a driver config names that is missing or unusable.

    `loaded`: a controller.site.loader.LoadedConfig (not imported: the loader imports this layer)."""
    for dname, driver in loaded.site.drivers.items():
        for key in _CREDENTIALS + _CERTIFICATES + _KEYS + _DIRECTORIES:
            value = getattr(driver, key, None)
            if not isinstance(value, str):
                continue
            path = ("drivers", dname, key)
            where = dict(file=loaded.path, line=loaded.line_of(path), key=f"drivers.{dname}.{key}", rule="file")
            resolved = resolve_config_file(value, loaded.path)
            problem = _check_one(key, resolved, value)
            if problem is not None:
                severity, message = problem
                yield ProblemRecord(message=message, severity=severity, **where)


def _check_one(key: str, resolved: str, written: str) -> tuple[str, str] | None:
    p = Path(resolved)
    shown = written if written == resolved else f"{written} ({resolved})"
    try:
        os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        return "error", (f"{shown}: no such file (looked in the current directory, the config's directory "
                         f"and the install); expected the {_what(key)}")
    except PermissionError:
        # A folder on the way this user may not enter (/etc/heatctl/credentials is the daemon's).
        return "warning", (f"{shown}: this user may not reach it (uid {os.getuid()}); the daemon's user must: "
                           f"run check-config as that user to verify it")
    except OSError as exc:
        return "error", f"{shown}: cannot read: {exc.strerror or exc}; expected the {_what(key)}"
    if key in _DIRECTORIES:
        if not p.is_dir():
            return "error", f"{shown}: not a directory; expected a directory of trusted server certificates"
        if not os.access(p, os.R_OK | os.X_OK):
            return "warning", f"{shown}: this user cannot list it; run check-config as the daemon's user to verify it"
        return None
    if not p.is_file():
        return "error", f"{shown}: not a regular file; expected the {_what(key)}"
    try:
        with open(p, "rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except PermissionError:
        return "warning", (f"{shown}: this user may not read it (uid {os.getuid()}); the daemon's user must: "
                           f"run check-config as that user to verify it")
    except OSError as exc:
        return "error", f"{shown}: cannot read: {exc.strerror or exc}; expected the {_what(key)}"
    if len(data) > _MAX_FILE_BYTES:
        return "error", f"{shown}: larger than {_MAX_FILE_BYTES} bytes; expected the {_what(key)}"
    if key in _CREDENTIALS:
        return _credentials(shown, data)
    if key in _CERTIFICATES and not (data.lstrip().startswith(b"-----BEGIN CERTIFICATE") or data[:1] == b"\x30"):
        return "error", f"{shown}: neither PEM nor DER; expected an X.509 certificate"
    if key in _KEYS and not (b"PRIVATE KEY-----" in data or data[:1] == b"\x30"):
        return "error", f"{shown}: neither PEM nor DER; expected a private key"
    return None


def _credentials(shown: str, data: bytes) -> tuple[str, str] | None:
    try:
        creds = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return "error", f"{shown}: not YAML text; expected `username:` and `password:`"
    if (not isinstance(creds, dict) or set(creds) != {"username", "password"}
            or not all(isinstance(creds[k], str) and creds[k] for k in ("username", "password"))):
        return "error", f"{shown}: expected exactly `username:` and `password:`, each a non-empty text"
    return None


def _what(key: str) -> str:
    if key in _CREDENTIALS:
        return "credentials (a YAML file with username: and password:)"
    if key in _KEYS:
        return "private key (PEM or DER)"
    return "certificate (PEM or DER)"
