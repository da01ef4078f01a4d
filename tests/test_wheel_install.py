"""The wheel carries what the verbs need: built from this tree, installed (not editable) into a
fresh venv, and run from an empty folder: check-config, simulate --window, cost and demo.

The fresh venv takes its third-party dependencies from this venv's site-packages through a .pth
line (a path only: this venv's own .pth files, among them the editable install of heatctl, are not
run for it), so that the test needs no network and no minutes of installing; heatctl itself comes
only from the wheel (checked: `controller` imports from the new venv's site-packages).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, timeout=120):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def test_wheel_in_a_fresh_venv_from_an_empty_folder(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT],
         cwd=tmp_path, timeout=180)
    (wheel,) = wheels.glob("heatctl-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path).stdout.strip())
    (site / "heatctl-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel], tmp_path)

    empty = tmp_path / "empty"
    empty.mkdir()
    heatctl = env_dir / "bin" / "heatctl"
    where = _run([py, "-c", "import controller; print(controller.__file__)"], empty).stdout
    assert where.startswith(str(site)), where  # heatctl from the wheel, not from the checkout

    _run([heatctl, "--version"], empty)
    out = _run([heatctl, "check-config"], empty).stdout
    assert str(env_dir / "share" / "heatctl" / "config" / "reference-plant.yaml") in out and "OK" in out
    _run([heatctl, "check-config", "--config", env_dir / "share/heatctl/config/templates/gpu-pod-pool.yaml"], empty)
    _run([heatctl, "simulate", "--scenario", "pool-year", "--window", "--hours", "3", "--report", "r"], empty)
    assert json.loads((empty / "r" / "kpis.json").read_text())
    cost = _run([heatctl, "cost", "--scenario", "pool-year", "--hours", "3", "--tick", "60"], empty).stdout
    assert "EUR" in cost
    _run([heatctl, "demo", "--duration", "3"], empty)
    # The files the install section copies are there.
    for rel in ("systemd/heatctl.service", "systemd/heatctl.sysusers.conf", "systemd/heatctl.tmpfiles.conf",
                "docs/grafana/heatctl-dashboard.json", "docs/prometheus/heatctl-alerts.yaml",
                "docs/runbooks/README.md", "config/cost-model.yaml", "config/commissioning/reference-plant.yaml"):
        assert (env_dir / "share" / "heatctl" / rel).is_file(), rel
