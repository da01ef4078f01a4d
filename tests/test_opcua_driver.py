"""OpcuaDriver against the simulated BMS's real OPC-UA server on 127.0.0.1 (free ports: xdist-safe).

Waits are bounded polls of a condition (`wait_for`), never a sleep standing in for one.

asyncua's Server.init() loads the whole standard address space (1-3 s of CPU), so the plain and the
secure server are each built once per module (and per xdist worker) and reset before every test;
the tests run on the module's event loop for that reason (`MODULE_LOOP`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from asyncua import ua
from structlog.testing import capture_logs

from controller.site.models import PointConfig
from controller.core.readings import Quality, Reading
from drivers.base import DriverPoint, LinkState
from drivers.opcua.driver import (
    ReadMode,
    OpcuaDriver,
    datavalue_to_reading,
    describe_error,
    to_variant,
    variant_type_of,
)
from controller.site.opcua_schema import OpcuaDriverConfig, OpcuaPointSource
from simulations.wire.opcua_server import OpcuaPlantServer
from tests.opcua_helpers import ChannelRejectingServer, make_cert, wait_for, write_credentials

# Fast supervision for tests: a keep-alive every 4 x 50 ms; short backoff so restarts heal quickly.
FAST = dict(timeout_s=0.5, sampling_interval_ms=50, publishing_interval_ms=50, keepalive_count=4,
            reconnect_min_s=0.05, reconnect_max_s=0.5)
# Bound on every wait below: generous for a loaded CI box, far below a hang.
WAIT_S = 6.0


def opc_point(name: str, node: str, unit: str = "degC", role: str | None = None,
              rng: tuple[float, float] = (0, 100)) -> DriverPoint:
    return DriverPoint(name, PointConfig(role=role, unit=unit, range=rng),
                       OpcuaPointSource(driver="bms_opcua", node_id=node))


# The reference plant's bms_opcua points.
PLANT_POINTS = {
    "consumer_supply_temp": opc_point("consumer_supply_temp", "ns=2;s=Consumer.SupplyTemp",
                                      role="consumer_supply_temp"),
    "consumer_demand": opc_point("consumer_demand", "ns=2;s=Consumer.Demand", unit="W",
                                 role="consumer_demand", rng=(0, 200000)),
    "consumer_available": opc_point("consumer_available", "ns=2;s=Consumer.Available", unit="bool",
                                    role="consumer_available", rng=(0, 1)),
    "tank_top_temp": opc_point("tank_top_temp", "ns=2;s=Tank.TopTemp", role="tank_top_temp"),
}
INITIAL = {"consumer_supply_temp": 41.5, "consumer_demand": 12000.0, "consumer_available": 1.0,
           "tank_top_temp": 50.0}
# Writable nodes of each variant type, and one read-only node, on the same server.
WRITE_POINTS = {
    "f": opc_point("f", "ns=2;s=W.Float", unit="pct"),
    "d": opc_point("d", "ns=2;s=W.Double", unit="pct"),
    "b": opc_point("b", "ns=2;s=W.Bool", unit="bool", rng=(0, 1)),
    "i": opc_point("i", "ns=2;s=W.Int32", unit="count", rng=(0, 65535)),
    "ro": opc_point("ro", "ns=2;s=W.ReadOnly", unit="pct"),
}
WRITE_TYPES = {"f": ua.VariantType.Float, "d": ua.VariantType.Double, "b": ua.VariantType.Boolean,
               "i": ua.VariantType.Int32}

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def driver_for(endpoint: str, points: dict[str, DriverPoint], **overrides: Any) -> OpcuaDriver:
    cfg = OpcuaDriverConfig(kind="opcua", endpoint=endpoint, **{**FAST, **overrides})
    return OpcuaDriver("bms_opcua", cfg, points)


async def all_good(driver: OpcuaDriver, expected: dict[str, float] | None = None) -> bool:
    readings = await driver.read()
    if not all(r.quality is Quality.GOOD for r in readings.values()):
        return False
    return expected is None or all(readings[k].value == pytest.approx(v) for k, v in expected.items())


async def all_lost(driver: OpcuaDriver) -> bool:
    readings = await driver.read()
    return all(r.quality is Quality.LOST and r.value is None for r in readings.values())


class PlantUnderTest:
    """The module's server, and what its on_write callback saw."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, float]] = []
        self.server = OpcuaPlantServer(
            {**PLANT_POINTS, **WRITE_POINTS}, initial_values=INITIAL, variant_types=WRITE_TYPES,
            writable=set(WRITE_TYPES), on_write=lambda p, v: self.writes.append((p, v)))

    async def reset(self) -> OpcuaPlantServer:
        if not self.server.running:
            await self.server.start()
        self.server.set_silent(False)
        self.server.refuse_subscriptions(False)
        for name, value in {**INITIAL, **{p: 0.0 for p in WRITE_POINTS}}.items():
            await self.server.set_value(name, value)
        self.writes.clear()
        return self.server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plant_module() -> AsyncIterator[PlantUnderTest]:
    put = PlantUnderTest()
    await put.server.start()
    yield put
    await put.server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def plant(plant_module: PlantUnderTest) -> OpcuaPlantServer:
    return await plant_module.reset()


