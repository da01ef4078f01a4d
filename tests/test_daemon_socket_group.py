"""The API socket's group (issue 15): a member of that group only can reach the daemon; anyone else
gets one line naming the group that would let them in. Real users and groups (useradd/groupadd),
so this needs root (as here and in CI); skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from controller.daemon.runtime import Daemon, RuntimeOptions, SystemdNotifier
from tests.runtime_fakes import FakeClock, FakeDrivers, load, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="creates users and groups: needs root and useradd/groupadd")

ROOT = Path(__file__).resolve().parents[1]
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
# The client runs as the test users with the system python and a copy of the (stdlib-only) client
# module: the users cannot read the project tree or its venv, as an operator's shell on a plant could.
CLIENT = ("import sys; sys.path.insert(0, sys.argv[2]); from api_client import ApiError, call\n"
          "try:\n    print(call(sys.argv[1], {'op': 'status'})['ok'])\n"
          "except ApiError as exc:\n    print(exc)\n")


@pytest.fixture
def accounts():
    tag = uuid.uuid4().hex[:6]
    group, member, outsider = f"hcops{tag}", f"hcm{tag}", f"hco{tag}"
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", "-G", group, member], check=True)
    subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", outsider], check=True)
    yield group, member, outsider
    for user in (member, outsider):
        subprocess.run(["userdel", user], check=False)
    subprocess.run(["groupdel", group], check=False)


def as_user(user: str, sock: str) -> str:
    libdir = str(Path(sock).parent)
    out = subprocess.run(["runuser", "-u", user, "--", PYTHON, "-c", CLIENT, sock, libdir],
                         capture_output=True, text=True, cwd="/", timeout=30)
    return (out.stdout + out.stderr).strip()


async def test_a_member_of_the_socket_group_only_reaches_the_daemon(tmp_path, accounts):
    group, member, outsider = accounts
    sockdir = Path(tempfile.mkdtemp(prefix="hc-grp-", dir="/tmp"))
    os.chmod(sockdir, 0o755)  # the directory is traversable; the socket's own mode decides
    shutil.copy(ROOT / "controller" / "ops" / "api_client.py", sockdir / "api_client.py")
    os.chmod(sockdir / "api_client.py", 0o644)
    structlog.reset_defaults()
    clock = FakeClock()
    config = write_config(tmp_path, 1.0)
    options = RuntimeOptions(config_path=str(config), state_dir=str(tmp_path / "state"),
                             socket_path=str(sockdir / "heatctl.sock"), socket_group=group)

    async def sleep(dt):
        clock.t += max(dt, 0.0)
        await asyncio.sleep(0.005)

    with capture_logs():
        d = Daemon(options, load(config), clock=clock, wall=clock.wall, sleep=sleep,
                   driver_factory=FakeDrivers(), notifier=SystemdNotifier(env={}), metrics=None)
        await d.start()
        task = asyncio.ensure_future(d.run())
        try:
            assert await asyncio.to_thread(as_user, member, options.socket_path) == "True"
            refused = await asyncio.to_thread(as_user, outsider, options.socket_path)
        finally:
            d.request_stop("test over")
            await asyncio.wait_for(task, 10)
            shutil.rmtree(sockdir, ignore_errors=True)
    assert "permission denied" in refused and refused.count("\n") == 0
