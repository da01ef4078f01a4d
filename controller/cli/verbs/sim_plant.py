"""`heatctl sim-plant`: run the simulated plant on 127.0.0.1 until SIGINT or SIGTERM.

Serves every point of the site config over Modbus TCP, OPC-UA and IPMI (DCMI) on the ports the
config names, with the plant model running in real time (or `--speed` times faster), and a JSON-lines
control interface for faults and loads (simulations/wire/sim_plant.py describes it).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys

from controller.site.loader import load_config
from simulations.plant.config import SIMULATION_EXTENSION
from controller.site.paths import default_config_path

# Default control port: next to the reference config's device ports (Modbus 15020), fixed so that
# scripts and the operator find it without reading the output. 0 asks for a free port.
DEFAULT_CONTROL_PORT = 15090


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim-plant", help="serve the simulated plant over Modbus, OPC-UA and IPMI")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT,
                   help=f"JSON-lines control port on 127.0.0.1 (default {DEFAULT_CONTROL_PORT}; 0: free)")
    p.add_argument("--speed", type=float, default=1.0, help="plant time per real second (default 1)")
    p.add_argument("--profile", default="winter-day", help="load profile (a scenario name; default winter-day)")
    p.set_defaults(func=run)


def _err(msg: str, code: int) -> int:
    print(f"heatctl sim-plant: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from controller.cli.verbs.points import quiet_libraries

    quiet_libraries()
    if not (math.isfinite(args.speed) and args.speed > 0):
        return _err(f"--speed must be a number > 0, got {args.speed!r}", 2)
    if not 0 <= args.control_port <= 65535:
        return _err(f"--control-port must be 0..65535, got {args.control_port}", 2)
    path = args.config or default_config_path()
    loaded = load_config(path, SIMULATION_EXTENSION)
    try:
        return asyncio.run(_serve(loaded, args))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError, RuntimeError) as exc:
        return _err(" ".join(str(exc).split()) or type(exc).__name__, 1)
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        return _err(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}", 1)


async def _serve(loaded, args: argparse.Namespace) -> int:
    from simulations.wire.sim_plant import SimPlant

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = SimPlant(loaded, control_port=args.control_port, speed=args.speed, profile=args.profile)
    async with sim:
        print(describe(sim, loaded.path), flush=True)
        await stop.wait()
    print("sim-plant stopped", flush=True)
    return 0


def describe(sim, config_path: str) -> str:
    """What the operator needs: what is served where, and how to inject faults."""
    lines = [f"heatctl sim-plant: config {config_path}, speed x{sim.speed:g}, profile {sim.profile.name}"]
    for name, s in sim.modbus.items():
        lines.append(f"  modbus   {name:12s} {s.host}:{s.port}  ({len(s.points)} points)")
    for name, s in sim.opcua.items():
        lines.append(f"  opcua    {name:12s} {s.endpoint}  ({len(s.points)} points)")
    for name, b in sim.bmcs.items():
        lines.append(f"  ipmi     {name:12s} {b.host}:{b.port}  (DCMI, lanplus, -C 3)")
    port = sim.control_port
    py = sys.executable
    lines += [
        f"  control  JSON lines    {sim.host}:{port}",
        "",
        "inject and clear faults, change loads (ctrl-C to stop):",
        f"  {py} -m simulations.wire.sim_plant --port {port} state",
        f"  {py} -m simulations.wire.sim_plant --port {port} inject leak rack",
        f"  {py} -m simulations.wire.sim_plant --port {port} inject sensor_nan it_supply_c",
        f"  {py} -m simulations.wire.sim_plant --port {port} inject pump_failure p1",
        f"  {py} -m simulations.wire.sim_plant --port {port} inject silent bms_modbus",
        f"  {py} -m simulations.wire.sim_plant --port {port} clear all",
        f"  {py} -m simulations.wire.sim_plant --port {port} load it_load=0.5 demand_w=20000",
        "  fault kinds: pump_failure p1|p2|p3, low_flow [- FRACTION], leak cdu|rack, consumer_offline,",
        "               sensor_stuck FIELD [VALUE], sensor_nan FIELD, silent modbus|opcua|ipmi|DRIVER|BMC",
        f"  or send one JSON object per line to {sim.host}:{port}, e.g. "
        '{"op": "inject", "kind": "leak", "target": "rack"}',
    ]
    return "\n".join(lines)
