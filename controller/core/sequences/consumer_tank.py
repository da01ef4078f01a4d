"""V1 / P3 on the consumer supply temperature: one loop output u in [-max, max] split in two.

u > 0 opens V1 (heat bypasses the consumer into the tank: charging); u < 0 runs P3 (the tank
discharges into the consumer). The mode and the tank decide which half of the range is allowed.
"""

from __future__ import annotations

from controller.core.modes import Mode
from controller.core.sequences import LoopCall
from controller.site.models import SiteConfig

# The tank top must be this much hotter than the consumer supply for a discharge to add heat.
TANK_DISCHARGE_MARGIN_K = 2.0

_BUFFER_CHARGING, _BYPASS = Mode.BUFFER_CHARGING, Mode.BYPASS


class ConsumerTank:
    def __init__(self, site: SiteConfig):
        self.max = site.loops.consumer_supply.output_max
        self.setpoint = site.loops.consumer_supply.setpoint
        self.tank_full_soc = site.modes.tank_full_soc

    def __call__(self, mode: Mode, consumer_supply_c: float | None, tank_top_c: float | None,
                 online: bool, tank_soc: float | None) -> LoopCall:
        m = self.max
        # Buffer charging: V1 only. Normal, safe_degrade and bypass use the whole range: in bypass
        # the tank is full, and sending flow through it returns it hot to the dump, the only way to
        # keep surplus heat off a consumer that cannot take it.
        lo, hi = (0.0, m) if mode is _BUFFER_CHARGING else (-m, m)
        if (tank_top_c is None or consumer_supply_c is None
                or tank_top_c < consumer_supply_c + TANK_DISCHARGE_MARGIN_K):
            # Discharging a tank no hotter than the consumer circuit would cool it: P3 stays off.
            lo = max(lo, 0.0)
            hi = max(hi, lo)
        forced = None
        if not online:
            # Nobody takes heat at the consumer: charge the tank while it has room, else nothing.
            has_room = tank_soc is not None and tank_soc < self.tank_full_soc
            forced = m if (has_room and mode is not _BYPASS) else 0.0
            lo, hi = min(lo, forced), max(hi, forced)
        return LoopCall(consumer_supply_c, self.setpoint, lo, hi, forced)

    @staticmethod
    def split(u: float, online: bool) -> tuple[float, float]:
        """The loop output as (V1 %, P3 %). No discharge pumping to a consumer that is offline."""
        return max(u, 0.0), (max(0.0, -u) if online else 0.0)

    @staticmethod
    def internal(v1: float, p3: float) -> float:
        """The loop output that a V1 and a P3 value stand for (the inverse of `split`)."""
        return v1 - p3
