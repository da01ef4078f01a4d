"""Build the field drivers a site config names, and run them as one set.

`build_drivers(loaded)` makes one driver per entry under `drivers:`, each given its points as
DriverPoint(name, PointConfig, parsed source). `DriverSet` starts them, reads them concurrently
(each driver bounded by its own read budget plus a small margin, so one hung device never holds up
the others or the tick), writes commands grouped by driver, and closes them. Like a driver, it never
raises into the control loop: a driver that raises or overruns its budget gives LOST readings for
its points, with the reason.

Relative file paths in driver configs (credentials, certificates) are resolved in a fixed order:
the current directory, the config file's directory, then the repository root (where the shipped
reference config's `config/credentials/...` lives). A path found in none of them is left as written,
and the driver reports it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import structlog

from controller.site.access import permission_denied
from controller.site.loader import LoadedConfig
from controller.site.paths import resolve_config_file
from controller.core.readings import Reading
from drivers.base import Clock, Driver, DriverPoint, WriteResult, read_budget_s  # noqa: F401 - re-exported

log = structlog.get_logger(__name__)

# Added to each driver's own budget before DriverSet gives up on it (s): the driver bounds its own
# requests; this only covers its bookkeeping and the event loop's scheduling.
READ_MARGIN_S = 0.1
# Fields of driver configs that hold file paths.
_PATH_FIELDS = ("credentials_file", "client_certificate", "client_key", "server_certificate",
                "trust_store")


def resolve_path(path: str, config_path: str | Path | None) -> str:
    """A driver config's file path, resolved as the module docstring says (one rule, shared with
    `check-config`: controller.site.paths.resolve_config_file)."""
    return resolve_config_file(path, config_path)


def _with_resolved_paths(cfg, config_path: str | None):
    updates = {}
    for f in _PATH_FIELDS:
        value = getattr(cfg, f, None)
        if isinstance(value, str):
            resolved = resolve_path(value, config_path)
            if resolved != value:
                updates[f] = resolved
    return cfg.model_copy(update=updates) if updates else cfg


def driver_points(loaded: LoadedConfig, driver_name: str) -> dict[str, DriverPoint]:
    """The points whose source names `driver_name`, as DriverPoints."""
    site = loaded.site
    out: dict[str, DriverPoint] = {}
    for pname, src in loaded.sources.items():
        if getattr(src, "driver", None) == driver_name:
            out[pname] = DriverPoint(pname, site.points[pname], src)
    return out


def driver_config(loaded: LoadedConfig, driver_name: str):
    """A driver's config with its file paths resolved (see the module docstring)."""
    return _with_resolved_paths(loaded.site.drivers[driver_name], loaded.path)




