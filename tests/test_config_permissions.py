"""/etc/heatctl as installed (systemd/heatctl.tmpfiles.conf): site.yaml readable by the operators'
group, the device credentials by the service's group only (issue 15). Real users and groups
(useradd/groupadd), so this needs root (as here and in CI); skipped with the reason otherwise.

The CLI runs in a child that imports everything as root and then drops to the test user (setgroups,
setgid, setuid): the kernel checks every file access as that user, as for an operator's shell,
while the interpreter and the project tree (under /root here) need not be readable by them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.step_helpers import REFERENCE

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="creates users and groups: needs root and useradd/groupadd")

ROOT = Path(__file__).resolve().parents[1]
# Run the verb once as root (every module imported, nothing left to import lazily from /root),
# then again as the user; only the second run's output is kept.
AS_USER = """
import contextlib, io, os, pwd, sys
from controller import cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        cli.main(sys.argv[2:])
    except SystemExit:
        pass
u = pwd.getpwnam(sys.argv[1])
os.setgroups(os.getgrouplist(u.pw_name, u.pw_gid))
os.setgid(u.pw_gid)
os.setuid(u.pw_uid)
os.chdir("/")
raise SystemExit(cli.main(sys.argv[2:]))
"""


@pytest.fixture
def install():
    """Groups ops (operators) and svc (the service), users member (in ops) and outsider, and an
    /etc/heatctl laid out as the tmpfiles file and the README install it."""
    tag = uuid.uuid4().hex[:6]
    ops, svc, member, outsider = f"hcops{tag}", f"hcsvc{tag}", f"hcm{tag}", f"hco{tag}"
    subprocess.run(["groupadd", ops], check=True)
    subprocess.run(["groupadd", svc], check=True)
    subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", "-G", ops, member], check=True)
    subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", outsider], check=True)
    base = Path(tempfile.mkdtemp(prefix="hc-perm-", dir="/tmp"))
    os.chmod(base, 0o755)
    etc = base / "heatctl"
    (etc / "credentials").mkdir(parents=True)
    text = REFERENCE.read_text().replace("config/credentials/sim-bmc.yaml", str(etc / "credentials" / "bmc.yaml"))
    (etc / "site.yaml").write_text(text)
    shutil.copy(ROOT / "config" / "credentials" / "sim-bmc.yaml", etc / "credentials" / "bmc.yaml")
    for path, group, mode in ((etc, ops, 0o750), (etc / "site.yaml", ops, 0o640),
                              (etc / "credentials", svc, 0o750), (etc / "credentials" / "bmc.yaml", svc, 0o640)):
        shutil.chown(path, "root", group)
        os.chmod(path, mode)
    yield etc, ops, svc, member, outsider
    for user in (member, outsider):
        subprocess.run(["userdel", user], check=False)
    for group in (ops, svc):
        subprocess.run(["groupdel", group], check=False)
    shutil.rmtree(base, ignore_errors=True)


def heatctl_as(user: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", AS_USER, user, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_an_operator_reads_site_yaml_but_not_the_device_credentials(install):
    etc, ops, svc, member, _ = install
    site = str(etc / "site.yaml")
    p = heatctl_as(member, "check-config", "--config", site)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
    # points: the config loads; the BMCs' points say which file keeps them out and who may read
    # it; the other drivers are still read (nothing listens on their ports here: lost).
    p = heatctl_as(member, "points", "--config", site, "--settle", "0", "--json")
    assert "Traceback" not in p.stderr, p.stderr
    rows = {r["point"]: r for r in json.loads(p.stdout)["points"]}
    bmc = rows["srv1_power"]
    cred = str(etc / "credentials")
    assert bmc["quality"] == "lost" and cred in bmc["reason"] and f"root:{svc}" in bmc["reason"]
    assert f"join group {svc}" in bmc["reason"] and "\n" not in bmc["reason"]
    assert rows["it_supply_temp"]["reason"] and "permission" not in rows["it_supply_temp"]["reason"]


def test_someone_outside_the_operators_gets_one_line_naming_the_folder_and_group(install):
    etc, ops, _, _, outsider = install
    p = heatctl_as(outsider, "points", "--config", str(etc / "site.yaml"))
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"{etc / 'site.yaml'}: permission denied; its folder {etc} is 0750 root:{ops}: "
                               f"join group {ops} (sudo usermod -aG {ops} $USER"), p.stderr


def test_the_state_directory_is_the_services_and_says_so(install, tmp_path):
    # /var/lib/heatctl is 0750 heatctl:heatctl (tmpfiles): config-history and report name it and
    # the way in (the service's group, or running as the service) instead of a traceback.
    etc, ops, svc, member, _ = install
    state = etc.parent / "state"
    state.mkdir()
    (state / "heatctl.sqlite3").write_bytes(b"")
    shutil.chown(state, "root", svc)
    os.chmod(state, 0o750)
    for argv in (["config-history", "--state-dir", str(state)],
                 ["report", "--month", "2026-01", "--state-dir", str(state), "--out", "/tmp"]):
        p = heatctl_as(member, *argv)
        assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
        assert f"its folder {state} is 0750 root:{svc}: join group {svc}" in p.stderr, p.stderr
