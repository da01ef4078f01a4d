"""DaemonMetrics on the real controller: values in base units, bounded labels, counters that only go
up, and the /metrics endpoint (exact bind, basic auth, TLS), checked by promtool where installed.

The controller runs in process on the reference config for a few ticks (a fake clock: `now` is the
tick number); each result goes to DaemonMetrics as the daemon would hand it over.
"""

from __future__ import annotations

import base64
import math
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.daemon.metrics import QUALITIES, DaemonMetrics, quality_of
from controller.core.metering import EnergyCounters
from controller.core.readings import Quality
from controller.core.requests import TripTestRequest
from drivers.base import DriverHealth
from tests.step_helpers import make_controller, snap

# Heat meters and submeters on top of step_helpers.GOOD, so that the energies integrate.
METERED = dict(consumer_heat=30000.0, dump_heat=0.0, boiler_heat=0.0, aux_power=800.0)
DRIVERS = ("bms_modbus", "bms_opcua", "bmcs")


class Plant:
    """The real controller, ticked on a fake clock, feeding one DaemonMetrics."""

    def __init__(self, energy: EnergyCounters | None = None):
        self.ctrl = make_controller()
        self.site = self.ctrl.site
        self.metrics = DaemonMetrics(self.site)
        self.state = self.ctrl.initial_state(0.0, energy)
        self.t = 0.0
        self.health = {n: DriverHealth(name=n, kind=self.site.drivers[n].kind, connected=True) for n in DRIVERS}
        self.last = None

    def tick(self, requests=(), duration_s: float = 0.004, overrun: bool = False, **over):
        res = self.ctrl.step(self.state, snap(self.site, self.t, **{**METERED, **over}), list(requests), self.t)
        self.metrics.observe_tick(res, self.health, duration_s, overrun)
        self.state, self.last = res.state, res
        self.t += 1.0
        return res

    def ticks(self, n: int, **over):
        for _ in range(n):
            self.tick(**over)

    def samples(self) -> dict[tuple[str, frozenset], float]:
        return parse(generate_latest(self.metrics.registry).decode())


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(port: int, auth: tuple[str, str] | None = None, host: str = "127.0.0.1") -> str:
    req = urllib.request.Request(f"http://{host}:{port}/metrics")
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture
def plant():
    return Plant()


@pytest.fixture
def served(plant):
    stop = plant.metrics.serve("127.0.0.1", 0)
    yield plant, stop.port
    stop()


# --- values --------------------------------------------------------------------------------------

def test_before_the_first_tick_every_series_exists_and_the_mode_is_safe_degrade(plant):
    s = plant.samples()
    assert val(s, "heatctl_mode", heatctl_mode="safe_degrade") == 1
    assert val(s, "heatctl_mode", heatctl_mode="normal") == 0
    assert math.isnan(val(s, "heatctl_point_celsius", point="it_supply_temp"))
    assert val(s, "heatctl_point_quality", point="it_supply_temp", quality="missing") == 1
    for trip in plant.site.trips:
        assert val(s, "heatctl_trip_latched", trip=trip) == 0
    # The energies appear with the first tick, at the restored totals (never 0 then a jump).
    assert not any(name.startswith("heatctl_energy_joules") for name, _ in s)


