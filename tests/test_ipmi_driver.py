"""IPMI/DCMI driver against simulated BMCs speaking RMCP+ on 127.0.0.1 (free ports), plus ipmitool.

Real client and servers in one process (STYLE.md habit 9). Waits are on conditions, bounded by a
deadline: a reading turning good, never a sleep standing in for one.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import types

import pytest
from structlog.testing import capture_logs

import drivers.ipmi.driver as ipmi
from controller.site.models import PointConfig
from controller.core.readings import Quality
from drivers.base import DriverPoint, LinkState
from drivers.ipmi.driver import IpmiDriver, load_credentials, share_cap
from controller.site.ipmi_schema import BmcConfig, IpmiDriverConfig, IpmiPointSource
from simulations.wire.bmc import (CC_LIMIT_OUT_OF_RANGE, CC_NO_ACTIVE_LIMIT, CMD_ACTIVATE_POWER_LIMIT,
                                  CMD_GET_POWER_LIMIT, CMD_SET_POWER_LIMIT, SimBmc, start_bmcs,
                                  stop_bmcs)

USER, PASSWORD = "admin", "heatctl-sim"
# Short per-tick timeout keeps the fault tests quick; loopback answers take well under 10 ms.
TIMEOUT_S = 0.3


@pytest.fixture
def credentials(tmp_path):
    path = tmp_path / "bmc.yaml"
    path.write_text(f"username: {USER}\npassword: {PASSWORD}\n")
    return str(path)


@pytest.fixture
def bmcs():
    started = start_bmcs(3, USER, PASSWORD, power_w=[1200.0, 2300.0, 3400.0],
                         min_power_w=600, max_power_w=5000)
    yield started
    stop_bmcs(started)


def make_driver(bmcs: list[SimBmc], credentials: str, max_power_w=None, with_cap=True,
                timeout_s=TIMEOUT_S, min_read_interval_s=0.0, max_age_s=5.0) -> IpmiDriver:
    max_power_w = max_power_w or [5000.0] * len(bmcs)
    config = IpmiDriverConfig(
        kind="ipmi", credentials_file=credentials, timeout_s=timeout_s,
        min_read_interval_s=min_read_interval_s,
        bmcs=tuple(BmcConfig(name=b.name, host="127.0.0.1", port=b.port, max_power_w=m,
                             min_power_w=600) for b, m in zip(bmcs, max_power_w)))
    points = {f"{b.name}_power": DriverPoint(f"{b.name}_power",
                                             PointConfig(role="server_power", unit="W",
                                                         range=(0, 6000), max_age_s=max_age_s),
                                             IpmiPointSource(driver="bmcs", bmc=b.name))
              for b in bmcs}
    if with_cap:
        points["power_cap"] = DriverPoint("power_cap", PointConfig(role="power_cap", unit="W",
                                                                   range=(0, 40000)),
                                          IpmiPointSource(driver="bmcs"))
    return IpmiDriver("bmcs", config, points)


async def read_until(driver: IpmiDriver, good: list[str], deadline_s: float):
    """Read every tick until all `good` points are good, or fail after deadline_s."""
    end = time.monotonic() + deadline_s
    while True:
        readings = await driver.read()
        if all(readings[p].good for p in good):
            return readings
        if time.monotonic() > end:
            pytest.fail(f"not good within {deadline_s} s: "
                        f"{ {p: readings[p].reason for p in good if not readings[p].good} }")


async def test_reads_the_power_each_bmc_reports(bmcs, credentials):
    driver = make_driver(bmcs, credentials)
    try:
        readings = await read_until(driver, [f"{b.name}_power" for b in bmcs], 5)
        assert [readings[f"{b.name}_power"].value for b in bmcs] == [1200.0, 2300.0, 3400.0]
        assert readings["srv1_power"].unit == "W"
        # No limit active anywhere: the effective cap is every server's maximum.
        assert readings["power_cap"].value == 15000.0

        bmcs[1].power_w = 2750.4  # the plant moves; DCMI reports whole watts
        readings = await driver.read()
        assert readings["srv2_power"].value == 2750.0
        assert driver.health().connected
        assert driver.health().extra == {"bmcs_answering": 3.0, "bmcs_total": 3.0}
    finally:
        await driver.close()


async def test_site_cap_is_shared_by_max_power_and_read_back(bmcs, credentials):
    driver = make_driver(bmcs, credentials, max_power_w=[5000.0, 2500.0, 2500.0])
    try:
        await read_until(driver, ["power_cap"], 5)
        [result] = await driver.write({"power_cap": 6000.0})
        assert result.ok, result.reason
        assert [b.active_limit_w for b in bmcs] == [3000.0, 1500.0, 1500.0]
        assert result.readback == 6000.0
        readings = await driver.read()
        assert readings["power_cap"].value == 6000.0

        # Below the servers' floors (3 x 600 W): each share is clamped up, and the driver says so.
        [result] = await driver.write({"power_cap": 1000.0})
        assert result.ok
        assert [b.active_limit_w for b in bmcs] == [600.0, 600.0, 600.0]
        assert result.readback == 1800.0 and "minimum" in result.reason
    finally:
        await driver.close()


async def test_out_of_range_limit_is_refused_and_named(bmcs, credentials):
    bmcs[2].max_power_w = 3000  # this server's BMC accepts less than the config believes
    driver = make_driver(bmcs, credentials)
    try:
        [result] = await driver.write({"power_cap": 12000.0})  # 4000 W each
        assert not result.ok
        assert "srv3" in result.reason and "0x84" in result.reason
        assert "srv1" not in result.reason and "srv2" not in result.reason
        assert bmcs[0].active_limit_w == 4000.0 and bmcs[2].active_limit_w is None
        assert driver.health().writes_failed_total == 1
    finally:
        await driver.close()


async def test_silent_bmc_is_lost_within_the_timeout_others_read(bmcs, credentials):
    driver = make_driver(bmcs, credentials)
    try:
        await read_until(driver, ["srv1_power", "srv2_power", "srv3_power"], 5)
        bmcs[1].silent = True
        for _ in range(3):  # the first tick waits out the timeout, later ones answer at once
            start = time.monotonic()
            readings = await driver.read()
            assert time.monotonic() - start < TIMEOUT_S + 0.2
            assert readings["srv2_power"].quality is Quality.LOST
            assert readings["srv2_power"].value is None and readings["srv2_power"].reason
            assert readings["srv1_power"].value == 1200.0 and readings["srv1_power"].good
            assert readings["srv3_power"].value == 3400.0 and readings["srv3_power"].good
            assert readings["power_cap"].quality is Quality.LOST
            assert "srv2" in readings["power_cap"].reason
        health = driver.health()
        assert not health.connected and health.errors_total >= 3
        assert health.extra["bmcs_answering"] == 2.0
        # The operator's line says where, what and when the next try is (like Modbus and OPC-UA).
        assert "srv2 (127.0.0.1:" in health.last_error and "next try at the next read" in health.last_error
    finally:
        await driver.close()


async def test_recovers_when_the_bmc_answers_again_logging_once(bmcs, credentials):
    driver = make_driver(bmcs, credentials)
    try:
        await read_until(driver, ["srv2_power"], 5)
        with capture_logs() as logs:
            bmcs[1].silent = True
            for _ in range(3):
                assert not (await driver.read())["srv2_power"].good
            bmcs[1].silent = False
            bmcs[1].power_w = 1999
            readings = await read_until(driver, ["srv2_power", "power_cap"], 10)
            await driver.read()
        assert readings["srv2_power"].value == 1999.0
        events = [e["event"] for e in logs if e.get("bmc") == "srv2"]
        assert events == ["ipmi_bmc_not_answering", "ipmi_bmc_recovered"]
        assert driver.health().connected
    finally:
        await driver.close()


async def test_dead_session_is_logged_in_again(bmcs, credentials, monkeypatch):
    # Give up on an unanswered command quickly, so that the session is dropped while silent.
    monkeypatch.setattr(ipmi, "COMMAND_GIVE_UP_S", 0.5)
    monkeypatch.setattr(ipmi, "LOGIN_TIMEOUT_S", 0.5)
    driver = make_driver(bmcs, credentials, with_cap=False)
    try:
        await read_until(driver, ["srv3_power"], 5)
        bmcs[2].silent = True
        end = time.monotonic() + 10
        while "not connected" not in (await driver.read())["srv3_power"].reason:
            assert time.monotonic() < end, "session was never dropped"
        bmcs[2].silent = False
        await read_until(driver, ["srv3_power"], 10)
        assert driver.health().reconnects_total == 1
    finally:
        await driver.close()


@pytest.mark.skipif(shutil.which("ipmitool") is None,
                    reason="ipmitool is not installed (apt-get install ipmitool; CI installs it)")
def test_ipmitool_reads_the_watts_the_bmc_model_has():
    with SimBmc(USER, PASSWORD, power_w=4321.0, min_power_w=600, max_power_w=5000) as bmc:
        base = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(bmc.port),
                "-U", USER, "-P", PASSWORD, "-C", "3", "dcmi", "power"]
        out = subprocess.run([*base, "reading"], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        match = re.search(r"Instantaneous power reading:\s+(\d+)\s+Watts", out.stdout)
        assert match, out.stdout
        assert float(match.group(1)) == bmc.current_power_w() == 4321.0

        out = subprocess.run([*base, "get_limit"], capture_output=True, text=True, timeout=20)
        assert "No Active Power Limit" in out.stdout, out.stdout + out.stderr


def test_dcmi_power_limit_codes_without_sockets():
    bmc = SimBmc(USER, PASSWORD, min_power_w=600, max_power_w=5000)
    get = bytes([0xDC, 0, 0])
    assert bmc._dcmi(CMD_GET_POWER_LIMIT, get)[0] == CC_NO_ACTIVE_LIMIT
    too_high = bytes([0xDC, 0, 0, 0, 0x11]) + (6000).to_bytes(2, "little") + \
        (1000).to_bytes(4, "little") + bytes(2) + (1).to_bytes(2, "little")
    assert bmc._dcmi(CMD_SET_POWER_LIMIT, too_high)[0] == CC_LIMIT_OUT_OF_RANGE
    ok = too_high[:5] + (3000).to_bytes(2, "little") + too_high[7:]
    assert bmc._dcmi(CMD_SET_POWER_LIMIT, ok)[0] == 0
    assert bmc.active_limit_w is None  # set, not yet active
    assert bmc._dcmi(CMD_ACTIVATE_POWER_LIMIT, bytes([0xDC, 1, 0, 0]))[0] == 0
    code, data = bmc._dcmi(CMD_GET_POWER_LIMIT, get)
    assert code == 0 and int.from_bytes(data[4:6], "little") == 3000
    assert bmc.active_limit_w == 3000.0
    assert bmc._dcmi(CMD_ACTIVATE_POWER_LIMIT, bytes([0xDC, 0, 0, 0]))[0] == 0
    assert bmc.active_limit_w is None


@pytest.mark.parametrize("cap_w, maxima, minima, expected", [
    (6000, [5000, 2500, 2500], [600, 600, 600], [3000, 1500, 1500]),
    (1000, [5000, 5000], [600, 600], [600, 600]),          # floors win over the cap
    (50000, [5000, 5000], [600, 600], [5000, 5000]),       # ceilings
    (1000, [3000, 3000, 3000], [0, 0, 0], [333, 333, 333]),  # whole watts, rounded down
])
def test_share_cap(cap_w, maxima, minima, expected):
    bmcs = tuple(BmcConfig(name=f"s{i}", max_power_w=mx, min_power_w=mn)
                 for i, (mx, mn) in enumerate(zip(maxima, minima)))
    assert list(share_cap(cap_w, bmcs).values()) == expected


def test_credentials_file_must_hold_exactly_username_and_password(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("username: admin\npassword: x\nextra: 1\n")
    with pytest.raises(ValueError, match="username and password"):
        load_credentials(str(path))
    path.write_text("username: admin\npassword: x\n")
    assert load_credentials(str(path)) == ("admin", "x")


async def test_bmc_on_the_wrong_port_names_host_port_and_the_next_try(bmcs, credentials,
                                                                       monkeypatch):
    # Issue 15: a BMC configured on a port nobody answers on. The login gives up quickly here so
    # that the backoff starts within the test; the lines must name 127.0.0.1:<port> and the try.
    monkeypatch.setattr(ipmi, "LOGIN_TIMEOUT_S", 0.3)
    wrong = types.SimpleNamespace(name="srv9", port=free_udp_port())
    driver = make_driver([bmcs[0], wrong], credentials, with_cap=False)
    endpoint = f"127.0.0.1:{wrong.port}"
    try:
        end = time.monotonic() + 10
        while True:
            readings = await driver.read()
            reason = readings["srv9_power"].reason
            if "next try in" in reason:
                break
            assert time.monotonic() < end, reason
        assert readings["srv9_power"].quality is Quality.LOST and endpoint in reason
        assert readings["srv1_power"].good
        health = driver.health()
        assert health.state is LinkState.DEGRADED and 0 < health.next_try_in_s <= 30
        assert endpoint in health.last_error and "srv9" in health.last_error
    finally:
        await driver.close()
    assert driver.health().state is LinkState.CLOSED


def free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unchanged_cap_is_not_resent_until_a_read_shows_it_lost(bmcs, credentials):
    driver = make_driver(bmcs, credentials, max_power_w=[5000.0, 2500.0, 2500.0])
    try:
        await read_until(driver, ["power_cap"], 5)
        [result] = await driver.write({"power_cap": 6000.0})
        assert result.ok and [b.active_limit_w for b in bmcs] == [3000.0, 1500.0, 1500.0]
        # Behind the driver's back: srv1's limit changed, srv2's deactivated (a BMC reset).
        with bmcs[0]._lock:
            bmcs[0]._limit_w = 4000
        with bmcs[1]._lock:
            bmcs[1]._limit_active = False
        [result] = await driver.write({"power_cap": 6000.0})
        assert result.ok and result.readback == 6000.0
        assert [b.active_limit_w for b in bmcs] == [4000.0, None, 1500.0]  # nothing was sent
        readings = await driver.read()  # the read shows both: they are sent again next write
        assert readings["power_cap"].value == 4000.0 + 2500.0 + 1500.0
        [result] = await driver.write({"power_cap": 6000.0})
        assert result.ok and [b.active_limit_w for b in bmcs] == [3000.0, 1500.0, 1500.0]
        # A changed share is always sent.
        [result] = await driver.write({"power_cap": 8000.0})
        assert result.ok and [b.active_limit_w for b in bmcs] == [4000.0, 2000.0, 2000.0]
    finally:
        await driver.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_each_bmc_keeps_read_interval_spread_out_and_readings_keep_their_time(
        bmcs, credentials):
    clock = FakeClock()
    assert make_driver(bmcs, credentials).min_read_interval_s == 0.0  # the default: every read asks
    interval = 0.9
    driver = make_driver(bmcs, credentials, with_cap=True, min_read_interval_s=interval)
    assert driver.min_read_interval_s == interval
    driver.clock = clock
    for link in driver._links.values():
        link._clock = clock
    try:
        first = await read_until(driver, ["srv1_power", "srv2_power", "srv3_power", "power_cap"], 5)
        assert {first[p].ts for p in first} == {1000.0}
        bmcs[0].power_w = 999.0
        clock.now += 0.1  # a 100 ms tick later: nobody is due yet, nothing is asked
        again = await driver.read()
        assert again["srv1_power"].value == 1200.0 and again["srv1_power"].ts == 1000.0
        # Spread over the interval: srv1 is due after a third of it, srv3 only after all of it.
        clock.now = 1000.0 + interval / 3 + 0.01
        r = await driver.read()
        assert r["srv1_power"].value == 999.0 and r["srv1_power"].ts == clock.now
        assert r["srv3_power"].ts == 1000.0 and r["power_cap"].ts == 1000.0
        clock.now = 1000.0 + interval + 0.01
        r = await driver.read()
        assert {r[p].ts for p in r} == {clock.now} | {r["srv1_power"].ts}
        # A BMC that fails is asked again at every read, not after the interval.
        bmcs[1].silent = True
        clock.now += interval + 0.01
        r = await driver.read()
        assert r["srv2_power"].quality is Quality.LOST
        bmcs[1].silent = False
        clock.now += 0.1
        r = await driver.read()
        end = time.monotonic() + 10
        while not r["srv2_power"].good:  # its worker retransmits until the BMC answers again
            assert time.monotonic() < end, r["srv2_power"].reason
            await asyncio.sleep(0.05)  # poll interval: lets the worker's answer reach the loop
            r = await driver.read()
    finally:
        await driver.close()


async def test_the_driver_listens_on_loopback_only_for_bmcs_on_loopback(bmcs, credentials):
    """pyghmi binds its client socket to every address ([::], port open on every interface): for
    BMCs on 127.0.0.1 the driver's sessions get a socket bound to loopback instead. Every UDP
    socket this process holds, after reading through the driver, is bound to a loopback address."""
    import ipaddress
    import os

    from tests.engines import bound_sockets

    driver = make_driver(bmcs, credentials)
    try:
        await read_until(driver, [f"{b.name}_power" for b in bmcs], 5)
    finally:
        await driver.close()
    udp = {(addr, port) for proto, addr, port in bound_sockets([os.getpid()]) if proto == "udp"}
    assert len(udp) > len(bmcs)  # the simulated BMCs' sockets and the driver's
    for addr, port in udp:
        ip = ipaddress.ip_address(addr)
        mapped = getattr(ip, "ipv4_mapped", None)
        assert (mapped or ip).is_loopback, f"UDP port {port} bound to {addr}"


@pytest.mark.parametrize("host, version", [
    ("127.0.0.1", 4), ("127.0.0.5", 4), ("::1", 6), ("10.0.0.5", None), ("bmc1.example", None),
    ("0.0.0.0", None)])
def test_which_bmc_hosts_get_a_loopback_socket(host, version):
    from drivers.ipmi.client_socket import loopback_version
    assert loopback_version(host) == version


_AFTER_A_LONE_BMC = """
import asyncio, sys, tempfile
sys.path.insert(0, ".")
from tests.test_ipmi_driver import PASSWORD, USER, make_driver, read_until
from simulations.wire.bmc import SimBmc, start_bmcs, stop_bmcs
with SimBmc(USER, PASSWORD, power_w=100.0):
    pass  # its socket was pyghmi's only one: stopping it emptied the I/O thread's list
