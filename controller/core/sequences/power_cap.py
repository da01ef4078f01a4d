"""The servers' power limit, held so that the IT supply stays the policy's margin below the
over-temperature trip; in safe_degrade at most `power.safe_degrade_w`.

A plan's slot may change the policy, and with it the target (54 degC under heat_first, 52 under
compute_first on the reference plant). A higher target applies at once; a lower one is reached at
TARGET_FALL_K_PER_S from the last tick's target, outside safe_degrade: the IT loop that heat_first
ran warm has the minutes the dump and P1 need to cool it (2 to 3 minutes from 52 to 49 degC in the
pool year) instead of the servers being capped under a target that moved beneath a supply it had
just allowed. The target never leaves the span of the two policies' targets, both below the trip's
alarm, and the trips act on their own."""

from __future__ import annotations

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.site.models import SiteConfig

_SAFE_DEGRADE = Mode.SAFE_DEGRADE
# 2 K (heat_first's to compute_first's margin on the reference plant) in 10 minutes.
TARGET_FALL_K_PER_S = 2.0 / 600.0


class PowerCap:
    def __init__(self, site: SiteConfig):
        cap_point = site.loops.power_cap.measurement
        # The high trip on the cap loop's measurement: the cap loop works below its limit.
        overtemp = next(t for t in site.trips.values() if t.kind == "high" and t.point == cap_point)
        self.setpoint = (overtemp.limit or 0.0) - site.policy_settings.cap_margin_k
        pw = site.power
        self.floor, self.max, self.safe = pw.floor_w, pw.max_w, pw.safe_degrade_w

    def __call__(self, mode: Mode, it_supply_c: float | None, target_c: float | None = None) -> LoopCall:
        """`target_c`: the target to hold this tick (PowerCap.target); None: this policy's."""
        hi = self.safe if mode is _SAFE_DEGRADE else self.max
        return LoopCall(it_supply_c, self.setpoint if target_c is None else target_c, self.floor, hi)

    def target(self, mode: Mode, last_c: float | None, dt: float) -> float:
        """This tick's target from the last tick's (module docstring): this policy's, or on the way
        down to it at TARGET_FALL_K_PER_S; in safe_degrade this policy's at once."""
        sp = self.setpoint
        if last_c is None or last_c <= sp or mode is _SAFE_DEGRADE:
            return sp
        return max(sp, last_c - TARGET_FALL_K_PER_S * dt)

    def output(self, cap_w: float, it_supply_c: float | None) -> float:
        """Blind to the IT supply: the cap does not hand power back above the safe level."""
        return cap_w if it_supply_c is not None else min(cap_w, self.safe)