def test_values_after_a_few_ticks_in_base_units(served):
    plant, port = served
    plant.ticks(5)
    s = parse(scrape(port))
    assert plant.state.mode.value == "normal"
    assert val(s, "heatctl_mode", heatctl_mode="normal") == 1
    assert val(s, "heatctl_mode", heatctl_mode="safe_degrade") == 0
    assert val(s, "heatctl_mode_held") == 0
    assert val(s, "heatctl_started") == 1
    # degC -> _celsius, m3/h -> m3/s, W -> _watts, bool -> 0/1
    assert val(s, "heatctl_point_celsius", point="it_supply_temp") == 35.0
    assert val(s, "heatctl_point_cubic_meters_per_second", point="it_flow") == pytest.approx(3.0 / 3600)
    assert val(s, "heatctl_point_watts", point="srv1_power") == 4000.0
    assert val(s, "heatctl_point_pascals", point="loop_pressure") == pytest.approx(2.0e5)
    assert val(s, "heatctl_point_bool", point="consumer_available") == 1.0
    assert val(s, "heatctl_point_good", point="it_flow") == 1
    assert val(s, "heatctl_point_quality", point="it_flow", quality="good") == 1
    assert sum(val(s, "heatctl_point_quality", point="it_flow", quality=q) for q in QUALITIES) == 1
    assert val(s, "heatctl_point_info", point="p1_speed", unit="pct", base_unit="ratio", kind="actuator",
               role="p1_speed", critical="false") == 1
    # Outputs: pct -> ratio 0..1, who drives them.
    p2 = plant.last.commands["p2_speed"]
    assert val(s, "heatctl_output_value", point="p2_speed") == pytest.approx(p2.value / 100)
    assert val(s, "heatctl_output_driver", point="p2_speed", driver="auto") == 1
    assert val(s, "heatctl_output_driver", point="p2_speed", driver="trip") == 0
    assert val(s, "heatctl_output_value", point="power_cap") == plant.last.commands["power_cap"].value
    # Loops: the output side in the output's base unit.
    lr = plant.last.loops["it_delta_t"]
    assert val(s, "heatctl_loop_output", loop="it_delta_t") == pytest.approx(lr.output / 100)
    assert val(s, "heatctl_loop_setpoint", loop="it_delta_t") == lr.setpoint
    assert val(s, "heatctl_loop_measurement", loop="it_delta_t") == pytest.approx(8.0)
    for term in ("proportional", "integral", "derivative"):
        assert math.isfinite(val(s, f"heatctl_loop_{term}", loop="power_cap"))
    # Flows and energies.
    assert val(s, "heatctl_it_power_watts") == 32000.0
    assert val(s, "heatctl_aux_power_watts") == 800.0
    assert val(s, "heatctl_heat_flow_watts", flow="delivered") == 30000.0
    assert plant.last.flows.tank_soc > 0
    assert val(s, "heatctl_tank_state_of_charge_ratio") == pytest.approx(plant.last.flows.tank_soc)
    e = plant.state.energy
    assert val(s, "heatctl_energy_joules_total", kind="it") == e.it_j > 0
    assert val(s, "heatctl_energy_joules_total", kind="delivered") == e.delivered_j > 0
    assert val(s, "heatctl_erf_ratio") == pytest.approx(e.erf)
    # Ticks, drivers, heartbeat, build.
    assert val(s, "heatctl_ticks_total") == 5
    assert val(s, "heatctl_tick_duration_seconds_count") == 5
    assert val(s, "heatctl_tick_duration_seconds_bucket", le="0.005") == 5
    assert val(s, "heatctl_heartbeat") == plant.state.heartbeat
    for d in DRIVERS:
        assert val(s, "heatctl_driver_up", driver=d) == 1
        assert val(s, "heatctl_driver_errors_total", driver=d) == 0
    assert val(s, "heatctl_build_info", version="0.1.0", python_version=__import__("platform").python_version(),
               site="reference-pool", policy="compute_first") == 1


def test_a_trip_test_latches_the_trip_and_drives_its_actuators(plant):
    plant.ticks(3)
    plant.tick([TripTestRequest(reason="commissioning", user="ops", trip="it_overtemp")])
    s = plant.samples()
    assert val(s, "heatctl_trip_latched", trip="it_overtemp") == 1
    assert val(s, "heatctl_trip_latched", trip="leak") == 0
    assert val(s, "heatctl_output_driver", point="power_cap", driver="trip") == 1
    assert val(s, "heatctl_output_driver", point="power_cap", driver="auto") == 0
    assert val(s, "heatctl_output_value", point="power_cap") == 5000.0
    assert val(s, "heatctl_output_value", point="p1_speed") == 1.0  # 100 % as a ratio
    assert val(s, "heatctl_events_total", kind="trip") == 1
    assert val(s, "heatctl_events_total", kind="trip_test") == 1
    plant.tick()
    s = plant.samples()
    assert val(s, "heatctl_mode", heatctl_mode="safe_degrade") == 1
    assert val(s, "heatctl_trip_latched", trip="it_overtemp") == 1
    assert val(s, "heatctl_trip_active", trip="it_overtemp") == 0  # a test: the condition is not there
    assert val(s, "heatctl_safe_degrade_causes") >= 1


def test_a_bad_reading_is_nan_with_its_quality_class(plant):
    plant.ticks(2)
    plant.tick(drop=("ambient_temp",), bad={"b_flow": Quality.LOST}, tank_top_temp=200.0)
    s = plant.samples()
    assert math.isnan(val(s, "heatctl_point_celsius", point="ambient_temp"))
    assert val(s, "heatctl_point_quality", point="ambient_temp", quality="missing") == 1
    assert val(s, "heatctl_point_good", point="b_flow") == 0
    assert val(s, "heatctl_point_quality", point="b_flow", quality="lost") == 1
    assert val(s, "heatctl_point_quality", point="tank_top_temp", quality="out_of_range") == 1
    assert val(s, "heatctl_point_quality", point="tank_top_temp", quality="good") == 0
    assert math.isnan(val(s, "heatctl_tank_state_of_charge_ratio"))
    assert math.isnan(val(s, "heatctl_heat_flow_watts", flow="transferred"))


