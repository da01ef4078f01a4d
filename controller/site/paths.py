"""Where heatctl finds its files when not told: config, state, socket."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]
# Where the shipped files (config/, docs/, systemd/, in the repository's layout) are: the checkout
# when running from one (an editable install), else what the wheel installed as data files under
# <prefix>/share/heatctl (pyproject.toml [tool.setuptools.data-files]).
INSTALLED_DATA = Path(sysconfig.get_path("data")) / "share" / "heatctl"
REPO_ROOT = _CHECKOUT if (_CHECKOUT / "config" / "reference-plant.yaml").is_file() else INSTALLED_DATA
DATA_ROOT = REPO_ROOT


def default_config_path() -> Path:
    """HEATCTL_CONFIG, else /etc/heatctl/site.yaml if present, else the shipped reference plant."""
    env = os.environ.get("HEATCTL_CONFIG")
    if env:
        return Path(env)
    etc = Path("/etc/heatctl/site.yaml")
    if etc.exists():
        return etc
    return REPO_ROOT / "config" / "reference-plant.yaml"


def resolve_config_file(path: str, config_path: str | Path | None) -> str:
    """A file path from a site config (credentials, certificates): absolute as written; a relative
    one is looked up in the current directory, the config file's directory, then the repository
    root (where the shipped reference config's `config/credentials/...` lives). A path found in
    none of them is returned as written, for the caller to report."""
    p = Path(path)
    if p.is_absolute():
        return path
    bases = [Path.cwd()]
    if config_path is not None:
        bases.append(Path(config_path).resolve().parent)
    bases.append(REPO_ROOT)
    for base in bases:
        if (base / p).exists():
            return str(base / p)
    return path
