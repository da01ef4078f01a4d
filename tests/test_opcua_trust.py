"""OPC-UA trust (issue 13): `heatctl points` against a real asyncua server on 127.0.0.1.

Each refusal case runs the real CLI in a subprocess and checks its one line (in the OPC-UA points'
reasons) and that nothing resembling a traceback reaches its stderr. The decision itself is also
table-tested without sockets (`drivers.opcua.trust.decide`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio
import yaml

from controller.site.loader import parse_config_text
from controller.site.paths import REPO_ROOT
from drivers.opcua import trust
from drivers.registry import driver_points
from simulations.wire.opcua_server import OpcuaPlantServer
from tests.opcua_helpers import make_cert, write_credentials

REFERENCE = REPO_ROOT / "config" / "reference-plant.yaml"
USER, PASSWORD = "heatctl", "s3cret-pool"
# Words that only appear when a traceback or an unretrieved task exception is printed.
NOISE = ("Traceback", "Task exception was never retrieved", "NotEnoughData", "Error in",
         "Exception in callback")

on_module_loop = pytest.mark.asyncio(loop_scope="module")


# --- the decision, as a table -----------------------------------------------------------------

A, B = b"\x30\x03\x01\x02\x03", b"\x30\x03\x04\x05\x06"
EP = "opc.tcp://10.0.0.5:4840/bms/"


@pytest.mark.parametrize("server, pinned, store, tofu, record, trusted, words", [
    (A, A, None, False, False, True, ["pinned"]),
    (A, B, None, False, False, False, ["not the pinned", trust.fingerprint(A), trust.fingerprint(B)]),
    (A, None, None, False, False, False, ["not checked against anything", trust.fingerprint(A)]),
    (A, None, {A: Path("/ts/a.der")}, False, False, True, ["trusted (/ts/a.der)"]),
    (A, None, {B: Path("/ts/b.der")}, False, False, False,
     ["not trusted", trust.fingerprint(A), "put it in the trust store /ts"]),
    (A, None, {}, True, False, True, ["trusted on first use", "tofu-10.0.0.5-4840.der"]),
    (A, None, {B: Path("/ts/tofu-10.0.0.5-4840.der")}, True, True, False,
     ["not the one trusted on first use", trust.fingerprint(A)]),
])
def test_decide(tmp_path, server, pinned, store, tofu, record, trusted, words):
    store_dir = None if store is None else Path("/ts")
    if record:  # the first-use record exists: decide() looks at the real directory
        store_dir = tmp_path
        (tmp_path / trust.tofu_file_name(EP)).write_bytes(B)
        words = [w.replace("/ts", str(tmp_path)) for w in words]
    verdict = trust.decide(server, EP, pinned=None if pinned is None else (pinned, "/pin.der"),
                           store=store, store_dir=store_dir, trust_on_first_use=tofu)
    assert verdict.trusted is trusted
    for w in words:
        assert w in verdict.line, verdict.line
    assert "\n" not in verdict.line
    assert (verdict.store_as is not None) == (trusted and tofu)


def test_fingerprint_is_the_sha256_openssl_prints():
    assert trust.fingerprint(b"") == (
        "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55")


def test_first_certificate_drops_a_chain_after_it():
    cert = b"\x30\x82\x00\x03abc"
    assert trust.first_certificate(cert + b"\x30\x01x") == cert
    assert trust.first_certificate(b"\x30\x03abc\x30\x01x") == b"\x30\x03abc"


# --- against the real server, through `heatctl points` ----------------------------------------


class Pki:
    def __init__(self, folder: Path):
        self.folder = folder
        self.server = make_cert(folder, "server", "urn:heatctl:sim:bms", server=True)
        self.impostor = make_cert(folder, "impostor", "urn:heatctl:sim:bms", server=True)
        self.client = make_cert(folder, "client", "urn:heatctl:controller:test", server=False)
        self.stranger = make_cert(folder, "stranger", "urn:heatctl:controller:test", server=False)
        self.creds = write_credentials(folder, USER, PASSWORD)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def reference():
    return parse_config_text(REFERENCE.read_text(), str(REFERENCE))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_server(pki: Pki) -> AsyncIterator[OpcuaPlantServer]:
    """The BMS's OPC-UA points on a SignAndEncrypt-only server that trusts `pki.client` only."""
    server = OpcuaPlantServer(
        driver_points(reference(), "bms_opcua"), security=["Basic256Sha256_SignAndEncrypt"],
        certificate=pki.server[0], private_key=pki.server[1],
        trusted_certificates=[pki.client[0]], username=USER, password=PASSWORD,
        initial_values={"consumer_demand": 12345.0})
    await server.start()
    yield server
    await server.stop()