@pytest_asyncio.fixture(loop_scope="module")
async def driver(plant: OpcuaPlantServer) -> AsyncIterator[OpcuaDriver]:
    drv = driver_for(plant.endpoint, PLANT_POINTS)
    await drv.start()
    yield drv
    await drv.close()


# --- pure codec and error wording ----------------------------------------------------------------


@pytest.mark.parametrize("status, value, quality, out", [
    ("Good", ua.Variant(21.5, ua.VariantType.Double), Quality.GOOD, 21.5),
    ("Good", ua.Variant(True, ua.VariantType.Boolean), Quality.GOOD, 1.0),
    ("Good", ua.Variant(False, ua.VariantType.Boolean), Quality.GOOD, 0.0),
    ("Good", ua.Variant(7, ua.VariantType.Int32), Quality.GOOD, 7.0),
    ("UncertainLastUsableValue", ua.Variant(3.0, ua.VariantType.Float), Quality.UNCERTAIN, 3.0),
    ("BadSensorFailure", ua.Variant(3.0, ua.VariantType.Double), Quality.BAD, None),
    ("Good", ua.Variant("text", ua.VariantType.String), Quality.BAD, None),
])
def test_datavalue_to_reading(status: str, value: ua.Variant, quality: Quality, out: float | None):
    dv = ua.DataValue(value, StatusCode=ua.StatusCode(getattr(ua.StatusCodes, status)))
    r = datavalue_to_reading(dv, "degC", 12.0)
    assert (r.quality, r.value, r.ts, r.unit) == (quality, out, 12.0, "degC")
    if quality is not Quality.GOOD:
        assert r.reason


@pytest.mark.parametrize("value, vtype, sent, expected", [
    (21.3, ua.VariantType.Float, None, 21.299999237060547),   # nearest binary32
    (21.3, ua.VariantType.Double, 21.3, 21.3),
    (0.7, ua.VariantType.Boolean, True, 1.0),
    (0.2, ua.VariantType.Boolean, False, 0.0),
    (7.5, ua.VariantType.Int32, 8, 8.0),                      # half to even
    (6.5, ua.VariantType.UInt16, 6, 6.0),
])
def test_to_variant_uses_node_type(value: float, vtype: ua.VariantType, sent: Any, expected: float):
    variant, back = to_variant(value, vtype)
    assert variant.VariantType is vtype
    if sent is not None:
        assert variant.Value == sent and type(variant.Value) is type(sent)
    assert back == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value, vtype", [
    (70000, ua.VariantType.Int16), (-1, ua.VariantType.UInt32), (float("nan"), ua.VariantType.Double),
    (1.0, ua.VariantType.String),
])
def test_to_variant_refuses_what_does_not_fit(value: float, vtype: ua.VariantType):
    with pytest.raises(ValueError):
        to_variant(value, vtype)


