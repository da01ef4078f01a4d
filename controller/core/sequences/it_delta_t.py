"""P1 holds the IT loop's temperature difference (return - supply) at the policy's dT."""

from __future__ import annotations

from controller.core.sequences import LoopCall
from controller.site.models import SiteConfig


class ItDeltaT:
    def __init__(self, site: SiteConfig):
        cfg = site.loops.it_delta_t
        self.setpoint, self.lo, self.hi = site.policy_settings.it_delta_t_k, cfg.output_min, cfg.output_max

    def __call__(self, it_return_c: float | None, it_supply_c: float | None) -> LoopCall:
        """A bad temperature at either end: no dT, the loop holds its output."""
        dT = it_return_c - it_supply_c if it_return_c is not None and it_supply_c is not None else None
        return LoopCall(dT, self.setpoint, self.lo, self.hi)