def build_drivers(loaded: LoadedConfig, clock: Clock = time.monotonic,
                  only: Iterable[str] | None = None) -> dict[str, Driver]:
    """One driver per configured driver entry (or per name in `only`), with its points.

    Raises ValueError (one line) for a driver that cannot be built (unreadable credentials file, a
    point its driver refuses).
    """
    from drivers.ipmi.driver import IpmiDriver
    from drivers.modbus.driver import ModbusDriver
    from drivers.opcua.driver import OpcuaDriver

    wanted = None if only is None else set(only)
    drivers: dict[str, Driver] = {}
    for name, raw_cfg in loaded.site.drivers.items():
        if wanted is not None and name not in wanted:
            continue
        cfg = driver_config(loaded, name)
        points = driver_points(loaded, name)
        try:
            if raw_cfg.kind == "modbus":
                # No read_deadline_s: a deadline cut would keep the driver from marking a silent
                # device (its reads would then cost the whole budget every time); DriverSet bounds
                # the read from outside instead.
                drv = ModbusDriver(name, cfg, points, clock)
            elif raw_cfg.kind == "opcua":
                drv = OpcuaDriver(name, cfg, points, clock)
            elif raw_cfg.kind == "ipmi":
                drv = IpmiDriver(name, cfg, points, clock)
            else:  # the config schema admits no other kind
                raise ValueError(f"unknown driver kind {raw_cfg.kind!r}")
        except PermissionError as exc:  # a credentials or certificate file kept from this user
            raise ValueError(f"driver {name}: {permission_denied(exc.filename)}" if exc.filename
                             else f"driver {name}: {exc}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"driver {name}: {' '.join(str(exc).split())}") from None
        drivers[name] = drv
    return drivers


@dataclass(frozen=True)
class DriverRead:
    """One driver's part of a DriverSet read: its readings and how long it took (s)."""

    driver: str
    readings: dict[str, Reading]
    duration_s: float


class DriverSet:
    """Start, read, write and close a set of drivers as one (see the module docstring)."""

    def __init__(self, drivers: Mapping[str, Driver], clock: Clock = time.monotonic,
                 margin_s: float = READ_MARGIN_S):
        self.drivers = dict(drivers)
        self.clock = clock
        self.margin_s = margin_s
        self.point_driver: dict[str, str] = {
            p: name for name, d in self.drivers.items() for p in d.points}
        self.last_reads: dict[str, DriverRead] = {}

    @classmethod
    def from_config(cls, loaded: LoadedConfig, clock: Clock = time.monotonic) -> "DriverSet":
        return cls(build_drivers(loaded, clock), clock)

    async def start(self, timeout_s: float | None = None) -> None:
        """Start every driver concurrently, each bounded by `timeout_s` if given. A driver whose
        start fails or overruns reports LOST on reads (and may still connect later)."""
        async def one(name: str, d: Driver) -> None:
            try:
                await asyncio.wait_for(d.start(), timeout_s)
            except asyncio.TimeoutError:
                log.warning("driver_start_slow", driver=name, timeout_s=timeout_s)
            except Exception as exc:  # noqa: BLE001 - a start failure is a LOST driver, not a crash
                log.warning("driver_start_failed", driver=name, error=f"{type(exc).__name__}: {exc}")
        await asyncio.gather(*(one(n, d) for n, d in self.drivers.items()))

    async def close(self) -> None:
        async def one(name: str, d: Driver) -> None:
            try:
                await asyncio.wait_for(d.close(), read_budget_s(d) + 2.0)
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.warning("driver_close_failed", driver=name, error=f"{type(exc).__name__}: {exc}")
        await asyncio.gather(*(one(n, d) for n, d in self.drivers.items()))

    async def __aenter__(self) -> "DriverSet":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read_driver(self, name: str) -> DriverRead:
        """Read one driver, bounded by its budget + margin; never raises."""
        d = self.drivers[name]
        loop = asyncio.get_running_loop()
        started = loop.time()
        budget = read_budget_s(d) + self.margin_s
        try:
            readings = await asyncio.wait_for(d.read(), budget)
        except asyncio.TimeoutError:
            readings = d.lost_all(f"timeout: driver read took over {budget:.2g} s")
        except Exception as exc:  # noqa: BLE001 - a driver bug is LOST readings, never a crash
            log.warning("driver_read_failed", driver=name, error=f"{type(exc).__name__}: {exc}")
            readings = d.lost_all(f"driver error: {type(exc).__name__}")
        # A driver must return every point; one it left out is LOST, never missing.
        now = self.clock()
        for pname, p in d.points.items():
            if pname not in readings:
                readings[pname] = Reading.lost(p.config.unit, now, "not returned by driver")
        result = DriverRead(name, readings, loop.time() - started)
        self.last_reads[name] = result
        return result

    async def read(self) -> dict[str, Reading]:
        """Every point of every driver, read concurrently; never raises."""
        results = await asyncio.gather(*(self.read_driver(n) for n in self.drivers))
        out: dict[str, Reading] = {}
        for r in results:
            out.update(r.readings)
        return out

    async def write(self, commands: Mapping[str, float]) -> list[WriteResult]:
        """Write commands, grouped by driver, drivers concurrently; never raises.

        A point no driver serves comes back not ok ("unknown_point"). Each driver's write is
        bounded by twice its read budget (the write, then its read-back) plus the margin.
        """
        groups: dict[str, dict[str, float]] = {}
        results: list[WriteResult] = []
        for point, value in commands.items():
            name = self.point_driver.get(point)
            if name is None:
                results.append(WriteResult(point, value, ok=False, reason="unknown_point"))
            else:
                groups.setdefault(name, {})[point] = value

        async def one(name: str, cmds: dict[str, float]) -> list[WriteResult]:
            d = self.drivers[name]
            budget = 2 * read_budget_s(d) + self.margin_s
            try:
                return list(await asyncio.wait_for(d.write(cmds), budget))
            except asyncio.TimeoutError:
                return [WriteResult(p, v, ok=False, reason=f"timeout: write took over {budget:.2g} s")
                        for p, v in cmds.items()]
            except Exception as exc:  # noqa: BLE001
                log.warning("driver_write_failed", driver=name, error=f"{type(exc).__name__}: {exc}")
                return [WriteResult(p, v, ok=False, reason=f"driver error: {type(exc).__name__}")
                        for p, v in cmds.items()]

        for rs in await asyncio.gather(*(one(n, c) for n, c in groups.items())):
            results.extend(rs)
        return results