@pytest.mark.parametrize("good, reason, expected", [
    (True, "", "good"), (False, "missing", "missing"), (False, "timeout", "lost"),
    (False, "uncertain: sensor in check", "uncertain"), (False, "stale (6.0 s old, max 3 s)", "stale"),
    (False, "frozen (unchanged for 600 s)", "frozen"), (False, "rate (3.00/s > 2/s)", "rate"),
    (False, "out_of_range (200 not in [0, 95])", "out_of_range"), (False, "nan", "nan"),
    (False, "bad: opc-ua BadSensorFailure", "bad"),
])
def test_quality_classes_are_a_fixed_set(good, reason, expected):
    assert quality_of(good, reason) == expected
    assert expected in QUALITIES


# --- counters ------------------------------------------------------------------------------------

def test_energy_counters_only_go_up(served):
    plant, port = served
    kinds = ("it", "captured", "transferred", "delivered", "dumped", "boiler", "aux")
    seen = []
    for _ in range(4):
        plant.ticks(2)
        s = parse(scrape(port))
        seen.append({k: val(s, "heatctl_energy_joules_total", kind=k) for k in kinds})
    for a, b in zip(seen, seen[1:]):
        assert all(b[k] >= a[k] for k in kinds)
        assert b["it"] > a["it"]
    # A total that goes backwards (an older state restored) never takes the counter down; what is
    # added after it still counts.
    before = seen[-1]["it"]
    older = replace(plant.state, energy=replace(plant.state.energy, it_j=plant.state.energy.it_j - 1e6))
    plant.state = older
    plant.tick()
    s = parse(scrape(port))
    assert val(s, "heatctl_energy_joules_total", kind="it") == before
    plant.tick()
    s = parse(scrape(port))
    assert val(s, "heatctl_energy_joules_total", kind="it") == pytest.approx(before + 32000.0)


def test_after_a_restart_the_energy_counters_start_at_the_restored_totals():
    restored = EnergyCounters(it_j=3.6e12, delivered_j=2.0e12, aux_j=1.0e11, metered_s=1e8)
    plant = Plant(energy=restored)
    plant.tick()  # not started yet: the step does not integrate this tick
    s = plant.samples()
    assert val(s, "heatctl_energy_joules_total", kind="it") == 3.6e12
    assert val(s, "heatctl_energy_metered_seconds_total") == 1e8
    assert val(s, "heatctl_erf_ratio") == pytest.approx(2.0e12 / 3.7e12)


def test_driver_counters_mirror_driver_health_and_never_go_down(plant):
    plant.tick()
    h = plant.health["bmcs"]
    h.errors_total, h.reconnects_total, h.writes_failed_total, h.requests_total = 3, 1, 2, 40
    h.connected = False
    plant.tick()
    s = plant.samples()
    assert val(s, "heatctl_driver_up", driver="bmcs") == 0
    assert val(s, "heatctl_driver_errors_total", driver="bmcs") == 3
    assert val(s, "heatctl_driver_reconnects_total", driver="bmcs") == 1
    assert val(s, "heatctl_driver_write_failures_total", driver="bmcs") == 2
    assert val(s, "heatctl_driver_requests_total", driver="bmcs") == 40
    assert val(s, "heatctl_driver_info", driver="bmcs", kind="ipmi") == 1
    # A rebuilt driver (after a reload) starts its totals again at 0.
    plant.health["bmcs"] = DriverHealth(name="bmcs", kind="ipmi", connected=True, errors_total=1)
    plant.tick()
    s = plant.samples()
    assert val(s, "heatctl_driver_errors_total", driver="bmcs") == 3
    plant.health["bmcs"].errors_total = 2
    plant.tick()
    assert val(plant.samples(), "heatctl_driver_errors_total", driver="bmcs") == 4


def test_ticks_overruns_and_reloads(plant):
    plant.tick(duration_s=0.02)
    plant.tick(duration_s=1.3, overrun=True)
    plant.metrics.observe_config_reload(True)
    plant.metrics.observe_config_reload(False)
    s = plant.samples()
    assert val(s, "heatctl_tick_overruns_total") == 1
    assert val(s, "heatctl_tick_duration_seconds_bucket", le="0.025") == 1
    assert val(s, "heatctl_tick_duration_seconds_bucket", le="1.5") == 2
    assert val(s, "heatctl_config_reloads_total", result="ok") == 1
    assert val(s, "heatctl_config_reloads_total", result="refused") == 1
    assert val(s, "heatctl_config_last_reload_successful") == 0


