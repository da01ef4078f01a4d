"""Fixtures shared across test modules (pytest finds them here; no test module imports another's).

The reference plant's site config and a controller on it. Helpers that are not fixtures stay in
plain modules: tests/step_helpers.py (the reference plant's good readings, `snap`), tests/step_table.py
(per-tick tables).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.step_helpers import make_controller, reference_site


@pytest.fixture(scope="session")
def ref_site():
    """The reference plant's site config (config/reference-plant.yaml), loaded once."""
    return reference_site()


@pytest.fixture(scope="session")
def ref_ctrl():
    """A controller on the reference plant (stateless between steps: safe to share)."""
    return make_controller()



@pytest.fixture
def sockdir():
    """A short temporary directory for Unix sockets (their paths are limited to 108 bytes, and
    pytest's tmp_path can be longer)."""
    d = tempfile.mkdtemp(prefix="hc-api-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _structlog_defaults_after_each_test():
    """A verb run in-process (`points` filters structlog to errors; `run` configures rendering)
    configures structlog for the whole worker process: put the defaults back after every test, so
    that a later test's capture_logs sees every level it logs."""
    yield
    import structlog

    structlog.reset_defaults()
