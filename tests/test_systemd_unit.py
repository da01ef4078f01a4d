"""The systemd unit, sysusers and tmpfiles files: systemd's own tools accept them, the exposure
score stays at or below 2.5, and the settings the daemon depends on are there.

Needs systemd-analyze (Debian: package `systemd`); the checks that use it are skipped without it.
No systemd runs as PID 1 here: verify and security --offline work on a unit file in any folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "heatctl.service"
SYSUSERS = ROOT / "systemd" / "heatctl.sysusers.conf"
TMPFILES = ROOT / "systemd" / "heatctl.tmpfiles.conf"
INSTALLED_BINARY = "/usr/local/bin/heatctl"

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt package systemd)")
# Exposure threshold on systemd-analyze's x10 scale: 25 means an overall score of 2.5.
THRESHOLD_X10 = 25


def directives(text: str) -> dict[str, list[str]]:
    """Key -> values in order (systemd allows a key more than once)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def runnable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here.

    `systemd-analyze verify` fails when ExecStart's binary does not exist, and /usr/local/bin/heatctl
    exists only on an installed host, so the test verifies a copy whose ExecStart names the venv's
    `heatctl` entry point (or this Python) instead; nothing else in the unit is changed.
    """
    exe = Path(sys.executable).with_name("heatctl")
    target = str(exe) if exe.exists() else f"{sys.executable} -m controller.cli"
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_BINARY} ") == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={INSTALLED_BINARY} ", f"ExecStart={target} "))
    return copy


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    copy = runnable_copy(tmp_path)
    p = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    # Unknown or misspelt directives are only warnings: fail on any line about this unit.
    assert not [l for l in (p.stdout + p.stderr).splitlines() if UNIT.name in l], p.stdout + p.stderr


@needs_analyze
def test_exposure_score_at_most_2_5(tmp_path):
    copy = runnable_copy(tmp_path)
    p = subprocess.run([ANALYZE, "security", "--offline=yes", f"--threshold={THRESHOLD_X10}", str(copy)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout)
    assert m is not None, p.stdout
    assert float(m.group(1)) <= THRESHOLD_X10 / 10


def test_the_unit_says_what_the_daemon_depends_on():
    d = directives(UNIT.read_text())
    one = lambda k: d[k][-1]  # noqa: E731
    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec") == "10"
    assert one("Restart") == "on-failure"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("ExecStart") == (f"{INSTALLED_BINARY} run --config /etc/heatctl/site.yaml --state-dir /var/lib/heatctl"
                                " --socket /run/heatctl/heatctl.sock --metrics 127.0.0.1:9860")
    assert (one("User"), one("Group")) == ("heatctl", "heatctl")
    assert one("ConfigurationDirectory") == one("StateDirectory") == one("RuntimeDirectory") == "heatctl"
    # Exactly the families the drivers, the socket and sd_notify need.
    assert one("RestrictAddressFamilies").split() == ["AF_INET", "AF_UNIX"]
    assert one("CapabilityBoundingSet") == ""
    assert one("AmbientCapabilities") == ""
    for key, value in {"ProtectSystem": "strict", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "MemoryDenyWriteExecute": "yes", "PrivateDevices": "yes", "ProtectHome": "yes"}.items():
        assert one(key) == value, key
    assert "@system-service" in d["SystemCallFilter"]


def test_sysusers_and_tmpfiles_apply_to_an_empty_root(tmp_path):
    sysusers, tmpfiles = shutil.which("systemd-sysusers"), shutil.which("systemd-tmpfiles")
    if sysusers is None or tmpfiles is None:
        pytest.skip("systemd-sysusers/systemd-tmpfiles not installed (apt package systemd)")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for src, sub in ((SYSUSERS, "sysusers.d"), (TMPFILES, "tmpfiles.d")):
        (root / "usr/lib" / sub).mkdir(parents=True)
        shutil.copy(src, root / "usr/lib" / sub / "heatctl.conf")
    p = subprocess.run([sysusers, f"--root={root}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    group = {l.split(":")[0]: l.split(":") for l in (root / "etc/group").read_text().splitlines()}
    assert set(group) >= {"heatctl", "heatctl-operators"}
    assert passwd["heatctl"][3] == group["heatctl"][2]  # primary group heatctl
    assert passwd["heatctl"][6] == "/usr/sbin/nologin"
    assert "heatctl" in group["heatctl-operators"][3].split(",")
    if os.geteuid() != 0:
        return  # tmpfiles would need to chown to heatctl
    p = subprocess.run([tmpfiles, f"--root={root}", "--create", "heatctl.conf"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    uid, gid, ops = int(passwd["heatctl"][2]), int(group["heatctl"][2]), int(group["heatctl-operators"][2])
    # Operators may enter /etc/heatctl (site.yaml), never credentials/ (the service's group only).
    for path, owner, g, mode in (("etc/heatctl", 0, ops, 0o750), ("etc/heatctl/credentials", 0, gid, 0o750),
                                 ("var/lib/heatctl", uid, gid, 0o750)):
        st = (root / path).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (owner, g, mode), path


def test_documentation_names_a_file_the_wheel_installs():
    # The wheel installs the repository's docs/ under <venv>/share/heatctl (pyproject.toml
    # data-files); the README installs the wheel into the venv /opt/heatctl.
    import tomllib
    docs = re.findall(r"^Documentation=file:///opt/heatctl/share/heatctl/(\S+)$", UNIT.read_text(), re.M)
    assert docs, "Documentation= should name a file under /opt/heatctl/share/heatctl/"
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    for rel in docs:
        assert (ROOT / rel).is_file(), rel
        folder = "share/heatctl/" + str(Path(rel).parent)
        assert any(Path(rel).match(g) for g in data_files.get(folder, [])), f"{rel} is not in the wheel"