# --- bounded labels ------------------------------------------------------------------------------

def test_labels_come_only_from_the_config_and_fixed_enums(plant):
    plant.tick()
    first = set(plant.samples())
    # Unknown drivers and events from the future do not add series.
    plant.health["not_in_config"] = DriverHealth(name="not_in_config", kind="modbus", errors_total=5)
    plant.ticks(3)
    plant.tick([TripTestRequest(reason="t", trip="leak")])
    plant.tick(drop=("ambient_temp",), bad={"it_flow": Quality.LOST})
    plant.metrics.observe_config_reload(False)
    later = set(plant.samples())
    assert later == first
    site = plant.site
    allowed = {"point": set(site.points), "trip": set(site.trips), "driver": set(site.drivers),
               "loop": {"it_delta_t", "consumer_supply", "dump", "power_cap"}}
    for name, labels in later:
        for k, v in labels:
            if k in allowed and name != "heatctl_output_driver":
                assert v in allowed[k], (name, k, v)


# --- exposition and the endpoint -----------------------------------------------------------------

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install --no-install-recommends prometheus)")
def test_promtool_accepts_the_exposition(served):
    plant, port = served
    texts = [scrape(port)]  # before the first tick
    plant.ticks(3)
    plant.tick([TripTestRequest(reason="commissioning", trip="it_overtemp")])
    plant.tick(bad={"it_flow": Quality.LOST})
    texts.append(scrape(port))
    for text in texts:
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr


def test_basic_auth_refuses_without_the_right_credentials(plant):
    stop = plant.metrics.serve("127.0.0.1", 0, basic_auth=("prometheus", "s3cret"))
    try:
        plant.tick()
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(stop.port)
        assert err.value.code == 401
        assert err.value.headers["WWW-Authenticate"].startswith("Basic")
        for wrong in (("prometheus", "nope"), ("someone", "s3cret"), ("prometheus", "")):
            with pytest.raises(urllib.error.HTTPError) as err:
                scrape(stop.port, auth=wrong)
            assert err.value.code == 401
        assert "heatctl_mode" in scrape(stop.port, auth=("prometheus", "s3cret"))
    finally:
        stop()


def test_basic_auth_without_tls_is_refused_on_a_non_loopback_bind(plant):
    with pytest.raises(ValueError, match="in clear"):
        plant.metrics.serve("0.0.0.0", 0, basic_auth=("prometheus", "s3cret"))
    with pytest.raises(ValueError, match="both"):
        plant.metrics.serve("127.0.0.1", 0, tls_cert="/nonexistent.pem")


def test_binds_exactly_the_host_given(served):
    _, port = served
    assert "heatctl_mode" in scrape(port)
    # 127.0.0.2 is loopback too: a server on 0.0.0.0 would answer there, one on 127.0.0.1 does not.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", port), timeout=2).close()


def test_stop_frees_the_port_and_is_idempotent(plant):
    stop = plant.metrics.serve("127.0.0.1", 0)
    port = stop.port
    stop()
    stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = plant.metrics.serve("127.0.0.1", port)
    again()


def _self_signed(tmp_path):
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


def test_tls_with_basic_auth(plant, tmp_path):
    cert, key = _self_signed(tmp_path)
    stop = plant.metrics.serve("127.0.0.1", 0, tls_cert=cert, tls_key=key, basic_auth=("prom", "pw"))
    try:
        plant.tick()
        ctx = ssl.create_default_context(cafile=cert)
        token = base64.b64encode(b"prom:pw").decode()
        req = urllib.request.Request(f"https://127.0.0.1:{stop.port}/metrics",
                                     headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            assert "heatctl_mode" in resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"https://127.0.0.1:{stop.port}/metrics", context=ctx, timeout=5)
        assert err.value.code == 401
        # Plain HTTP to the TLS port gets no metrics.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            scrape(stop.port, auth=("prom", "pw"))
    finally:
        stop()


def test_own_registry_by_default_and_a_given_one_is_used(plant):
    from prometheus_client import REGISTRY
    assert plant.metrics.registry is not REGISTRY
    assert REGISTRY.get_sample_value("heatctl_ticks_total") is None
    reg = CollectorRegistry()
    m = DaemonMetrics(plant.site, registry=reg)
    assert m.registry is reg
    assert reg.get_sample_value("heatctl_mode", {"heatctl_mode": "safe_degrade"}) == 1
