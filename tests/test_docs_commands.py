"""Runbooks that cannot drift: every `heatctl ...` command line in docs/ and in README.md's code is
parsed by the real CLI parser (not executed), and the numbers the runbooks quote are the code's."""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from controller.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]

_FENCE = re.compile(r"^```.*?$(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`(heatctl [^`]+)`")


def _commands(text: str) -> list[str]:
    found = list(_SPAN.findall(_FENCE.sub("", text)))
    for block in _FENCE.findall(text):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            # `sudo -u alice heatctl ...`, `runuser -u heatctl -- /opt/heatctl/bin/heatctl ...`
            m = re.search(r"(?:^|\s|/)(heatctl [^#|&;>]*)", line)
            if m and not line.startswith("#"):
                found.append(m.group(1))
    return [c.strip() for c in found]


_PARSER = build_parser()
_VERBS = next(a for a in _PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


def _is_command(cmd: str) -> bool:
    """A command, not prose or printed output that starts with the word heatctl ("heatctl reuses
    98 %"): its first word is an option, a verb, or so close to a verb that it is a typo (which
    then fails to parse, as it should)."""
    words = cmd.split()
    if len(words) < 2:
        return False
    first = words[1].strip("[]")
    return first.startswith("-") or first in _VERBS or bool(
        difflib.get_close_matches(first, list(_VERBS), n=1, cutoff=0.75))


def _all() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for cmd in _commands(path.read_text()):
            if _is_command(cmd):
                out.append((str(path.relative_to(ROOT)), cmd))
    return out


# Placeholders the docs use for what the reader types, and a value of the right type for each.
PLACEHOLDERS = {"ADDR:PORT": "127.0.0.1:9860", "T": "1", "N": "1", "SECONDS": "5", "HOURS": "24"}


COMMANDS = _all()


def test_docs_quote_commands():
    assert len(COMMANDS) >= 20  # the extraction finds them (a broken regex would pass vacuously)


@pytest.mark.parametrize("where,cmd", COMMANDS, ids=[f"{w}:{c[:40]}" for w, c in COMMANDS])
def test_every_documented_command_parses(where, cmd, capsys):
    argv = [PLACEHOLDERS.get(w, w) for w in shlex.split(cmd.replace("[", "").replace("]", ""))[1:]]
    if len(argv) == 1 and argv[0] in _VERBS:
        return  # the verb named in prose ("`heatctl commission`"): it exists
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return
        pytest.fail(f"{where}: `{cmd}` does not parse: {capsys.readouterr().err.strip()}")
    assert getattr(args, "func", None), f"{where}: `{cmd}` names no verb"


def test_backoff_numbers_in_loss_of_network_are_the_codes():
    from controller.site.modbus_schema import ModbusDriverConfig as M  # noqa: N814
    from controller.site.opcua_schema import OpcuaDriverConfig as O  # noqa: N814
    from drivers.ipmi.driver import RECONNECT_BACKOFF_MAX_S, RECONNECT_BACKOFF_MIN_S

    text = " ".join((ROOT / "docs/runbooks/loss-of-network.md").read_text().split())
    ref = yaml.safe_load((ROOT / "config/reference-plant.yaml").read_text())["drivers"]["bms_modbus"]

    def span(lo, hi):
        return f"{lo:g} to {hi:g} s"

    assert f"default {span(M.model_fields['reconnect_min_s'].default, M.model_fields['reconnect_max_s'].default)}" in text
    assert f"reference plant {span(ref['reconnect_min_s'], ref['reconnect_max_s'])}" in text
    assert f"default {span(O.model_fields['reconnect_min_s'].default, O.model_fields['reconnect_max_s'].default)}" in text
    assert f"each BMC {span(RECONNECT_BACKOFF_MIN_S, RECONNECT_BACKOFF_MAX_S)}" in text


def test_runbooks_say_latched_trips_survive_a_restart():
    # The daemon restores latched trips at start (runtime._restore_latched_trips); no runbook may
    # tell the operator otherwise.
    src = (ROOT / "controller/daemon/runtime.py").read_text()
    assert "_restore_latched_trips" in src
    for path in (ROOT / "docs/runbooks").glob("*.md"):
        text = " ".join(path.read_text().split()).lower()
        assert "does not keep latched trips" not in text, path
        assert "not kept across a restart" not in text, path


def test_metrics_port_is_one_everywhere():
    texts = [p.read_text() for p in DOCS] + [(ROOT / "controller/cli/verbs/run.py").read_text()]
    texts += [p.read_text() for p in (ROOT / "systemd").iterdir()]
    for text in texts:
        assert not re.search(r"\b9108\b", text)
