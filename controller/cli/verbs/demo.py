"""`heatctl demo`: the daemon controlling the simulated plant over the wire, on 127.0.0.1.

Starts `heatctl sim-plant` (Modbus TCP, OPC-UA and IPMI servers with the plant model running in real
time) and `heatctl run` against it as an ordinary user, with state, socket and logs in a folder of
their own (`.demo/` by default), tells the user what to type in another terminal, and prints the
operator's essentials every few seconds until Ctrl-C (or `--duration`). On exit it stops the daemon
with SIGTERM (which writes the safe state) and then the plant.

`heatctl demo --simulated` runs scenarios on simulated time instead (no servers, seconds per day).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from controller.ops.api_client import ApiError, call
from controller.site.loader import load_config
from simulations.plant.config import SIMULATION_EXTENSION
from controller.site.paths import default_config_path

# The metrics port of the demo daemon (Prometheus scrapes 127.0.0.1 only).
DEMO_METRICS_PORT = 9860
DEMO_SIM_CONTROL_PORT = 15090


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the daemon against the simulated plant (or --simulated)")
    p.add_argument("--config", default=None, help="site configuration (default: the reference plant)")
    p.add_argument("--dir", default=".demo", help="folder for the demo's state, socket and logs (default .demo)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between status prints (default 10)")
    p.add_argument("--simulated", action="store_true",
                   help="run scenarios on simulated time instead of the daemon on the wire")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.config or default_config_path())
    site = load_config(path, SIMULATION_EXTENSION).site
    if args.simulated:
        return _simulated(site, path)
    return _on_the_wire(path, args)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for(cond, timeout_s: float, what: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a process exited early (status {p.returncode}); see the logs")
        if cond():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not ready within {timeout_s:g} s; see the logs")


def _on_the_wire(config: Path, args: argparse.Namespace) -> int:
    from controller.cli.verbs.status import format_status

    demo_dir = Path(args.dir).resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    sock = demo_dir / "heatctl.sock"
    for port, what in ((DEMO_SIM_CONTROL_PORT, "the simulated plant's control port"),
                       (DEMO_METRICS_PORT, "the demo's metrics port")):
        if not _port_free(port):
            print(f"heatctl demo: port {port} ({what}) on 127.0.0.1 is in use: is another demo running?",
                  file=sys.stderr)
            return 1
    exe = [sys.executable, "-m", "controller.cli"]
    env = {**os.environ, "HEATCTL_SOCKET": str(sock)}
    sim_log = open(demo_dir / "sim-plant.log", "w")
    daemon_log = open(demo_dir / "daemon.log", "w")
    procs: list[subprocess.Popen] = []
    try:
        sim = subprocess.Popen(exe + ["sim-plant", "--config", str(config),
                                     "--control-port", str(DEMO_SIM_CONTROL_PORT)],
                               stdout=sim_log, stderr=subprocess.STDOUT, env=env)
        procs.append(sim)
        _wait_for(lambda: not _port_free(DEMO_SIM_CONTROL_PORT), 60, "simulated plant", procs)
        daemon = subprocess.Popen(exe + ["run", "--config", str(config), "--state-dir", str(demo_dir),
                                        "--socket", str(sock), "--metrics", f"127.0.0.1:{DEMO_METRICS_PORT}",
                                        "--log-format", "json"],
                                  stdout=daemon_log, stderr=subprocess.STDOUT, env=env)
        procs.append(daemon)

        def answering() -> bool:
            try:
                return bool(call(str(sock), {"op": "status"}, timeout_s=2.0).get("ok"))
            except ApiError:
                return False

        _wait_for(answering, 60, "daemon", procs)
        heatctl = f"{Path(sys.executable).parent / 'heatctl'}"
        py = sys.executable
        print(f"""heatctl demo: the daemon is controlling the simulated plant on 127.0.0.1
  config     {config}
  state      {demo_dir}  (audit log and energy counters: heatctl.sqlite3; logs: daemon.log, sim-plant.log)
  socket     {sock}
  metrics    http://127.0.0.1:{DEMO_METRICS_PORT}/metrics

In another terminal:
  export HEATCTL_SOCKET={sock}
  {heatctl} status
  {heatctl} mode bypass --reason "demo: step through the modes"
  {heatctl} release --reason "demo: back to automatic"
  {heatctl} override v1_position 40 --for 2m --reason "demo: valve stroke"
  {heatctl} trip-test it_overtemp --reason "demo: prove the trip"   (then: {heatctl} ack it_overtemp --reason ...)
  {heatctl} events --since 10m
Break the plant on purpose (the simulated plant's control port):
  {py} -m simulations.wire.sim_plant --port {DEMO_SIM_CONTROL_PORT} inject leak rack
  {py} -m simulations.wire.sim_plant --port {DEMO_SIM_CONTROL_PORT} inject silent bms_modbus
  {py} -m simulations.wire.sim_plant --port {DEMO_SIM_CONTROL_PORT} clear all
Ctrl-C stops the daemon (it writes the safe state) and the plant.
""", flush=True)
        started = time.monotonic()
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        while not stop["now"]:
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            for p in procs:
                if p.poll() is not None:
                    print(f"heatctl demo: a process exited (status {p.returncode}); see {demo_dir}", file=sys.stderr)
                    return 1
            try:
                resp = call(str(sock), {"op": "status"}, timeout_s=5.0)
                # The essentials: the four questions and the alarms, up to the first blank line.
                head = format_status(resp["status"]).split("\n\n", 1)[0]
                stamp = time.strftime("%H:%M:%S")
                print(f"--- {stamp}\n{head}", flush=True)
            except (ApiError, KeyError) as exc:
                print(f"heatctl demo: status failed: {exc}", file=sys.stderr)
            wait = args.every
            if args.duration is not None:
                wait = min(wait, max(args.duration - (time.monotonic() - started), 0.0))
            _sleep_until(lambda: stop["now"], wait)
        return 0
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"heatctl demo: {exc} ({demo_dir})", file=sys.stderr)
        return 1
    finally:
        for p in reversed(procs):  # the daemon first: it writes the safe state to the plant
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        sim_log.close()
        daemon_log.close()
        print("heatctl demo: stopped (daemon wrote the safe state; plant stopped)", flush=True)


def _sleep_until(stop, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop():
        time.sleep(min(0.2, max(end - time.monotonic(), 0)))


def _simulated(site, path: Path) -> int:
    from controller.cli.verbs.simulate import format_kpis
    from simulations.runners.closed_loop import run_scenario
    from simulations.scenarios.definitions import SCENARIOS

    print(f"heatctl demo --simulated: the control step against the plant model of {path}\n")
    for name, hours, tick in (("summer-day", 12.0, 5.0), ("pump-failure", 5.0, None)):
        scenario = SCENARIOS[name]
        started = time.perf_counter()
        kpis, _ = run_scenario(site, scenario, hours=hours, tick_s=tick)
        print(format_kpis(name, scenario.description, kpis, time.perf_counter() - started))
        print()
    return 0
