"""Where heatctl finds its files when not told: config, state, socket."""

from __future__ import annotations

import os
from pathlib import Path

# The repository root when running from a checkout (the shipped configs live in config/ there).
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_config_path() -> Path:
    """HEATCTL_CONFIG, else /etc/heatctl/site.yaml if present, else the shipped reference plant."""
    env = os.environ.get("HEATCTL_CONFIG")
    if env:
        return Path(env)
    etc = Path("/etc/heatctl/site.yaml")
    if etc.exists():
        return etc
    return REPO_ROOT / "config" / "reference-plant.yaml"
