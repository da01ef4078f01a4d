"""The simulated plant on the wire: the plant model in real time, served exactly as a site serves it.

`SimPlant(loaded)` runs `simulations.plant.model.Plant` in real time (an asyncio task advances it every
`step_s` by the elapsed time of `clock`, times `speed`) and serves every configured point on
127.0.0.1:

- Modbus points of each `kind: modbus` driver from a ModbusPlantServer on that driver's port;
- OPC-UA points of each `kind: opcua` driver from an OpcuaPlantServer on its endpoint's port;
- each BMC of each `kind: ipmi` driver as a SimBmc on its port: Get Power Reading reports its
  server's power from the plant; its active DCMI limit feeds the plant's power cap, which is the
  sum of the BMCs' limits (a BMC without an active limit counts its max_power_w), or unlimited
  when no BMC has one.

Client writes (pumps, valve, fan, boiler enable, heartbeat) reach the plant's Actuators at once
through PlantBinding. The plant's own BMS fallback (boiler on, dump open when the heartbeat has not
changed for `simulation.heartbeat_timeout_s`) runs on the plant's time.

Ports: from the config's driver entries unless overridden (`ports={"bms_modbus": 0, "srv1": 0}`:
keys are driver names or BMC names; 0 = a free port; `free_ports=True` sets them all to 0).
`write_config(path)` writes a copy of the site config that points at the ports actually served.

Loads come from a profile (default: the winter pool day of simulations.scenarios.definitions, 85 % IT load),
indexed by time of day: `start_time_of_day_s` (default: the local time at start) plus the simulated
time elapsed. `set_load(...)` overrides any of its four quantities at run time.

Control interface: JSON lines over TCP on 127.0.0.1:`control_port` (0 = a free port). Each request
is one JSON object on one line, each answer one line, `{"ok": true, ...}` or
`{"ok": false, "error": "..."}`:

    {"op": "state"}                                   true plant state, faults, silences, loads
    {"op": "ports"}                                   the ports served
    {"op": "inject", "kind": "leak", "target": "rack"}
    {"op": "inject", "kind": "sensor_nan", "target": "it_supply_c"}
    {"op": "inject", "kind": "silent", "target": "bms_modbus"}   (or "modbus", "opcua", "srv3", ...)
    {"op": "inject", "kind": "ignore_writes", "target": "heartbeat"}   (a Modbus actuator point: its
                                                      register acknowledges writes and keeps its value)
    {"op": "inject", "kind": "bms_fallback"}          (the BMS runs on its fallback until cleared)
    {"op": "clear", "kind": "leak"}                   ("kind": "all" clears every fault and silence)
    {"op": "set_load", "it_load": 0.5, "demand_w": 20000, "available": true, "ambient_c": 5}
                                                      (null: follow the profile again)
    {"op": "set_profile", "name": "summer-day"}

`SimPlantClient` (async) and `control_request` (blocking) speak it; so does
`python -m simulations.wire.sim_plant --port N state|inject KIND [TARGET [VALUE]]|clear KIND [TARGET]|
load KEY=VALUE...|profile NAME`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as _dt
import json
import math
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import structlog
import yaml

from controller.site.loader import LoadedConfig
from controller.site.roles import Role
from drivers.ipmi.driver import load_credentials as load_ipmi_credentials
from drivers.opcua.driver import load_credentials as load_opcua_credentials
from drivers.registry import driver_config, driver_points
from simulations.plant import faults as F
from simulations.plant.faults import Fault
from simulations.plant.loop import PlantLoop, plant_config_of
from simulations.plant.model import Actuators, Loads, Measurements
from simulations.scenarios.definitions import SCENARIOS, Scenario
from simulations.wire.bmc import SimBmc, anchor_pyghmi_io, stop_bmcs
from simulations.wire.modbus_server import ModbusPlantServer
from simulations.wire.opcua_server import OpcuaPlantServer

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"
# Plant step period (real seconds). 0.2 s: readings move smoothly at a 1 s control tick and the
# heartbeat's timeout is judged to 0.2 s; the model takes ~0.1 ms per step.
DEFAULT_STEP_S = 0.2
DEFAULT_PROFILE = "winter-day"
# "Unlimited" power cap (W) while no BMC has an active limit: far above any server's power.
UNLIMITED_CAP_W = 1e9
# Where clients expect the OPC-UA server (OpcuaPlantServer's endpoint path).
SILENT = "silent"
# A wire fault: the Modbus register of an actuator point acknowledges writes and keeps its value
# (a read-only mapping in the BMS, a PLC program that overwrites it): writes do not read back.
IGNORE_WRITES = "ignore_writes"
ALL = "all"
_LOAD_KEYS = ("it_load", "demand_w", "available", "ambient_c")


def json_safe(value: Any) -> Any:
    """Measurements as JSON: NaN and inf as null, tuples as lists, enums as values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return value