def test_variant_type_from_data_type_attribute():
    assert variant_type_of(ua.NodeId(10, 0), None) is ua.VariantType.Float
    assert variant_type_of(ua.NodeId(290, 0), None) is ua.VariantType.Double  # Duration
    # A vendor type: fall back to the type of the value the node holds.
    assert variant_type_of(ua.NodeId(3001, 3), ua.Variant(5, ua.VariantType.Int16)) is ua.VariantType.Int16


def test_error_wording_is_one_clear_line():
    cfg = OpcuaDriverConfig(kind="opcua", endpoint="opc.tcp://127.0.0.1:4840/", security_mode="Sign",
                            security_policy="Basic256Sha256", client_certificate="/etc/heatctl/c.der",
                            client_key="/etc/heatctl/c.pem", credentials_file="/etc/heatctl/opc.yaml")
    msg = describe_error(AssertionError(), cfg, "connect")
    assert "not trusted" in msg and "/etc/heatctl/c.der" in msg and "\n" not in msg
    msg = describe_error(ua.UaStatusCodeError(ua.StatusCodes.BadUserAccessDenied), cfg, "connect", "bob")
    assert "'bob'" in msg and "/etc/heatctl/opc.yaml" in msg and "password" in msg
    assert "0.5 s" in describe_error(asyncio.TimeoutError(), cfg, "read")


# --- subscription -------------------------------------------------------------------------------


@MODULE_LOOP
async def test_subscription_delivers_initial_values_and_changes(plant: OpcuaPlantServer,
                                                                driver: OpcuaDriver):
    await wait_for(lambda: all_good(driver, INITIAL), WAIT_S, "initial values")
    assert driver.mode is ReadMode.SUBSCRIPTION and driver.health().connected
    await plant.set_value("consumer_supply_temp", 43.25)
    await plant.set_value("consumer_available", 0.0)
    await wait_for(lambda: all_good(driver, {"consumer_supply_temp": 43.25, "consumer_available": 0.0}),
                   WAIT_S, "changed values")
    r = (await driver.read())["consumer_supply_temp"]
    assert r.unit == "degC" and r.reason == ""


@MODULE_LOOP
async def test_steady_value_stays_fresh_through_keepalives(plant: OpcuaPlantServer, driver: OpcuaDriver):
    await wait_for(lambda: all_good(driver), WAIT_S, "initial values")
    first = (await driver.read())["consumer_demand"].ts

    async def ts_advanced() -> bool:
        r = (await driver.read())["consumer_demand"]
        return r.quality is Quality.GOOD and r.ts > first
    # Nothing changes on the server: only keep-alives (4 x 50 ms) can move the timestamp on.
    await wait_for(ts_advanced, WAIT_S, "a keep-alive to confirm the unchanged value")


@MODULE_LOOP
async def test_status_codes_map_to_quality(plant: OpcuaPlantServer, driver: OpcuaDriver):
    await wait_for(lambda: all_good(driver), WAIT_S, "initial values")

    async def quality_is(point: str, q: Quality, reason: str) -> bool:
        r = (await driver.read())[point]
        return r.quality is q and r.reason == reason

    await plant.set_value("tank_top_temp", None, status="BadSensorFailure")
    await wait_for(lambda: quality_is("tank_top_temp", Quality.BAD, "BadSensorFailure"), WAIT_S, "BAD")
    assert (await driver.read())["tank_top_temp"].value is None
    await plant.set_value("tank_top_temp", 48.0, status="UncertainLastUsableValue")
    await wait_for(lambda: quality_is("tank_top_temp", Quality.UNCERTAIN, "UncertainLastUsableValue"),
                   WAIT_S, "UNCERTAIN")
    await plant.set_value("tank_top_temp", 49.0)
    await wait_for(lambda: quality_is("tank_top_temp", Quality.GOOD, ""), WAIT_S, "GOOD again")


