"""A real Slurm on 127.0.0.1 for the tests: munge, slurmctld and one `slurmd -N NAME` per node.

Recipe from /work/shared/design/PROTOCOLS.md ("Slurm on one machine"): Debian 12's slurmctld,
slurmd, slurm-client and munge 22.05. Everything lives in a temp dir with its own slurm.conf
(client tools find it through SLURM_CONF), except munge, which has one key and one socket per host:
it is started once if it does not answer yet. Tests skip when the binaries are missing or when not
root (slurmd runs jobs as their user, which needs root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sinfo", "scontrol", "sbatch", "munged", "munge")


def missing() -> str:
    """Why a real Slurm cannot run here ("" when it can)."""
    absent = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if absent:
        return f"Slurm not installed (missing {', '.join(absent)}; apt-get install slurmctld slurmd slurm-client munge)"
    if os.geteuid() != 0:
        return "a real Slurm needs root (slurmd starts jobs as their user)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def ensure_munge() -> None:
    """Start munged as the munge user unless it already answers (one per host)."""
    def ok() -> bool:
        try:
            enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
            dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=5)
            return enc.returncode == 0 and dec.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    if ok():
        return
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge", "/etc/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run([_sbin("mungekey"), "-c", "-k", str(key)], check=True, timeout=10)
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", _sbin("munged")], check=True, timeout=10)
    deadline = time.monotonic() + 10
    while not ok():
        if time.monotonic() > deadline:
            raise RuntimeError("munged started but `munge -n | unmunge` does not succeed")
        time.sleep(0.1)


class SlurmCluster:
    """slurmctld + N slurmd on localhost, partitions `batch` (flexible, default) and `interactive`."""

    def __init__(self, root: Path, nodes: tuple[str, ...] = ("hc1", "hc2", "hc3")):
        self.root = Path(root)
        self.nodes = nodes
        self.conf = self.root / "slurm.conf"
        self.ctld_port = _free_port()
        self.node_ports = {n: _free_port() for n in nodes}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.ctld: subprocess.Popen | None = None
        self.slurmds: dict[str, subprocess.Popen] = {}

    def write_conf(self) -> None:
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        r = self.root
        node_lines = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={p} CPUs=1 "
            f"RealMemory=100 State=UNKNOWN" for n, p in self.node_ports.items())
        names = ",".join(self.nodes)
        self.conf.write_text(f"""\
ClusterName=heattest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
SlurmctldTimeout=10
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=2
SchedulerParameters=sched_interval=1
{node_lines}
PartitionName=batch Nodes={names} Default=YES MaxTime=INFINITE State=UP PreemptMode=REQUEUE
PartitionName=interactive Nodes={names} MaxTime=INFINITE State=UP
""")

    def start_ctld(self) -> None:
        self.ctld = subprocess.Popen([_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "log" / "slurmctld.err", "ab"))

    def stop_ctld(self) -> None:
        if self.ctld is not None and self.ctld.poll() is None:
            self.ctld.terminate()
            try:
                self.ctld.wait(10)
            except subprocess.TimeoutExpired:
                self.ctld.kill()
                self.ctld.wait(5)
        self.ctld = None

    def start(self) -> None:
        ensure_munge()
        self.write_conf()
        self.start_ctld()
        for n in self.nodes:
            (self.root / "spool" / n).mkdir(parents=True, exist_ok=True)
            self.slurmds[n] = subprocess.Popen(
                [_sbin("slurmd"), "-D", "-N", n, "-f", str(self.conf)], env=self.env,
                stdout=subprocess.DEVNULL, stderr=open(self.root / "log" / f"slurmd-{n}.err", "ab"))
        self.wait_nodes_idle()

    def run(self, *args: str, check: bool = True, timeout: float = 15) -> str:
        # cwd: sbatch writes a job's slurm-N.out into the directory it was submitted from.
        p = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout,
                           cwd=self.root)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip() or p.stdout.strip()}")
        return p.stdout

    def node_states(self) -> dict[str, str]:
        out = self.run("sinfo", "-N", "-h", "-o", "%N %T", check=False)
        return {n: s for n, s in (line.split()[:2] for line in out.splitlines() if line.strip())}

    def wait_nodes_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            if all(states.get(n, "").startswith("idle") for n in self.nodes):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm nodes not idle after {timeout} s: {states}; "
                                   f"logs in {self.root / 'log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        # Jobs' slurmstepd detach from slurmd: cancel first or they linger (PROTOCOLS.md).
        try:
            self.run("scancel", "--full", "-u", "root", check=False, timeout=10)
            self.run("scancel", "-u", "root", check=False, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.3)
        for p in self.slurmds.values():
            if p.poll() is None:
                p.terminate()
        for p in self.slurmds.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.stop_ctld()
