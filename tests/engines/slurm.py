"""A real Slurm (Debian 12: slurmctld, slurmd, slurm-client, munge 22.05) on 127.0.0.1.

    with SlurmCluster(tmp_path / "slurm", nodes=["n1", "n2", "n3"],
                      partitions={"batch": ["n1", "n2"], "small": ["n3"]}) as cluster:
        job = cluster.sbatch("--partition=small", wrap="hostname")
        cluster.wait_job_state(job, "COMPLETED")
        cluster.run("scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=maint")
        cluster.stop_controller(); ...; cluster.start_controller()

One slurmctld and one `slurmd -D -N NAME` per node, all children of the test process, with a
generated slurm.conf, state, spool, pid files and logs under the given directory; client tools find
that conf through `cluster.env["SLURM_CONF"]` (pass `env=cluster.env` to anything you start).
Every daemon listens on 127.0.0.1 only: `CommunicationParameters=NoInAddrAny` makes the slurmds
bind their NodeAddr=127.0.0.1, and `NoCtldInAddrAny` makes slurmctld bind the address of
SlurmctldHost=localhost(127.0.0.1) (slurm.conf(5): NoInAddrAny is "for all daemons/clients except
for the slurmctld"; without NoCtldInAddrAny slurmctld 22.05 binds 0.0.0.0:SlurmctldPort).
tests/test_engines_loopback.py checks the daemons' sockets.

munge: one daemon per host (the key and /run/munge/munge.socket.2 are shared). `ensure_munge()`
reuses a munged that answers `munge -n | unmunge`, else makes the key and directories and starts
munged as the munge user; that munged is deliberately left running (other clusters use it).

Coexistence: several clusters can run at once on one host, also with the same node names: each has
its own ports (chosen free), ClusterName (unique per instance), StateSaveLocation, SlurmdSpoolDir
(where slurmstepd's Unix sockets live) and pid files; only munge is shared. Jobs' output defaults to
`<dir>/jobs/slurm-%j.out` (plain sbatch writes slurm-JOBID.out into its working directory).

Needs root (slurmd starts jobs as their submitting user); skips otherwise, or fails when CI is set.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tests.engines import (HOST, EngineError, Process, free_port, root_or_skip, tail,
                           wait_until, which_or_skip)

# (binary, Debian package)
BINARIES = (("slurmctld", "slurmctld"), ("slurmd", "slurmd"), ("slurmstepd", "slurmd"),
            ("sinfo", "slurm-client"), ("squeue", "slurm-client"), ("scontrol", "slurm-client"),
            ("sbatch", "slurm-client"), ("scancel", "slurm-client"), ("munged", "munge"),
            ("munge", "munge"), ("unmunge", "munge"), ("mungekey", "munge"))

# A Unix socket path holds at most 107 bytes; slurmstepd makes `<spool>/<node>_<job>.<step>`.
_SOCKET_PATH_MAX = 107
_STEP_SOCKET_SUFFIX = 40  # "/" + node name (≤ 16) + "_4294967295.4294967291" with room to spare

TERMINAL_JOB_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                       "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def require_binaries() -> dict[str, str]:
    """Paths of the Slurm and munge binaries (skip, or fail under CI, naming the package)."""
    return {b: which_or_skip(b, pkg) for b, pkg in BINARIES}


def munge_works() -> bool:
    """`munge -n | unmunge` succeeds against the host's munged."""
    try:
        enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if enc.returncode != 0:
            return False
        dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=5)
        return dec.returncode == 0 and b"Success" in dec.stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_munge(timeout: float = 15) -> str:
    """Make the host's munged answer; "reused" or "started". Root only when it must start it.

    Recipe (PROTOCOLS.md): /run/munge and /var/log/munge (and /var/lib/munge, /etc/munge) owned by
    munge, /etc/munge/munge.key from `mungekey -c` mode 0400 owned by munge, munged run as munge.
    """
    if munge_works():
        return "reused"
    root_or_skip("starting munged (no running munged answers `munge -n | unmunge`)")
    bins = require_binaries()
    for d, mode in (("/etc/munge", 0o700), ("/var/lib/munge", 0o700), ("/var/log/munge", 0o700),
                    ("/run/munge", 0o755)):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
        os.chmod(d, mode)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run([bins["mungekey"], "--create", "--keyfile", str(key)], check=True,
                       timeout=30, capture_output=True)
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    # munged daemonizes itself (and is meant to outlive this test run: one per host).
    p = subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", bins["munged"]],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0 and not munge_works():
        raise EngineError(f"munged did not start: {p.stderr.strip() or p.stdout.strip()}")
    wait_until(munge_works, timeout, 0.1, "munge -n | unmunge after starting munged",
               on_timeout=lambda: tail(Path("/var/log/munge/munged.log")))
    return "started"