@MODULE_LOOP
async def test_missing_node_is_bad_others_still_served(plant: OpcuaPlantServer):
    points = {**PLANT_POINTS, "ghost": opc_point("ghost", "ns=2;s=Nope.Missing")}
    drv = driver_for(plant.endpoint, points)
    await drv.start()
    try:
        async def ghost_bad_rest_good() -> bool:
            rs = await drv.read()
            return (rs["ghost"].quality is Quality.BAD and rs["ghost"].reason == "BadNodeIdUnknown"
                    and all(r.quality is Quality.GOOD for n, r in rs.items() if n != "ghost"))
        await wait_for(ghost_bad_rest_good, WAIT_S, "ghost BAD, others GOOD")
    finally:
        await drv.close()


@MODULE_LOOP
async def test_polling_mode_reads_all_nodes(plant: OpcuaPlantServer):
    drv = driver_for(plant.endpoint, PLANT_POINTS, use_subscription=False)
    await drv.start()
    try:
        assert drv.mode is ReadMode.POLLING
        await wait_for(lambda: all_good(drv, INITIAL), WAIT_S, "polled values")
        await plant.set_value("tank_top_temp", 0.0, status="BadOutOfService")
        rs = await drv.read()
        assert rs["tank_top_temp"].quality is Quality.BAD
        assert rs["tank_top_temp"].reason == "BadOutOfService"
    finally:
        await drv.close()


@MODULE_LOOP
async def test_refused_subscription_falls_back_to_polling(plant: OpcuaPlantServer):
    plant.refuse_subscriptions()
    drv = driver_for(plant.endpoint, PLANT_POINTS)
    try:
        await drv.start()
        await wait_for(lambda: all_good(drv, INITIAL), WAIT_S, "polled values")
        assert drv.mode is ReadMode.POLLING
        await plant.set_value("consumer_demand", 777.0)
        assert (await drv.read())["consumer_demand"].value == 777.0  # one Read per read()
    finally:
        plant.refuse_subscriptions(False)
        await drv.close()


# --- writes ---------------------------------------------------------------------------------------


@MODULE_LOOP
async def test_write_with_each_nodes_variant_type_verified_by_readback(plant: OpcuaPlantServer,
                                                                      plant_module: PlantUnderTest):
    drv = driver_for(plant.endpoint, WRITE_POINTS)
    await drv.start()
    try:
        await wait_for(lambda: all_good(drv), WAIT_S, "connected")
        results = await drv.write({"f": 21.3, "d": 42.125, "b": 1.0, "i": 7.0, "ro": 5.0})
        by = {r.point: r for r in results}
        assert [r.point for r in results] == ["f", "d", "b", "i", "ro"]
        for p in ("f", "d", "b", "i"):
            assert by[p].ok, by[p]
        assert by["f"].readback == pytest.approx(21.3, rel=1e-6)
        assert by["d"].readback == 42.125 and by["b"].readback == 1.0 and by["i"].readback == 7.0
        assert not by["ro"].ok and "BadUserAccessDenied" in by["ro"].reason
        assert plant.get_value("f") == pytest.approx(21.3, rel=1e-6)
        assert plant.variant_type("f") is ua.VariantType.Float  # the node kept its type
        assert plant.get_value("b") == 1.0 and plant.get_value("i") == 7.0
        assert sorted(p for p, _ in plant_module.writes) == ["b", "d", "f", "i"]
        # Refused before sending: does not fit the node's type.
        (too_big,) = await drv.write({"i": 3e10})
        assert not too_big.ok and "Int32" in too_big.reason
        assert drv.health().writes_failed_total == 2
        # The subscription sees what was written.
        await wait_for(lambda: all_good(drv, {"d": 42.125, "b": 1.0}), WAIT_S, "written values read")
    finally:
        await drv.close()


# --- link loss and recovery ---------------------------------------------------------------------