def site_file(tmp_path: Path, server: OpcuaPlantServer, pki: Pki, **opcua) -> Path:
    """The reference config with its BMS OPC-UA driver aimed at `server` (other devices absent)."""
    data = yaml.safe_load(REFERENCE.read_text())
    for d in data["drivers"].values():
        if d.get("kind") == "ipmi":
            d["credentials_file"] = str(REPO_ROOT / d["credentials_file"])
    drv = data["drivers"]["bms_opcua"]
    drv.update(endpoint=server.endpoint, credentials_file=str(pki.creds), reconnect_min_s=0.2)
    drv.update({k: (str(v) if isinstance(v, Path) else v) for k, v in opcua.items()})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def secure(pki: Pki, client: tuple[Path, Path] | None = None, **more) -> dict:
    client = client or pki.client
    return dict(security_mode="SignAndEncrypt", security_policy="Basic256Sha256",
                client_certificate=client[0], client_key=client[1], **more)


async def points(path: Path) -> tuple[dict[str, dict], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "points", "--config", str(path), "--json",
        "--settle", "1.0", cwd=str(REPO_ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    rows = {r["point"]: r for r in json.loads(out)["points"] if r["driver"] == "bms_opcua"}
    assert rows, out
    return rows, err.decode()


def one_reason(rows: dict[str, dict]) -> str:
    reasons = {r["reason"] for r in rows.values()}
    assert len(reasons) == 1, reasons
    reason = reasons.pop()
    assert "\n" not in reason
    return reason


def no_noise(err: str) -> None:
    for word in NOISE:
        assert word not in err, err


@on_module_loop
async def test_untrusted_server_is_refused_with_its_fingerprint(secure_server, pki, tmp_path):
    store = tmp_path / "trusted"
    store.mkdir()
    rows, err = await points(site_file(tmp_path, secure_server, pki, **secure(pki, trust_store=store)))
    reason = one_reason(rows)
    fp = trust.fingerprint(trust.load_certificate_der(pki.server[0]))
    assert f"server certificate SHA-256 {fp} is not trusted" in reason, reason
    assert f"put it in the trust store {store}" in reason and secure_server.endpoint in reason
    assert all(r["quality"] == "lost" for r in rows.values())
    no_noise(err)


@on_module_loop
async def test_secure_endpoint_without_pin_or_store_is_refused(secure_server, pki, tmp_path):
    rows, err = await points(site_file(tmp_path, secure_server, pki, **secure(pki)))
    reason = one_reason(rows)
    assert "not checked against anything" in reason and "SHA-256" in reason, reason
    no_noise(err)


@on_module_loop
async def test_trust_store_and_trust_on_first_use(secure_server, pki, tmp_path):
    store = tmp_path / "trusted"
    store.mkdir()
    (store / "bms.der").write_bytes(trust.load_certificate_der(pki.server[0]))
    rows, err = await points(site_file(tmp_path, secure_server, pki, **secure(pki, trust_store=store)))
    assert all(r["quality"] == "good" for r in rows.values()), rows
    assert rows["consumer_demand"]["value"] == 12345.0
    no_noise(err)

    tofu_store = tmp_path / "tofu"
    tofu_store.mkdir()
    path = site_file(tmp_path, secure_server, pki,
                     **secure(pki, trust_store=tofu_store, trust_on_first_use=True))
    rows, err = await points(path)
    assert all(r["quality"] == "good" for r in rows.values()), rows
    [stored] = list(tofu_store.iterdir())
    assert stored.read_bytes() == trust.load_certificate_der(pki.server[0])
    fp = trust.fingerprint(stored.read_bytes())
    assert stored.name == trust.tofu_file_name(secure_server.endpoint)
    no_noise(err)
    # The next run trusts the stored certificate; a different one on that endpoint is refused.
    rows, err = await points(path)
    assert all(r["quality"] == "good" for r in rows.values()), rows
    stored.write_bytes(trust.load_certificate_der(pki.impostor[0]))
    rows, err = await points(path)
    reason = one_reason(rows)
    assert f"certificate SHA-256 {fp}, not the one trusted on first use in {stored}" in reason
    no_noise(err)


@on_module_loop
async def test_wrong_pin_names_both_fingerprints(secure_server, pki, tmp_path):
    rows, err = await points(site_file(tmp_path, secure_server, pki,
                                       **secure(pki, server_certificate=pki.impostor[0])))
    reason = one_reason(rows)
    fp_server = trust.fingerprint(trust.load_certificate_der(pki.server[0]))
    fp_pin = trust.fingerprint(trust.load_certificate_der(pki.impostor[0]))
    assert f"presents certificate SHA-256 {fp_server}, not the pinned" in reason, reason
    assert f"{pki.impostor[0]} (SHA-256 {fp_pin})" in reason
    assert "BadTcpInternalError" not in reason
    no_noise(err)


@on_module_loop
async def test_untrusted_client_certificate(secure_server, pki, tmp_path):
    rows, err = await points(site_file(tmp_path, secure_server, pki,
                                       **secure(pki, pki.stranger, server_certificate=pki.server[0])))
    reason = one_reason(rows)
    fp = trust.fingerprint(trust.load_certificate_der(pki.stranger[0]))
    assert "the server refused this client's certificate" in reason, reason
    assert str(pki.stranger[0]) in reason and fp in reason and "BadCertificateUntrusted" in reason
    no_noise(err)


@on_module_loop
async def test_security_none_against_a_secure_only_endpoint(secure_server, pki, tmp_path):
    rows, err = await points(site_file(tmp_path, secure_server, pki))
    reason = one_reason(rows)
    assert "requires Sign or SignAndEncrypt" in reason, reason
    no_noise(err)


# --- asyncua's own chatter: filtered precisely -------------------------------------------------


def test_asyncua_client_noise_is_dropped_or_one_line(caplog):
    import logging

    from asyncua.common.utils import NotEnoughData

    from drivers.opcua import quiet

    quiet.install()
    proto = logging.getLogger("asyncua.client.ua_client.UASocketProtocol")
    with caplog.at_level(logging.WARNING):
        proto.error("Got error status from server: %s", "BadSecurityChecksFailed")
        try:
            raise NotEnoughData("Not enough data left in buffer, request for 4, we have 0")
        except NotEnoughData:
            proto.exception("Exception raised while parsing message from server")
        try:
            raise ValueError("odd\nframe")
        except ValueError:
            proto.exception("Exception raised while parsing message from server")
        logging.getLogger("somebody.else").error("Got error status from server: kept")
    messages = [(r.name, r.getMessage(), r.exc_info) for r in caplog.records]
    assert messages == [
        ("asyncua.client.ua_client.UASocketProtocol",
         "Exception raised while parsing message from server: ValueError: odd frame", None),
        ("somebody.else", "Got error status from server: kept", None),
    ]


async def test_unretrieved_asyncua_task_exception_is_one_line(caplog):
    import gc
    import logging
    import socket

    from asyncua import Client

    from drivers.opcua import quiet

    quiet.install()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        task = asyncio.ensure_future(Client(f"opc.tcp://127.0.0.1:{port}/", timeout=1).connect())
        await asyncio.wait([task])
        del task  # never retrieved: asyncio reports it when the task is collected
        gc.collect()
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1 and records[0].exc_info is None
    assert records[0].getMessage().startswith("OPC-UA client background task ended: ")
    assert "\n" not in records[0].getMessage()