bmcs = start_bmcs(2, USER, PASSWORD, power_w=[1200.0, 2300.0], max_power_w=5000)
path = tempfile.mktemp()
open(path, "w").write(f"username: {USER}\\npassword: {PASSWORD}\\n")
async def main():
    driver = make_driver(bmcs, path)
    try:
        readings = await read_until(driver, ["srv1_power", "srv2_power"], 5)
        print(readings["srv1_power"].value, readings["srv2_power"].value)
    finally:
        await driver.close()
asyncio.run(main())
stop_bmcs(bmcs)
"""


def test_a_driver_reads_in_a_process_where_a_lone_simulated_bmc_came_and_went():
    """In a fresh process (pyghmi's I/O state is per process): a SimBmc started and stopped
    before any client left pyghmi's I/O thread selecting on no socket for 300 s, and every BMC
    after it timed out; the simulated BMCs now keep one loopback socket in that list for good."""
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", _AFTER_A_LONE_BMC], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1200.0", "2300.0"]


def test_read_interval_is_held_to_half_the_points_max_age(bmcs, credentials):
    """A configured interval longer than the readings may age would serve stale answers between
    asks (and trip sensor_lost on a BMC that answers): the driver holds it to half max_age_s."""
    driver = make_driver(bmcs, credentials, min_read_interval_s=10.0, max_age_s=3.0)
    assert driver.min_read_interval_s == 1.5


def test_read_interval_must_not_be_negative():
    import pydantic
    with pytest.raises(pydantic.ValidationError, match="min_read_interval_s"):
        IpmiDriverConfig(kind="ipmi", credentials_file="x", bmcs=(), min_read_interval_s=-1)