def _proc_env_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


class SlurmCluster:
    """slurmctld + one slurmd per node on 127.0.0.1, in `root` (created if needed).

    nodes: node names (each a `slurmd -N NAME` with its own Port); partitions: {name: [nodes]}
    (default: {"batch": all nodes}); the first partition, or `default_partition`, is Default=YES.
    partition_options / node_options: extra `Key=Value ...` text per partition / node (e.g.
    "PreemptMode=REQUEUE", "Weight=10"); extra_conf: lines appended to slurm.conf.
    cluster_name: default: the name in <root>/state/clustername when the root was used before
    (its state, jobs and drains included, comes back), else a random one.
    message_timeout: slurm.conf MessageTimeout (Slurm's default 10). While slurmctld is down,
    squeue/sinfo/scontrol show/sbatch retry for about MessageTimeout-1 seconds (9 s by default)
    before "Unable to contact slurm controller (connect failure)"; `scontrol ping` answers at once.
    """

    def __init__(self, root: str | os.PathLike, nodes: Sequence[str] = ("n1", "n2", "n3"),
                 partitions: Mapping[str, Sequence[str]] | None = None, *,
                 default_partition: str | None = None, cpus: int = 1, real_memory: int = 100,
                 partition_options: Mapping[str, str] | None = None,
                 node_options: Mapping[str, str] | None = None, extra_conf: str = "",
                 cluster_name: str | None = None, message_timeout: int = 10,
                 start_timeout: float = 60.0):
        self.root = Path(root).absolute()
        self.nodes = list(nodes)
        if not self.nodes or len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"nodes must be distinct and non-empty: {self.nodes}")
        self.partitions = {k: list(v) for k, v in (partitions or {"batch": self.nodes}).items()}
        for part, members in self.partitions.items():
            unknown = set(members) - set(self.nodes)
            if unknown:
                raise ValueError(f"partition {part}: unknown nodes {sorted(unknown)}")
        self.default_partition = default_partition or next(iter(self.partitions))
        self.cpus, self.real_memory = cpus, real_memory
        self.partition_options = dict(partition_options or {})
        self.node_options = dict(node_options or {})
        self.extra_conf = extra_conf
        self.conf = self.root / "slurm.conf"
        self.log_dir = self.root / "log"
        self.state_dir = self.root / "state"
        self.jobs_dir = self.root / "jobs"
        # A root used before keeps its state (jobs, drains) and must keep its name: slurmctld
        # refuses to start ("CLUSTER NAME MISMATCH") when state/clustername names another cluster.
        previous = self.state_dir / "clustername"
        self.cluster_name = (cluster_name
                             or (previous.read_text().strip() if previous.exists() else "")
                             or f"t{secrets.token_hex(4)}")
        self.message_timeout = message_timeout
        self.start_timeout = start_timeout
        self._own_spool: Path | None = None
        self.spool_root = self._pick_spool_root()
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        # Environment of the test process must not redirect the client tools elsewhere.
        for k in ("SLURM_CLUSTERS", "SLURM_PARTITION", "SBATCH_PARTITION", "SQUEUE_FORMAT",
                  "SINFO_FORMAT", "SQUEUE_SORT"):
            self.env.pop(k, None)
        self.ctld_port = 0
        self.node_ports: dict[str, int] = {}
        self.controller: Process | None = None
        self.slurmds: dict[str, Process] = {}
        self.munge = ""
        self._bins: dict[str, str] = {}

    # ----- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, attempts: int = 3) -> None:
        """Munge, conf, slurmctld, slurmds; returns when every node is idle. Retries with fresh
        ports when a daemon dies at start-up (a port taken between choosing and binding)."""
        root_or_skip("slurmd starts jobs as their submitting user")
        self._bins = require_binaries()
        self.munge = ensure_munge()
        for d in (self.root, self.log_dir, self.state_dir, self.jobs_dir):
            d.mkdir(parents=True, exist_ok=True)
        for n in self.nodes:
            (self.spool_root / n).mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            self.ctld_port = free_port()
            self.node_ports = {n: free_port() for n in self.nodes}
            self.write_conf()
            try:
                self.start_controller()
                for n in self.nodes:
                    self.start_node(n, wait=False)
                self.wait_nodes_idle(self.start_timeout)
                return
            except (EngineError, TimeoutError):
                dead = [p for p in self._processes() if p.exited() is not None]
                self._stop_daemons()
                if not dead or attempt == attempts or not self._port_clash(dead):
                    raise

    def _port_clash(self, dead: list[Process]) -> bool:
        return any("Address already in use" in p.log.read_text(errors="replace")
                   for p in dead if p.log.exists())

    def write_conf(self) -> None:
        r = self.root
        spool = self.spool_root
        lines = [
            f"ClusterName={self.cluster_name}",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
            f"StateSaveLocation={self.state_dir}",
            f"SlurmdSpoolDir={spool}/%n",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={self.log_dir}/slurmctld.log",
            f"SlurmdLogFile={self.log_dir}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "MailProg=/bin/true",
            f"MessageTimeout={self.message_timeout}",
            "SlurmctldTimeout=10",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "MinJobAge=300",
            "KillWait=2",
            "",
        ]
        for n in self.nodes:
            lines.append(f"NodeName={n} NodeHostname=localhost NodeAddr={HOST} "
                         f"Port={self.node_ports[n]} CPUs={self.cpus} "
                         f"RealMemory={self.real_memory} State=UNKNOWN "
                         f"{self.node_options.get(n, '')}".rstrip())
        for part, members in self.partitions.items():
            default = "YES" if part == self.default_partition else "NO"
            lines.append(f"PartitionName={part} Nodes={','.join(members)} Default={default} "
                         f"MaxTime=INFINITE State=UP "
                         f"{self.partition_options.get(part, '')}".rstrip())
        if self.extra_conf:
            lines.append(self.extra_conf.rstrip())
        self.conf.write_text("\n".join(lines) + "\n")

    def start_controller(self, wait: bool = True) -> None:
        """Start slurmctld (-D: foreground). It restores its state (jobs, node states and reasons)
        from StateSaveLocation, so this is also the restart after stop_controller()."""
        if self.controller is None:
            self.controller = Process(
                "slurmctld", [self._bins["slurmctld"], "-D", "-i", "-f", str(self.conf)],
                self.log_dir / "slurmctld.out", env=self.env, cwd=self.root)
        self.controller.start()
        if wait:
            self.wait_controller_up()
            self.wait_nodes_registered()

    def stop_controller(self, grace: float = 15.0) -> None:
        """Stop slurmctld only (SIGTERM: it saves its state); slurmds and jobs keep running."""
        if self.controller is not None:
            self.controller.stop(grace)

    def controller_up(self) -> bool:
        p = self.run("scontrol", "ping", check=False, timeout=10)
        return p.returncode == 0 and "is UP" in p.stdout

    def wait_controller_up(self, timeout: float = 30.0) -> None:
        def up() -> bool:
            if self.controller is not None:
                self.controller.check_alive()
            return self.controller_up()
        wait_until(up, timeout, 0.2, "slurmctld answering `scontrol ping`",
                   on_timeout=lambda: tail(self.log_dir / "slurmctld.log"))

    def wait_nodes_registered(self, timeout: float = 30.0) -> None:
        """Every node whose slurmd runs has registered (after a controller restart, nodes show
        `unknown` until their slurmd answers; drained/allocated states come back from the state
        files)."""
        running = [n for n, p in self.slurmds.items() if p.running]

        def registered() -> bool:
            states = self.node_states()
            return all(states.get(n) and not states[n].startswith("unknown") for n in running)
        wait_until(registered, timeout, 0.2, f"nodes {running} registered with slurmctld",
                   on_timeout=lambda: f"states: {self.node_states()}")

    def start_node(self, name: str, wait: bool = True) -> None:
        if name not in self.slurmds:
            self.slurmds[name] = Process(
                f"slurmd {name}", [self._bins["slurmd"], "-D", "-N", name, "-f", str(self.conf)],
                self.log_dir / f"slurmd-{name}.out", env=self.env, cwd=self.root)
        self.slurmds[name].start()
        if wait:
            self.wait_nodes_idle(self.start_timeout, [name])

    def stop_node(self, name: str, grace: float = 15.0) -> None:
        """Stop one slurmd (its running jobs' slurmstepd carry on, as on a real node)."""
        if name in self.slurmds:
            self.slurmds[name].stop(grace)

    def close(self) -> None:
        """Cancel every job, wait for the steps to end, stop the daemons, reap what is left."""
        try:
            self.cancel_all_jobs()
        finally:
            self._stop_daemons()
            self._kill_leftovers()
            if self._own_spool is not None:
                shutil.rmtree(self._own_spool, ignore_errors=True)
                self._own_spool = None

    def cancel_all_jobs(self, timeout: float = 30.0) -> None:
        if not self._processes() or not any(p.running for p in self._processes()):
            return
        if self.controller is not None and not self.controller.running:
            try:  # the test left slurmctld stopped: bring it back to cancel cleanly
                self.start_controller()
            except (EngineError, TimeoutError):
                return
        ids = self.job_ids()
        if ids:
            self.run("scancel", *map(str, ids), check=False, timeout=15)

        def drained() -> bool:
            return not self.job_ids() and not self._step_sockets()
        try:
            wait_until(drained, timeout, 0.2, "jobs cancelled and their steps ended")
        except TimeoutError:
            pass  # _kill_leftovers() takes care of stray steps

    def _stop_daemons(self) -> None:
        for p in self.slurmds.values():
            p.signal(signal.SIGTERM)
        for p in self.slurmds.values():
            p.stop()
        self.stop_controller()

    def _processes(self) -> list[Process]:
        return ([self.controller] if self.controller else []) + list(self.slurmds.values())

    # ----- lingering processes ---------------------------------------------------------------

    def lingering(self) -> list[int]:
        """PIDs of slurm daemons / slurmstepd (and their descendants) of THIS cluster still alive:
        found by SLURM_CONF=<our conf> in their environment (slurmstepd inherits slurmd's)."""
        entry = f"SLURM_CONF={self.conf}".encode()
        me = os.getpid()
        roots = [int(d.name) for d in Path("/proc").iterdir()
                 if d.name.isdigit() and int(d.name) != me
                 and _proc_comm(int(d.name)) in ("slurmctld", "slurmd", "slurmstepd")
                 and _proc_env_has(int(d.name), entry)]
        kids = _children_map()
        found, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(kids.get(pid, []))
        return sorted(found)

    def _kill_leftovers(self) -> None:
        pids = self.lingering()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                wait_until(lambda: not self.lingering(), 5, 0.1, "leftover slurm processes gone")
                return
            except TimeoutError:
                pids = self.lingering()

    def _step_sockets(self) -> list[Path]:
        return [p for n in self.nodes for p in (self.spool_root / n).glob(f"{n}_*")]

    def _pick_spool_root(self) -> Path:
        spool = self.root / "spool"
        longest = max(len(n) for n in self.nodes)
        if len(str(spool)) + longest + _STEP_SOCKET_SUFFIX <= _SOCKET_PATH_MAX:
            return spool
        # pytest's tmp_path is often too long for slurmstepd's Unix sockets.
        self._own_spool = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
        return self._own_spool

    # ----- client helpers --------------------------------------------------------------------

    def run(self, *cmd: str, check: bool = True, timeout: float = 30.0, input: str | None = None,
            ) -> subprocess.CompletedProcess:
        """Run a command (typically a Slurm client) with this cluster's environment."""
        argv = [str(c) for c in cmd]
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout,
                           input=input, cwd=self.jobs_dir if self.jobs_dir.exists() else None)
        if check and p.returncode != 0:
            raise EngineError(f"{' '.join(argv)} -> {p.returncode}: "
                              f"{p.stderr.strip() or p.stdout.strip()}")
        return p

    def out(self, *cmd: str, check: bool = True, timeout: float = 30.0) -> str:
        """run(...)'s standard output (e.g. `cluster.out("squeue", "-h", "-o", "%i")`)."""
        return self.run(*cmd, check=check, timeout=timeout).stdout

    def sbatch(self, *args: str, wrap: str | None = None, script: str | None = None) -> int:
        """Submit a job; its id. Output goes to <root>/jobs/slurm-%j.out unless -o/--output is
        given. `wrap` is a shell command (sbatch --wrap); `script` a batch script's text."""
        argv = ["sbatch", "--parsable", f"--chdir={self.jobs_dir}"]
        if not any(a == "-o" or a.startswith(("--output", "-o")) for a in args):
            argv.append(f"--output={self.jobs_dir}/slurm-%j.out")
        argv += list(args)
        if wrap is not None:
            argv.append(f"--wrap={wrap}")
        out = self.run(*argv, input=script).stdout.strip()
        return int(out.split(";")[0])

    def job_output(self, job: int) -> str:
        return (self.jobs_dir / f"slurm-{job}.out").read_text(errors="replace")

    def scontrol_show(self, kind: str, name: str | int) -> dict[str, str] | None:
        """`scontrol show KIND NAME -o` as a dict (None when slurmctld does not know it).
        Values may hold spaces (Reason, OS): keys are found as `Word=` after a space."""
        p = self.run("scontrol", "show", kind, str(name), "-o", check=False)
        if p.returncode != 0 or not p.stdout.strip():
            return None
        line = p.stdout.strip().splitlines()[0]
        return dict(part.split("=", 1)
                    for part in re.split(r" (?=[A-Za-z][A-Za-z0-9_:/]*=)", line) if "=" in part)

    def job_state(self, job: int) -> str | None:
        """JobState (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...), None when unknown
        (not submitted, or purged MinJobAge=300 s after it ended; there is no accounting)."""
        info = self.scontrol_show("job", job)
        return info.get("JobState") if info else None

    def job_info(self, job: int) -> dict[str, str] | None:
        return self.scontrol_show("job", job)

    def wait_job_state(self, job: int, states: str | Iterable[str], timeout: float = 30.0) -> str:
        wanted = {states} if isinstance(states, str) else set(states)

        def reached() -> str | None:
            s = self.job_state(job)
            if s in TERMINAL_JOB_STATES and s not in wanted:
                raise EngineError(f"job {job} ended {s}, waiting for {sorted(wanted)}: "
                                  f"{self.job_info(job)}")
            return s if s in wanted else None
        return wait_until(reached, timeout, 0.2, f"job {job} in {sorted(wanted)}",
                          on_timeout=lambda: f"job: {self.job_info(job)}")

    def job_ids(self) -> list[int]:
        """Jobs slurmctld still works on (pending, running, completing, ...)."""
        p = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
        if p.returncode != 0:
            return []
        return [int(x.split("_")[0]) for x in p.stdout.split() if x.split("_")[0].isdigit()]

    def _sinfo_nodes(self, fmt: str) -> dict[str, list[str]]:
        """`sinfo -N` rows by node name, deduplicated (sinfo lists a node once per partition)."""
        p = self.run("sinfo", "-N", "-h", "-o", f"%N|{fmt}", check=False, timeout=10)
        rows: dict[str, list[str]] = {}
        for line in p.stdout.splitlines():
            if "|" in line:
                name, *rest = line.split("|")
                rows.setdefault(name.strip(), [r.strip() for r in rest])
        return rows

    def node_states(self) -> dict[str, str]:
        """{node: sinfo's long state}: idle, allocated, mixed, drained, draining, down*, ..."""
        return {n: v[0] for n, v in self._sinfo_nodes("%T").items()}

    def node_state(self, name: str) -> str | None:
        return self.node_states().get(name)

    def node_reason(self, name: str) -> str | None:
        """The node's Reason (sinfo %E), None when it has none."""
        reason = self._sinfo_nodes("%E").get(name, ["none"])[0]
        return None if reason in ("", "none") else reason

    def wait_node_state(self, name: str, state: str, timeout: float = 30.0) -> str:
        return wait_until(lambda: self.node_state(name) == state and state, timeout, 0.2,
                          f"node {name} {state}",
                          on_timeout=lambda: f"states: {self.node_states()}")

    def wait_nodes_idle(self, timeout: float = 60.0, nodes: Sequence[str] | None = None) -> None:
        want = list(nodes or self.nodes)

        def idle() -> bool:
            for p in self._processes():
                p.check_alive()
            states = self.node_states()
            return all(states.get(n) == "idle" for n in want)
        wait_until(idle, timeout, 0.2, f"nodes {want} idle",
                   on_timeout=lambda: f"states: {self.node_states()}\n"
                                      + tail(self.log_dir / "slurmctld.log"))


def site_cluster(root: str | os.PathLike, nodes: Sequence[str] = ("hc1", "hc2", "hc3")) -> SlurmCluster:
    """The cluster of the workload driver's tests: every node in `batch` (the heat-flexible
    partition, the default, PreemptMode=REQUEUE) and in `interactive`. Start it with start() (or
    `with`); it skips the test when Slurm or root is missing (fails under CI)."""
    nodes = list(nodes)
    return SlurmCluster(root, nodes=nodes, partitions={"batch": nodes, "interactive": nodes},
                        partition_options={"batch": "PreemptMode=REQUEUE"})