def _time_of_day_s() -> float:
    now = _dt.datetime.now()
    return now.hour * 3600.0 + now.minute * 60.0 + now.second + now.microsecond / 1e6


@dataclasses.dataclass
class LoadOverride:
    """Run-time overrides of the profile's loads; None follows the profile."""

    it_load: float | None = None
    demand_w: float | None = None
    available: bool | None = None
    ambient_c: float | None = None


class SimPlant:
    """The plant model in real time behind real Modbus, OPC-UA and IPMI servers (module docstring).

    Use as `async with SimPlant(loaded, free_ports=True) as sim:`. `clock` is the time base of the
    plant's steps (tests may pass their own and call `step()` with `autostep=False`).
    """

    def __init__(self, loaded: LoadedConfig, *, ports: Mapping[str, int] | None = None,
                 free_ports: bool = False, control_port: int | None = 0, speed: float = 1.0,
                 step_s: float = DEFAULT_STEP_S, clock: Callable[[], float] = time.monotonic,
                 profile: Scenario | str = DEFAULT_PROFILE, start_time_of_day_s: float | None = None,
                 autostep: bool = True, host: str = HOST):
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.loaded = loaded
        self.site = loaded.site
        self.host = host
        self.speed = float(speed)
        self.step_s = float(step_s)
        self.clock = clock
        self.autostep = autostep
        self._control_port_req = control_port
        self.profile = self._profile(profile)
        self.start_time_of_day_s = (_time_of_day_s() if start_time_of_day_s is None
                                    else float(start_time_of_day_s))
        self.override = LoadOverride()
        # The one plant loop (simulations.plant.loop), shared with the closed loop and the daemon
        # on simulated time; its time is the wall clock's here.
        self.loop = PlantLoop(self.site, plant_config_of(self.site), 0.0)
        self.binding, self.plant, self.rates = self.loop.binding, self.loop.plant, self.loop.rates
        # Commands as written by clients (point -> value), starting from the plant's defaults.
        self._commanded: dict[str, float] = self.binding.actuator_values(Actuators())
        overrides = dict(ports or {})

        self.modbus: dict[str, ModbusPlantServer] = {}
        self.opcua: dict[str, OpcuaPlantServer] = {}
        self.bmcs: dict[str, SimBmc] = {}          # BMC name -> simulated BMC
        self._bmc_driver: dict[str, str] = {}      # BMC name -> its ipmi driver's name
        self._bmc_max_w: dict[str, float] = {}
        known = set(self.site.drivers)
        for name, raw in self.site.drivers.items():
            cfg = driver_config(loaded, name)
            points = driver_points(loaded, name)
            if raw.kind == "modbus":
                port = 0 if free_ports else overrides.get(name, cfg.port)
                self.modbus[name] = ModbusPlantServer(points, host, port)
            elif raw.kind == "opcua":
                port = 0 if free_ports else overrides.get(name, urlsplit(cfg.endpoint).port or 4840)
                if cfg.security_mode != "None":
                    raise ValueError(f"driver {name}: the simulated BMS serves OPC-UA with "
                                     f"security None only, not {cfg.security_mode}")
                user = password = None
                if cfg.credentials_file:
                    user, password = load_opcua_credentials(cfg.credentials_file)
                self.opcua[name] = OpcuaPlantServer(
                    points, host, port, username=user, password=password,
                    initial_values={p: v for p, v in self._commanded.items() if p in points})
            elif raw.kind == "ipmi":
                user, password = load_ipmi_credentials(cfg.credentials_file)
                for b in cfg.bmcs:
                    if b.name in self.bmcs:
                        raise ValueError(f"BMC name {b.name!r} is used by two ipmi drivers")
                    known.add(b.name)
                    port = 0 if free_ports else overrides.get(b.name, b.port)
                    self.bmcs[b.name] = SimBmc(
                        user, password, name=b.name, host=host, port=port,
                        min_power_w=b.min_power_w, max_power_w=b.max_power_w,
                        power_source=self._power_source(b.name))
                    self._bmc_driver[b.name] = name
                    self._bmc_max_w[b.name] = b.max_power_w
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"port overrides for unknown drivers or BMCs: {sorted(unknown)}")
        for server in self.modbus.values():
            server.on_write = self._on_write
        for server in self.opcua.values():
            server.on_write = self._on_write

        # Which plant server each BMC reports: the i-th server_power point's BMC is server i; BMCs
        # without a point take the remaining servers in config order.
        self._bmc_server: dict[str, int] = {}
        for i, pname in enumerate(self.binding.servers):
            bmc = getattr(self.loaded.sources.get(pname), "bmc", None)
            if bmc in self.bmcs and bmc not in self._bmc_server:
                self._bmc_server[bmc] = i
        free = iter(i for i in range(plant_config_of(self.site).servers)
                    if i not in self._bmc_server.values())
        for bmc in self.bmcs:
            if bmc not in self._bmc_server:
                self._bmc_server[bmc] = next(free, -1)
        self._bmc_power: dict[str, float] = {b: 0.0 for b in self.bmcs}

        self._cap_w = UNLIMITED_CAP_W
        self._published_opcua: dict[tuple[str, str], tuple[float | None, str]] = {}
        self._unencodable: set[str] = set()
        self._last_step: float | None = None
        self._task: asyncio.Task | None = None
        self._control: asyncio.base_events.Server | None = None
        self.control_port: int | None = None
        self._started = False
        self.steps = 0

    # --- set-up -------------------------------------------------------------------------------

    @staticmethod
    def _profile(profile: Scenario | str) -> Scenario:
        if isinstance(profile, Scenario):
            return profile
        if profile not in SCENARIOS:
            raise ValueError(f"unknown profile {profile!r}; one of {', '.join(SCENARIOS)}")
        return SCENARIOS[profile]

    def _power_source(self, bmc: str) -> Callable[[], float]:
        # Called from the BMC pump thread: reads a float the event loop keeps current.
        return lambda: self._bmc_power.get(bmc, 0.0)

    async def start(self) -> "SimPlant":
        if self._started:
            return self
        self._started = True
        try:
            self._apply_commands()
            values = self._point_values()
            self._publish_modbus({**self._commanded, **values})
            for server in self.modbus.values():
                await server.start()
            for server in self.opcua.values():
                await server.start()
            await self._publish_opcua(values)
            if self.bmcs:
                anchor_pyghmi_io()
            for bmc in self.bmcs.values():
                bmc.start()
            if self._control_port_req is not None:
                self._control = await asyncio.start_server(
                    self._serve_client, self.host, self._control_port_req)
                self.control_port = self._control.sockets[0].getsockname()[1]
            self._last_step = self.clock()
            if self.autostep:
                self._task = asyncio.create_task(self._run(), name="sim-plant-steps")
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Stop stepping and every server; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        control, self._control = self._control, None
        if control is not None:
            control.close()
            try:
                await asyncio.wait_for(control.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):
                pass
        for server in self.modbus.values():
            try:
                await server.stop()
            except Exception:  # noqa: BLE001 - stopping is best effort
                pass
        for server in self.opcua.values():
            try:
                server.set_silent(False)
                await server.stop()
            except Exception:  # noqa: BLE001
                pass
        started = [b for b in self.bmcs.values() if b._server is not None]
        if started:
            await asyncio.to_thread(stop_bmcs, started)
        self._started = False

    async def __aenter__(self) -> "SimPlant":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ports(self) -> dict[str, int]:
        """Driver name (modbus, opcua) or BMC name -> port served; "control" -> the control port."""
        out: dict[str, int] = {}
        for name, s in self.modbus.items():
            out[name] = s.port
        for name, s in self.opcua.items():
            out[name] = s.port
        for name, b in self.bmcs.items():
            out[name] = b.port if b._server is not None else b._requested_port
        if self.control_port is not None:
            out["control"] = self.control_port
        return out

    def config_data(self) -> dict:
        """The site config as data, with hosts and ports pointing at what this sim serves."""
        data = yaml.safe_load(self.loaded.text)
        for name, d in data.get("drivers", {}).items():
            cfg = driver_config(self.loaded, name)
            if d.get("kind") == "modbus":
                d["host"], d["port"] = self.host, self.modbus[name].port
            elif d.get("kind") == "opcua":
                d["endpoint"] = self.opcua[name].endpoint
            elif d.get("kind") == "ipmi":
                d["credentials_file"] = str(Path(cfg.credentials_file).resolve())
                for b in d.get("bmcs", []):
                    b["host"], b["port"] = self.host, self.bmcs[b["name"]].port
            if d.get("kind") == "opcua" and cfg.credentials_file:
                d["credentials_file"] = str(Path(cfg.credentials_file).resolve())
        return data

    def write_config(self, path: str | Path) -> Path:
        """Write a copy of the site config that points at this sim's ports; returns the path."""
        p = Path(path)
        p.write_text(yaml.safe_dump(self.config_data(), sort_keys=False), encoding="utf-8")
        return p

    # --- stepping -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.step_s)
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - a step failure must not stop the plant
                log.exception("sim_plant_step_failed")

    def loads(self, t_s: float | None = None) -> Loads:
        """The loads at plant time t_s (default: now): the profile, then the overrides."""
        t = self.plant.t_s if t_s is None else t_s
        base = self.profile.loads(self.start_time_of_day_s + t)
        o = self.override
        return Loads(
            base.it_load_fraction if o.it_load is None else o.it_load,
            base.consumer_demand_w if o.demand_w is None else o.demand_w,
            base.consumer_available if o.available is None else o.available,
            base.ambient_c if o.ambient_c is None else o.ambient_c,
        )

    async def step(self) -> None:
        """Advance the plant by the clock's elapsed time (x speed) and publish every point."""
        now = self.clock()
        last = self._last_step if self._last_step is not None else now
        dt = max(0.0, now - last) * self.speed
        self._last_step = now
        self._apply_commands()  # the BMCs' limits may have changed
        if dt > 0:
            self.loop.advance(dt, self.loads())
        self.steps += 1
        values = self._point_values()
        self._publish_modbus(values)
        await self._publish_opcua(values)

    def _site_cap_w(self) -> float:
        limits = {n: b.active_limit_w for n, b in self.bmcs.items()}
        if not any(v is not None for v in limits.values()):
            return UNLIMITED_CAP_W
        return sum(v if v is not None else self._bmc_max_w[n] for n, v in limits.items())

    def _apply_commands(self) -> None:
        a = self.binding.actuators(self._commanded, None)
        self._cap_w = self._site_cap_w()
        a.power_cap_w = self._cap_w
        self.plant.set_actuators(a, self.plant.t_s)

    def _on_write(self, point: str, value: float) -> None:
        """A client wrote an actuator: the plant sees it at once (the heartbeat too)."""
        self._commanded[point] = float(value)
        self._apply_commands()

    def _point_values(self) -> dict[str, float]:
        meas = self.plant.measurements()
        for bmc, i in self._bmc_server.items():
            self._bmc_power[bmc] = (float(meas.server_power_w[i])
                                    if 0 <= i < len(meas.server_power_w) else 0.0)
        return self.binding.point_values(meas, self.rates)

    def _publish_modbus(self, values: Mapping[str, float] | None = None) -> None:
        """Reading points' values into the Modbus stores (actuator registers keep what was written)."""
        if values is None:
            values = self._point_values()
        for server in self.modbus.values():
            for point in server.points:
                if point not in values:
                    continue
                try:
                    server.set_value(point, values[point])
                except (ValueError, OverflowError, TypeError) as exc:
                    # e.g. a NaN sensor on an integer register: the register keeps its last value.
                    if point not in self._unencodable:
                        self._unencodable.add(point)
                        log.warning("sim_plant_unencodable", point=point, value=values[point],
                                    error=str(exc))
                else:
                    self._unencodable.discard(point)

    async def _publish_opcua(self, values: Mapping[str, float]) -> None:
        """Reading points' changed values to the OPC-UA nodes (actuator nodes hold what was written)."""
        for name, server in self.opcua.items():
            for point in server.points:
                if point not in values:
                    continue
                v = values[point]
                # A sensor reading NaN: a BMS reports it with a Bad status, not as a number.
                pub = (float(v), "Good") if math.isfinite(v) else (None, "BadSensorFailure")
                if self._published_opcua.get((name, point)) == pub:
                    continue
                await server.set_value(point, pub[0], pub[1])
                self._published_opcua[(name, point)] = pub

    # --- faults and loads -----------------------------------------------------------------------

    def _silence_targets(self, target: str | None) -> list[tuple[str, Any]]:
        """(label, server) pairs a silence target names; ValueError if none."""
        pairs: list[tuple[str, Any]] = []
        for name, s in self.modbus.items():
            if target in (None, ALL, "modbus", name):
                pairs.append((name, s))
        for name, s in self.opcua.items():
            if target in (None, ALL, "opcua", name):
                pairs.append((name, s))
        for name, b in self.bmcs.items():
            if target in (None, ALL, "ipmi", "bmcs", name, self._bmc_driver[name]):
                pairs.append((name, b))
        if not pairs:
            names = sorted({*self.modbus, *self.opcua, *self.bmcs, *self._bmc_driver.values()})
            raise ValueError(f"silent: unknown target {target!r}; one of modbus, opcua, ipmi, "
                             f"{', '.join(names)}")
        return pairs

    @staticmethod
    def _set_silent(server: Any, on: bool) -> None:
        if isinstance(server, OpcuaPlantServer):
            server.set_silent(on)
        else:
            server.silent = on

    def _ignore_writes_server(self, target: object) -> ModbusPlantServer:
        """The Modbus server that serves actuator point `target`; ValueError (one line) if none."""
        actuators = set(self.binding.act.values())
        for server in self.modbus.values():
            if target in server.points and target in actuators:
                return server
        served = sorted(p for s in self.modbus.values() for p in s.points if p in actuators)
        raise ValueError(f"ignore_writes: {target!r} is not an actuator point served over Modbus; "
                         f"one of {', '.join(served)}")

    def ignoring_writes(self) -> list[str]:
        return sorted(p for s in self.modbus.values() for p in s.ignore_writes)

    def silenced(self) -> list[str]:
        out = [n for n, s in self.modbus.items() if s.silent]
        out += [n for n, s in self.opcua.items() if s.silent]
        out += [n for n, b in self.bmcs.items() if b._server is not None and b.silent]
        return out

    def inject(self, kind: str, target: str | int | None = None, value: float | None = None) -> None:
        """Start a fault: a plant fault (simulations.plant.faults) or "silent" for a server or BMC.

        Raises ValueError (one line) for an unknown kind or target.
        """
        if kind == SILENT:
            if target is None:
                raise ValueError("silent needs a target: modbus, opcua, ipmi, a driver or BMC name")
            for _, server in self._silence_targets(str(target)):
                self._set_silent(server, True)
            return
        if kind == IGNORE_WRITES:
            self._ignore_writes_server(target).ignore_writes.add(str(target))
            return
        if kind not in F.FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of "
                             f"{', '.join(sorted(F.FAULT_KINDS | {SILENT, IGNORE_WRITES}))}")
        self.plant.inject(Fault(kind, target, None if value is None else float(value)))
        self._publish_modbus()

    def clear(self, kind: str, target: str | int | None = None) -> None:
        """End faults of that kind (and target, if given); "silent" unsilences; "all" ends all."""
        if kind == IGNORE_WRITES and target is not None:
            self._ignore_writes_server(target).ignore_writes.discard(str(target))
            return
        if kind == IGNORE_WRITES or (kind == ALL and target is None):
            for server in self.modbus.values():
                server.ignore_writes.clear()
            if kind == IGNORE_WRITES:
                return
        if kind in (SILENT, ALL):
            for _, server in self._silence_targets(None if target is None else str(target)):
                self._set_silent(server, False)
            if kind == SILENT:
                return
            for f in list(self.plant.active_faults):
                self.plant.clear(f.kind, f.target)
        elif kind not in F.FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of "
                             f"{', '.join(sorted(F.FAULT_KINDS | {SILENT, IGNORE_WRITES, ALL}))}")
        else:
            self.plant.clear(kind, target)
        self._publish_modbus()

    def set_load(self, **kw: Any) -> None:
        """Override it_load (0..1), demand_w, available, ambient_c; None follows the profile."""
        unknown = set(kw) - set(_LOAD_KEYS)
        if unknown:
            raise ValueError(f"unknown load keys {sorted(unknown)}; known: {', '.join(_LOAD_KEYS)}")
        for key, v in kw.items():
            if v is None:
                setattr(self.override, key, None)
            elif key == "available":
                if not isinstance(v, bool):
                    raise ValueError(f"available must be true or false, got {v!r}")
                self.override.available = v
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"{key} must be a finite number, got {v!r}")
                if key == "it_load" and not 0.0 <= v <= 1.0:
                    raise ValueError(f"it_load is a fraction 0..1, got {v!r}")
                if key == "demand_w" and v < 0:
                    raise ValueError(f"demand_w must be >= 0, got {v!r}")
                setattr(self.override, key, float(v))

    def set_profile(self, name: str) -> None:
        self.profile = self._profile(name)

    # --- state ----------------------------------------------------------------------------------

    def measurements(self) -> Measurements:
        """The plant's true state (no sensor faults)."""
        return self.plant.true_measurements()

    def sensed(self) -> Measurements:
        """What the plant's sensors read (sensor faults applied)."""
        return self.plant.measurements()

    def state(self) -> dict[str, Any]:
        """True plant state as JSON-safe data (what the control interface's "state" returns)."""
        true = self.plant.true_measurements()
        eff = self.plant.effective_actuators()
        cmd = self.binding.actuators(self._commanded, None)
        cmd.power_cap_w = self._cap_w
        loads = self.loads()
        return json_safe({
            "t_s": self.plant.t_s,
            "speed": self.speed,
            "fallback_active": true.fallback_active,
            "boiler_on": true.boiler_on,
            "it_power_w": sum(true.server_power_w),
            "server_power_w": list(true.server_power_w),
            "bmc_power_w": dict(self._bmc_power),
            "power_cap_w": None if self._cap_w >= UNLIMITED_CAP_W else self._cap_w,
            "bmc_limits_w": {n: b.active_limit_w for n, b in self.bmcs.items()},
            "measurements": dataclasses.asdict(true),
            "sensed": dataclasses.asdict(self.plant.measurements()),
            "commanded": dataclasses.asdict(cmd),
            "effective": dataclasses.asdict(eff),
            "faults": [dataclasses.asdict(f) for f in self.plant.active_faults],
            "silent": self.silenced(),
            "ignore_writes": self.ignoring_writes(),
            "loads": dataclasses.asdict(loads),
            "profile": self.profile.name,
            "ports": self.ports,
        })

    # --- control interface ----------------------------------------------------------------------

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one control request (see the module docstring); never raises."""
        try:
            op = request.get("op")
            if op == "state":
                return {"ok": True, "state": self.state()}
            if op == "ports":
                return {"ok": True, "ports": self.ports}
            if op == "ping":
                return {"ok": True}
            if op == "inject":
                self.inject(str(request.get("kind")), request.get("target"), request.get("value"))
                return {"ok": True}
            if op == "clear":
                self.clear(str(request.get("kind")), request.get("target"))
                return {"ok": True}
            if op == "set_load":
                self.set_load(**{k: v for k, v in request.items() if k != "op"})
                return {"ok": True, "loads": json_safe(dataclasses.asdict(self.loads()))}
            if op == "set_profile":
                self.set_profile(str(request.get("name")))
                return {"ok": True}
            return {"ok": False, "error": f"unknown op {op!r}; one of state, ports, ping, inject, "
                                         f"clear, set_load, set_profile"}
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": " ".join(str(exc).split())}
        except Exception as exc:  # noqa: BLE001 - the control interface answers, never dies
            log.exception("sim_plant_control_failed", request=dict(request))
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("expected a JSON object")
                    answer = self.handle(request)
                except ValueError as exc:
                    answer = {"ok": False, "error": f"bad request: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


# --- clients ------------------------------------------------------------------------------------


class ControlError(Exception):
    """The sim answered a control request with an error, or did not answer."""


class SimPlantClient:
    """Async client of the control interface; one connection, one request at a time."""

    def __init__(self, port: int, host: str = HOST, timeout_s: float = 5.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> "SimPlantClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: BLE001
                pass

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request; return the answer; raise ControlError if not ok or no answer."""
        async with self._lock:
            try:
                if self._writer is None:
                    self._reader, self._writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), self.timeout_s)
                assert self._reader is not None
                self._writer.write(json.dumps({"op": op, **fields}).encode() + b"\n")
                await self._writer.drain()
                line = await asyncio.wait_for(self._reader.readline(), self.timeout_s)
            except (OSError, asyncio.TimeoutError) as exc:
                await self.close()
                raise ControlError(f"sim control {self.host}:{self.port}: {exc!r}") from None
            if not line:
                await self.close()
                raise ControlError(f"sim control {self.host}:{self.port}: connection closed")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise ControlError(answer.get("error", "error"))
        return answer

    async def state(self) -> dict[str, Any]:
        return (await self.request("state"))["state"]

    async def ports(self) -> dict[str, int]:
        return (await self.request("ports"))["ports"]

    async def inject(self, kind: str, target: str | int | None = None,
                     value: float | None = None) -> None:
        await self.request("inject", kind=kind, target=target, value=value)

    async def clear(self, kind: str, target: str | int | None = None) -> None:
        await self.request("clear", kind=kind, target=target)

    async def set_load(self, **loads: Any) -> dict[str, Any]:
        return (await self.request("set_load", **loads))["loads"]

    async def set_profile(self, name: str) -> None:
        await self.request("set_profile", name=name)


