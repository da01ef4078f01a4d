"""The API socket's group comes from the config's `api.socket_group` (default heatctl-operators);
`heatctl run --socket-group` overrides it and '' means none (issue 15)."""

from __future__ import annotations

import pytest

from controller.cli.verbs.run import socket_group
from controller.site.loader import ConfigError, parse_config_text
from tests.step_helpers import REFERENCE


def _config(extra: str = ""):
    return parse_config_text(REFERENCE.read_text() + extra, "site.yaml")


def test_the_default_group_is_heatctl_operators():
    assert socket_group(None, _config()) == "heatctl-operators"


def test_the_config_key_sets_it_and_the_flag_overrides_it():
    cfg = _config("\napi: {socket_group: plantops}\n")
    assert socket_group(None, cfg) == "plantops"
    assert socket_group("night-shift", cfg) == "night-shift"
    assert socket_group("", cfg) is None
    assert socket_group(None, _config("\napi: {socket_group: ''}\n")) is None


def test_an_unknown_api_key_is_refused_with_its_line():
    with pytest.raises(ConfigError) as err:
        _config("\napi: {socket_grup: plantops}\n")
    assert any("api.socket_grup: unknown key" in line for line in err.value.problems)