@MODULE_LOOP
async def test_server_stop_is_lost_at_once_and_restart_recovers(plant: OpcuaPlantServer):
    drv = driver_for(plant.endpoint, PLANT_POINTS)
    with capture_logs() as logs:
        await drv.start()
        try:
            await wait_for(lambda: all_good(drv), WAIT_S, "initial values")
            port = plant.port
            await plant.stop()
            t0 = time.monotonic()
            await wait_for(lambda: all_lost(drv), 1.0, "LOST after the server stopped")
            assert time.monotonic() - t0 < 1.0
            h = drv.health()
            assert not h.connected and h.last_error and h.errors_total >= 1

            await plant.set_value("consumer_supply_temp", 44.0)  # kept for the restart
            await plant.start()
            assert plant.port == port
            await plant.set_value("tank_top_temp", 51.5)  # a value only the new session can see
            await wait_for(lambda: all_good(drv, {"consumer_supply_temp": 44.0, "tank_top_temp": 51.5}),
                           WAIT_S, "fresh values after the restart")
            h = drv.health()
            assert h.connected and h.reconnects_total >= 1
            assert drv.mode is ReadMode.SUBSCRIPTION
        finally:
            await drv.close()
    failures = [e for e in logs if e["event"] == "opcua_failure"]
    recoveries = [e for e in logs if e["event"] == "opcua_recovered"]
    assert len(failures) == 1 and len(recoveries) == 1, logs


@MODULE_LOOP
async def test_subscription_gone_silent_is_detected_and_rebuilt(plant: OpcuaPlantServer,
                                                               driver: OpcuaDriver):
    await wait_for(lambda: all_good(driver), WAIT_S, "initial values")
    assert await plant.drop_subscriptions() == 1
    # Silence limit: 4 x 50 ms keep-alive period + 0.5 s timeout.
    await wait_for(lambda: all_lost(driver), 3.0, "LOST once the subscription went silent")
    await plant.set_value("consumer_demand", 15000.0)
    await wait_for(lambda: all_good(driver, {"consumer_demand": 15000.0}), WAIT_S, "resubscribed")
    h = driver.health()
    assert h.extra["subscription_rebuilds_total"] >= 1 and "silent" in h.last_error


@MODULE_LOOP
async def test_silent_server_is_lost_then_recovers(plant: OpcuaPlantServer, driver: OpcuaDriver):
    await wait_for(lambda: all_good(driver), WAIT_S, "initial values")
    plant.set_silent(True)
    await wait_for(lambda: all_lost(driver), 4.0, "LOST while the server says nothing")
    assert not driver.health().connected
    plant.set_silent(False)
    await plant.set_value("consumer_demand", 9000.0)
    await wait_for(lambda: all_good(driver, {"consumer_demand": 9000.0}), WAIT_S, "recovery")


@MODULE_LOOP
async def test_unreachable_server_does_not_raise_and_reads_lost():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    drv = driver_for(f"opc.tcp://127.0.0.1:{port}/heatctl/", PLANT_POINTS)
    await drv.start()
    try:
        assert await all_lost(drv)
        assert (await drv.write({"consumer_demand": 1.0}))[0].ok is False
        h = drv.health()
        assert not h.connected and "refused" in h.last_error
        # Issue 15: the endpoint and the next try, in the health line and in the LOST reason.
        endpoint = f"opc.tcp://127.0.0.1:{port}/heatctl/"
        assert endpoint in h.last_error and "next try" in h.last_error, h.last_error
        assert h.state in (LinkState.BACKING_OFF, LinkState.CONNECTING) and h.endpoint == endpoint
        reason = (await drv.read())["consumer_demand"].reason
        assert endpoint in reason and "next try" in reason, reason
    finally:
        await drv.close()
    assert drv.health().state is LinkState.CLOSED


