"""`heatctl points`: read every configured point once through its driver, or write one actuator.

    heatctl points [--config FILE] [--json]
    heatctl points [--config FILE] --write POINT=VALUE --reason TEXT

Reading: one table row per point: value, unit, quality (the driver's, then NaN and the configured
range), driver, and how long the driver's read took. A driver that is still connecting (an OPC-UA
subscription's first values, an IPMI login) is read again until its points are no longer LOST or
`--settle` seconds have passed. Exit 0 when every critical point is good, 1 otherwise.

Writing: refused (exit 2, one line) without a reason, for an unknown point, a reading, or a value
outside the point's range. The value is written through the driver (which verifies it), the point is
read back, and the verb says whether it took (exit 0) or not (exit 1). The operator's reason is
printed with the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time

from controller.cli.table import Col, add_wide_argument, fit, is_wide, render
from controller.site.loader import ConfigError, LoadedConfig, load_config
from controller.site.paths import default_config_path
from controller.core.readings import Quality, Reading
from controller.site.roles import PointKind

# Re-read a driver that still has LOST points this often (s) while settling.
_RESETTLE_PERIOD_S = 0.1
DEFAULT_SETTLE_S = 1.5


def quiet_libraries() -> None:
    """Keep library chatter off the operator's screen: pymodbus dumps frames, asyncua warns about
    security None, and the drivers' structlog warnings would interleave with the table."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        import structlog

        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
    except Exception:  # noqa: BLE001 - logging set-up must never stop the verb
        pass


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("points", help="read every configured point once, or write one actuator")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.add_argument("--json", action="store_true", help="print the readings as JSON")
    p.add_argument("--write", metavar="POINT=VALUE", default=None, help="write one actuator and read it back")
    p.add_argument("--reason", default=None, help="why you write (required with --write)")
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S,
                   help=f"seconds to keep re-reading a connecting driver (default {DEFAULT_SETTLE_S:g})")
    add_wide_argument(p)
    p.set_defaults(func=run)


