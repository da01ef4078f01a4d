"""The transition table's guards, and the diagram in the README kept equal to the generated one."""

from __future__ import annotations

import re
from dataclasses import replace

from controller.core.modes import Mode, ModeContext, ModeMachine, mermaid_diagram, refusal_for_request
from tests.step_helpers import ROOT

CTX = ModeContext(surplus_w=0.0, tank_soc=0.5, degrade_causes=(), causes_clear_for_s=1000.0,
                  latched_trips=(), in_mode_for_s=1000.0, surplus_enter_w=3000.0, surplus_exit_w=-2000.0,
                  tank_full_soc=0.95, tank_resume_soc=0.8, min_dwell_s=300.0, exit_dwell_s=120.0)


def test_readme_diagram_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", readme, re.S)
    assert block, "README has no mermaid block"
    assert block.group(1).strip() == mermaid_diagram().strip()


def test_table_transitions():
    m = ModeMachine()
    cases = [
        (Mode.NORMAL, dict(surplus_w=5000.0), Mode.BUFFER_CHARGING),
        (Mode.NORMAL, dict(surplus_w=5000.0, in_mode_for_s=10.0), Mode.NORMAL),  # dwell
        (Mode.NORMAL, dict(surplus_w=5000.0, tank_soc=0.97), Mode.BYPASS),
        (Mode.BUFFER_CHARGING, dict(surplus_w=-3000.0), Mode.NORMAL),
        (Mode.BUFFER_CHARGING, dict(surplus_w=-1000.0), Mode.BUFFER_CHARGING),  # hysteresis band
        (Mode.BUFFER_CHARGING, dict(tank_soc=0.96), Mode.BYPASS),
        (Mode.BYPASS, dict(surplus_w=5000.0, tank_soc=0.85), Mode.BYPASS),  # above resume
        (Mode.BYPASS, dict(surplus_w=5000.0, tank_soc=0.7), Mode.BUFFER_CHARGING),
        (Mode.BYPASS, dict(degrade_causes=("x",), in_mode_for_s=0.0), Mode.SAFE_DEGRADE),  # no dwell
        (Mode.SAFE_DEGRADE, dict(causes_clear_for_s=60.0), Mode.SAFE_DEGRADE),
        (Mode.SAFE_DEGRADE, dict(causes_clear_for_s=130.0, latched_trips=("leak",)), Mode.SAFE_DEGRADE),
        (Mode.SAFE_DEGRADE, dict(causes_clear_for_s=130.0), Mode.NORMAL),
        (Mode.NORMAL, dict(surplus_w=None), Mode.NORMAL),  # unknown surplus: stay
    ]
    for mode, over, expected in cases:
        got, _ = m.next_mode(mode, replace(CTX, **over), held=False)
        assert got is expected, (mode, over, got)
    # Held: only safe_degrade is automatic.
    assert m.next_mode(Mode.NORMAL, replace(CTX, surplus_w=5000.0), held=True)[0] is Mode.NORMAL
    assert m.next_mode(Mode.NORMAL, replace(CTX, degrade_causes=("x",)), held=True)[0] is Mode.SAFE_DEGRADE


def test_requests_refused_for_a_reason():
    assert refusal_for_request(Mode.SAFE_DEGRADE, replace(CTX, latched_trips=("leak",))) is None
    assert "leak" in refusal_for_request(Mode.NORMAL, replace(CTX, latched_trips=("leak",)))
    assert "cause" in refusal_for_request(Mode.BYPASS, replace(CTX, degrade_causes=("sensor",)))
    assert "full" in refusal_for_request(Mode.BUFFER_CHARGING, replace(CTX, tank_soc=0.99))
    assert refusal_for_request(Mode.BYPASS, CTX) is None
