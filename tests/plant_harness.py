"""The simulated plant and `heatctl run` as real processes, for end-to-end tests.

Sim: SimPlant in its own process (real Modbus/OPC-UA/IPMI servers on 127.0.0.1 with free ports);
Daemon: `heatctl run` as a real process, driven through the CLI. Every wait is a poll on a condition
with a bounded deadline (`wait_for`). sim_config: the reference config for a SimPlant in process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from controller import cli
from controller.site.loader import LoadedConfig, parse_config_text
from tests.step_helpers import REFERENCE

ROOT = Path(__file__).resolve().parent.parent
HEATCTL = [sys.executable, "-m", "controller.cli"]

# The reference plant, made fast: 0.25 s tick, driver timeouts well inside it, a 1 s grace before a
# lost critical reading means safe_degrade, a 2 s exit dwell, and the plant's BMS falls back 2 s
# after the heartbeat stops.
E2E_EDITS = {
    "tick_period_s: 1.0": "tick_period_s: 0.25",
    "    timeout_s: 0.3 ": "    timeout_s: 0.06 ",
    "    reconnect_max_s: 2.0": "    reconnect_max_s: 0.3",
    "  critical_grace_s: 5 ": "  critical_grace_s: 1 ",
    "  safe_degrade_exit_dwell_s: 120": "  safe_degrade_exit_dwell_s: 2",
}
HEARTBEAT_TIMEOUT_S = 2.0

SIM_SCRIPT = """
import asyncio, json, signal, sys
from controller.site.loader import load_config
from simulations.wire.sim_plant import SimPlant

async def main(cfg, out, speed):
    sim = SimPlant(load_config(cfg), free_ports=True, control_port=0, speed=speed)
    await sim.start()
    sim.write_config(out)
    print(json.dumps({"control_port": sim.control_port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await sim.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def wait_for(cond, timeout_s: float, what: str, every_s: float = 0.05):
    """Poll `cond` until it returns a truthy value; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except Exception as exc:  # noqa: BLE001 - a poll that fails is a poll that is not yet true
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


class Sim:
    def __init__(self, workdir: Path, edits: dict[str, str] | None = None, simulation: str = "",
                 speed: float = 1.0):
        """`edits`: more text replacements of the reference config (the plant and the daemon both
        read it); `simulation`: more lines of its simulation: section (indented two spaces);
        `speed`: plant seconds per wall second (SimPlant's speed; the BMS's heartbeat timeout, on
        plant time, is scaled with it so that the daemon's heartbeat still counts)."""
        text = REFERENCE.read_text()
        for old, new in {**E2E_EDITS, **(edits or {})}.items():
            assert old in text, old
            text = text.replace(old, new)
        text += f"\nsimulation:\n  heartbeat_timeout_s: {HEARTBEAT_TIMEOUT_S * speed}\n{simulation}"
        self.src = workdir / "sim-input.yaml"
        self.src.write_text(text)
        self.config = workdir / "site.yaml"
        self.log = open(workdir / "sim.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT, str(self.src), str(self.config), str(speed)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"sim plant did not start: {(workdir / 'sim.log').read_text()[-2000:]}")
        self.control_port = json.loads(line)["control_port"]

    def request(self, op: str, **fields) -> dict:
        from simulations.wire.sim_plant import control_request
        resp = control_request(self.control_port, op, **fields)
        return resp

    def state(self) -> dict:
        return self.request("state")["state"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Daemon:
    def __init__(self, workdir: Path, config: Path, notify: str | None = None):
        self.workdir = workdir
        self.config = config
        self.state_dir = workdir / "state"
        self.socket = str(workdir / "heatctl.sock")
        self.proc: subprocess.Popen | None = None
        self.notify = notify
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HEATCTL_SOCKET", None)
        if self.notify:
            env["NOTIFY_SOCKET"] = self.notify
        self.log = open(self.workdir / f"daemon-{self.runs}.log", "w")
        self.proc = subprocess.Popen(
            [*HEATCTL, "run", "--config", str(self.config), "--state-dir", str(self.state_dir),
             "--socket", self.socket, "--log-format", "json"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.status()["mode"]["mode"] == "normal", 20, "the daemon in normal mode")

    def cli(self, *argv: str) -> tuple[int, str, str]:
        """The CLI in process (fast); `heatctl` as a process is covered by `cli_process`."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([*argv, "--socket", self.socket])
            except SystemExit as exc:
                code = exc.code
        return code, out.getvalue(), err.getvalue()

    def cli_process(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([*HEATCTL, *argv, "--socket", self.socket], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)

    def ok(self, *argv: str) -> str:
        code, out, err = self.cli(*argv)
        assert code == 0, f"heatctl {' '.join(argv)}: exit {code}: {err}"
        return out

    def status(self) -> dict:
        code, out, err = self.cli("status", "--json")
        assert code == 0, err
        return json.loads(out)

    def events(self, kind: str | None = None) -> list[dict]:
        code, out, err = self.cli("events", "--limit", "1000", "--json")
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        return [r for r in rows if kind is None or r["kind"] == kind]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s: float = 15) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout_s)
        self.log.close()
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and not self.log.closed:
            self.log.close()


# A short BMS heartbeat timeout (plant seconds), so the fallback test runs in a few seconds.
HEARTBEAT_TIMEOUT_S = 2.0


def sim_config(tmp_path: Path, heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S) -> LoadedConfig:
    """The reference config with a short heartbeat timeout (its ports are overridden by the sim)."""
    text = REFERENCE.read_text() + f"\nsimulation:\n  heartbeat_timeout_s: {heartbeat_timeout_s}\n"
    path = tmp_path / "sim-source.yaml"
    path.write_text(text)
    return parse_config_text(text, str(path))