def control_request(port: int, op: str, host: str = HOST, timeout_s: float = 5.0,
                    **fields: Any) -> dict[str, Any]:
    """Blocking one-shot control request (for scripts and threads); raises ControlError."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise ControlError(f"sim control {host}:{port}: {exc}") from None
    if not buf:
        raise ControlError(f"sim control {host}:{port}: no answer")
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "error"))
    return answer


def _parse_scalar(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "profile", "-"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    """`python -m simulations.wire.sim_plant --port N COMMAND ...`: talk to a running sim-plant."""
    p = argparse.ArgumentParser(prog="python -m simulations.wire.sim_plant",
                                description="Control a running `heatctl sim-plant`.")
    p.add_argument("--port", type=int, required=True, help="the sim's control port")
    p.add_argument("--host", default=HOST)
    p.add_argument("command", choices=["state", "ports", "inject", "clear", "load", "profile"])
    p.add_argument("args", nargs="*", help="inject KIND [TARGET [VALUE]] | clear KIND [TARGET] | "
                                           "load KEY=VALUE... | profile NAME")
    a = p.parse_args(argv)
    try:
        if a.command in ("state", "ports"):
            answer = control_request(a.port, a.command, a.host)
            print(json.dumps(answer[a.command], indent=2))
            return 0
        if a.command in ("inject", "clear"):
            if not a.args:
                print(f"{a.command}: give a fault kind", file=sys.stderr)
                return 2
            fields: dict[str, Any] = {"kind": a.args[0]}
            if len(a.args) > 1:
                fields["target"] = _parse_scalar(a.args[1])
            if a.command == "inject" and len(a.args) > 2:
                fields["value"] = _parse_scalar(a.args[2])
            control_request(a.port, a.command, a.host, **fields)
        elif a.command == "load":
            loads = {}
            for kv in a.args:
                key, sep, val = kv.partition("=")
                if not sep:
                    print(f"load: expected KEY=VALUE, got {kv!r}", file=sys.stderr)
                    return 2
                loads[key] = _parse_scalar(val)
            print(json.dumps(control_request(a.port, "set_load", a.host, **loads)["loads"]))
            return 0
        else:
            if len(a.args) != 1:
                print("profile: give one profile name", file=sys.stderr)
                return 2
            control_request(a.port, "set_profile", a.host, name=a.args[0])
    except ControlError as exc:
        print(f"sim-plant: {exc}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
