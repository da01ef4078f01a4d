"""The servers' power limit, held so that the IT supply stays the policy's margin below the
over-temperature trip; in safe_degrade at most `power.safe_degrade_w`."""

from __future__ import annotations

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.site.models import SiteConfig

_SAFE_DEGRADE = Mode.SAFE_DEGRADE


class PowerCap:
    def __init__(self, site: SiteConfig):
        cap_point = site.loops.power_cap.measurement
        # The high trip on the cap loop's measurement: the cap loop works below its limit.
        overtemp = next(t for t in site.trips.values() if t.kind == "high" and t.point == cap_point)
        self.setpoint = (overtemp.limit or 0.0) - site.policy_settings.cap_margin_k
        pw = site.power
        self.floor, self.max, self.safe = pw.floor_w, pw.max_w, pw.safe_degrade_w

    def __call__(self, mode: Mode, it_supply_c: float | None) -> LoopCall:
        hi = self.safe if mode is _SAFE_DEGRADE else self.max
        return LoopCall(it_supply_c, self.setpoint, self.floor, hi)

    def output(self, cap_w: float, it_supply_c: float | None) -> float:
        """Blind to the IT supply: the cap does not hand power back above the safe level."""
        return cap_w if it_supply_c is not None else min(cap_w, self.safe)
