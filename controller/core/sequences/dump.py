"""D1, the dry cooler's fan, keeps the building return low enough; in safe_degrade, lower still."""

from __future__ import annotations

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.site.models import SiteConfig

# In safe_degrade the dump holds the building return this much below its normal setpoint.
SAFE_DEGRADE_DUMP_OFFSET_K = 10.0

_SAFE_DEGRADE = Mode.SAFE_DEGRADE


class Dump:
    def __init__(self, site: SiteConfig):
        cfg = site.loops.dump
        self.normal_sp = cfg.setpoint + site.policy_settings.dump_offset_k
        self.safe_sp = cfg.setpoint - SAFE_DEGRADE_DUMP_OFFSET_K
        self.lo, self.hi = cfg.output_min, cfg.output_max

    def __call__(self, mode: Mode, b_return_c: float | None) -> LoopCall:
        sp = self.safe_sp if mode is _SAFE_DEGRADE else self.normal_sp
        return LoopCall(b_return_c, sp, self.lo, self.hi)