# --- security -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    return {
        "server": make_cert(folder, "server", "urn:heatctl:sim:bms", server=True),
        "client": make_cert(folder, "client", "urn:heatctl:controller:test", server=False),
        "stranger": make_cert(folder, "stranger", "urn:heatctl:controller:test", server=False),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_plant(certs: dict[str, tuple[Path, Path]]) -> AsyncIterator[OpcuaPlantServer]:
    scert, skey = certs["server"]
    server = OpcuaPlantServer(
        PLANT_POINTS, initial_values=INITIAL, security=["Basic256Sha256_SignAndEncrypt"],
        certificate=scert, private_key=skey, trusted_certificates=[certs["client"][0]],
        username="heatctl", password="s3cret-pool",
    )
    await server.start()
    yield server
    await server.stop()


def secure_driver(server: OpcuaPlantServer, cert: tuple[Path, Path], creds: Path,
                  server_cert: Path | None = None) -> OpcuaDriver:
    return driver_for(server.endpoint, PLANT_POINTS, security_mode="SignAndEncrypt",
                      security_policy="Basic256Sha256", client_certificate=str(cert[0]),
                      client_key=str(cert[1]), credentials_file=str(creds),
                      server_certificate=str(server_cert) if server_cert else None)


@MODULE_LOOP
async def test_sign_and_encrypt_with_username_password(secure_plant: OpcuaPlantServer, certs, tmp_path):
    creds = write_credentials(tmp_path, "heatctl", "s3cret-pool")
    drv = secure_driver(secure_plant, certs["client"], creds, server_cert=certs["server"][0])
    await drv.start()
    try:
        await wait_for(lambda: all_good(drv, INITIAL), WAIT_S, "values over SignAndEncrypt")
        assert drv.health().connected
    finally:
        await drv.close()


@MODULE_LOOP
async def test_wrong_password_is_a_clear_error_and_lost(secure_plant: OpcuaPlantServer, certs, tmp_path):
    creds = write_credentials(tmp_path, "heatctl", "not-the-password")
    drv = secure_driver(secure_plant, certs["client"], creds, server_cert=certs["server"][0])
    await drv.start()
    try:
        assert await all_lost(drv)
        err = drv.health().last_error
        assert "'heatctl'" in err and "BadUserAccessDenied" in err and "password" in err, err
        assert "\n" not in err and not drv.health().connected
    finally:
        await drv.close()


@MODULE_LOOP
async def test_untrusted_certificate_is_a_clear_error(secure_plant: OpcuaPlantServer, certs, tmp_path):
    creds = write_credentials(tmp_path, "heatctl", "s3cret-pool")
    drv = secure_driver(secure_plant, certs["stranger"], creds, server_cert=certs["server"][0])
    await drv.start()
    try:
        assert await all_lost(drv)
        err = drv.health().last_error
        assert "BadCertificateUntrusted" in err and str(certs["stranger"][0]) in err, err
        assert "trusted" in err
    finally:
        await drv.close()


@MODULE_LOOP
async def test_channel_refused_assertion_error_becomes_clear_error():
    # A strict server refuses OpenSecureChannel; asyncua itself only raises a bare AssertionError.
    fake = ChannelRejectingServer()
    await fake.start()
    drv = driver_for(fake.endpoint, PLANT_POINTS)
    await drv.start()
    try:
        assert await all_lost(drv)
        err = drv.health().last_error
        assert "refused" in err and "AssertionError" not in err, err
    finally:
        await drv.close()
        await fake.stop()


@MODULE_LOOP
async def test_missing_credentials_file_is_a_config_error(plant: OpcuaPlantServer, tmp_path):
    drv = driver_for(plant.endpoint, PLANT_POINTS, credentials_file=str(tmp_path / "nope.yaml"))
    await drv.start()
    try:
        assert await all_lost(drv)
        assert drv.health().last_error.startswith("config: credentials_file")
    finally:
        await drv.close()


def test_reading_type_is_the_projects():
    # Guard against a silent API drift: the driver returns controller.core.readings.Reading.
    assert datavalue_to_reading(None, "W", 1.0) == Reading.lost("W", 1.0, "no value yet")