def _err(msg: str, code: int) -> int:
    print(f"heatctl points: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `heatctl points | head`: the reader left, nothing to say
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        except OSError:
            pass
        return 1
    except ConfigError:
        raise  # heatctl's main prints its problems, one line each
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        return _err(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}", 1)


def _run(args: argparse.Namespace) -> int:
    if not args.settle >= 0 or not math.isfinite(args.settle):
        return _err(f"--settle must be a number >= 0, got {args.settle!r}", 2)
    if args.write is None and args.reason is not None:
        return _err("--reason is only for --write", 2)
    path = args.config or default_config_path()
    if args.write is not None:
        # Arguments first: a refused write never touches the config's devices.
        if args.reason is None or not args.reason.strip():
            return _err("--write needs --reason TEXT (every manual write is explained)", 2)
    loaded = load_config(path)
    if args.write is not None:
        return _write(loaded, args.write, args.reason.strip(), args.settle)
    quiet_libraries()
    return _read(loaded, args.json, args.settle, wide=is_wide(args))


# --- read -----------------------------------------------------------------------------------


def checked_quality(reading: Reading, lo: float, hi: float) -> tuple[str, str]:
    """(quality, reason): the driver's quality, then NaN and the configured range."""
    if reading.quality is not Quality.GOOD:
        return reading.quality.value, reading.reason
    v = reading.value
    if v is None or not math.isfinite(v):
        return Quality.BAD.value, "nan"
    if not lo <= v <= hi:
        return Quality.BAD.value, f"out_of_range ({v:g} not in [{lo:g}, {hi:g}])"
    return Quality.GOOD.value, ""


async def read_points(loaded: LoadedConfig, settle_s: float,
                      only: list[str] | None = None) -> list[dict]:
    """Read every point (of the drivers in `only`, if given) once, settling as the docstring says.

    Returns one row per point, in config order.
    """
    from drivers.registry import DriverSet, build_drivers

    # Driver by driver: one that cannot be built (its credentials file kept from this user) is
    # reported on its points, and the others are still read.
    built, unbuilt = {}, {}
    for name in (only if only is not None else list(loaded.site.drivers)):
        try:
            built.update(build_drivers(loaded, only=[name]))
        except ValueError as exc:
            unbuilt[name] = str(exc)
    dset = DriverSet(built)
    await dset.start(timeout_s=max(settle_s, 0.5) + 1.0)
    try:
        rows = await settle_read(dset, loaded, settle_s)
    finally:
        await dset.close()
    for name, why in unbuilt.items():
        for pname, src in loaded.sources.items():
            if getattr(src, "driver", None) == name:
                cfg = loaded.site.points[pname]
                rows[pname] = {"point": pname, "value": None, "raw_value": None, "unit": cfg.unit,
                               "quality": Quality.LOST.value, "reason": f"not read: {why}",
                               "driver": name, "read_ms": 0.0, "critical": cfg.critical}
    if only is None:
        # Points without a source (no driver reads them) are listed as lost.
        for pname, cfg in loaded.site.points.items():
            if pname not in rows:
                rows[pname] = {"point": pname, "value": None, "raw_value": None, "unit": cfg.unit,
                               "quality": Quality.LOST.value, "reason": "no source configured",
                               "driver": "-", "read_ms": 0.0, "critical": cfg.critical}
    return [rows[p] for p in loaded.site.points if p in rows]


async def settle_read(dset, loaded: LoadedConfig, settle_s: float) -> dict[str, dict]:
    """Read each driver of a started DriverSet, again while it has LOST points, until settle_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s
    rows: dict[str, dict] = {}

    async def settle(name: str) -> None:
        while True:
            r = await dset.read_driver(name)
            lost = any(x.quality is Quality.LOST for x in r.readings.values())
            if not lost or loop.time() + _RESETTLE_PERIOD_S > deadline:
                break
            await asyncio.sleep(_RESETTLE_PERIOD_S)
        for pname, reading in r.readings.items():
            cfg = loaded.site.points[pname]
            quality, reason = checked_quality(reading, cfg.range[0], cfg.range[1])
            finite = reading.value is not None and math.isfinite(reading.value)
            rows[pname] = {
                "point": pname, "value": reading.value if finite else None,
                "raw_value": reading.value, "unit": cfg.unit, "quality": quality, "reason": reason,
                "driver": name, "read_ms": round(r.duration_s * 1000, 1), "critical": cfg.critical,
            }

    await asyncio.gather(*(settle(n) for n in dset.drivers))
    return rows


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if unit in ("bool", "count") and float(v).is_integer():
        return str(int(v))
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.2f}"


POINT_COLUMNS = (Col("POINT"), Col("VALUE", right=True), Col("UNIT"), Col("QUALITY"), Col("DRIVER", drop=2),
                 Col("READ ms", right=True, drop=1), Col("REASON", wrap=True))


def format_table(rows: list[dict], wide: bool = False) -> str:
    body = [(r["point"] + (" *" if r["critical"] else ""), _fmt_value(r["raw_value"], r["unit"]),
             r["unit"], r["quality"], r["driver"], f"{r['read_ms']:.1f}", r["reason"])
            for r in rows]
    return "\n".join(render(POINT_COLUMNS, body, wide=wide))


def _read(loaded: LoadedConfig, as_json: bool, settle_s: float, wide: bool = False) -> int:
    started = time.perf_counter()
    try:
        rows = asyncio.run(read_points(loaded, settle_s))
    except ValueError as exc:  # a driver that cannot be built (credentials file, ...)
        return _err(str(exc), 1)
    wall = time.perf_counter() - started
    bad_critical = [r["point"] for r in rows if r["critical"] and r["quality"] != "good"]
    good = sum(1 for r in rows if r["quality"] == "good")
    if as_json:
        out = {"config": loaded.path, "ok": not bad_critical, "points": [
            {k: v for k, v in r.items() if k != "raw_value"} for r in rows],
            "critical_not_good": bad_critical, "wall_s": round(wall, 3)}
        print(json.dumps(out, indent=2))
    else:
        print(format_table(rows, wide=wide))
        print()
        print("\n".join(fit(f"{len(rows)} points, {good} good, {len(rows) - good} not good "
                            f"(* critical) in {wall:.2f} s; config {loaded.path}", wide=wide)))
        if bad_critical:
            print("\n".join(fit(f"critical points not good: {', '.join(bad_critical)}", wide=wide)))
    return 1 if bad_critical else 0


# --- write ----------------------------------------------------------------------------------


def _write(loaded: LoadedConfig, spec: str, reason: str, settle_s: float) -> int:
    from controller.site.checks import point_kind

    name, sep, text = spec.partition("=")
    name, text = name.strip(), text.strip()
    if not sep or not name or not text:
        return _err(f"--write expects POINT=VALUE, got {spec!r}", 2)
    site = loaded.site
    if name not in site.points:
        return _err(f"unknown point {name!r}", 2)
    cfg = site.points[name]
    if point_kind(site, name) is not PointKind.ACTUATOR:
        return _err(f"point {name!r} is a reading, not an actuator: it cannot be written", 2)
    try:
        value = float(text)
    except ValueError:
        return _err(f"value {text!r} for {name} is not a number", 2)
    lo, hi = cfg.range
    if not math.isfinite(value) or not lo <= value <= hi:
        return _err(f"value {text} for {name} is outside its range [{lo:g}, {hi:g}] {cfg.unit}", 2)
    src = loaded.sources.get(name)
    if src is None:
        return _err(f"point {name!r} has no source: no driver can write it", 2)
    driver = src.driver  # type: ignore[attr-defined]
    # Only now, on the way to the devices: refusals above leave the process's logging alone.
    quiet_libraries()
    try:
        result, row = asyncio.run(_write_and_read(loaded, driver, name, value, settle_s))
    except ValueError as exc:
        return _err(str(exc), 1)
    # The driver's verified read-back (it read the value back after writing); the settling read
    # after the write can still show a subscription's previous value, so it is only the fallback.
    readback = result.readback if result.readback is not None else (
        row["raw_value"] if row is not None else None)
    shown = _fmt_value(readback, cfg.unit)
    quality = ("verified by the driver" if result.readback is not None
               else f"quality {row['quality'] if row else 'lost'}")
    if result.ok:
        note = f" ({result.reason})" if result.reason else ""
        print(f"{name} = {_fmt_value(value, cfg.unit)} {cfg.unit}: took; read back {shown} {cfg.unit}, "
              f"{quality}{note} [reason: {reason}]")
        return 0
    print(f"{name} = {_fmt_value(value, cfg.unit)} {cfg.unit}: did NOT take: {result.reason}; "
          f"read back {shown} {cfg.unit} [reason: {reason}]")
    return 1


async def _write_and_read(loaded: LoadedConfig, driver: str, point: str, value: float,
                          settle_s: float):
    """Connect the point's driver (a settling read: sessions up), write, then read the point back."""
    from drivers.base import WriteResult
    from drivers.registry import DriverSet, build_drivers

    dset = DriverSet(build_drivers(loaded, only=[driver]))
    await dset.start(timeout_s=max(settle_s, 0.5) + 1.0)
    try:
        await settle_read(dset, loaded, settle_s)
        results = await dset.write({point: value})
        result = results[0] if results else WriteResult(point, value, ok=False, reason="no result")
        rows = await settle_read(dset, loaded, settle_s)
    finally:
        await dset.close()
    return result, rows.get(point)
