"""The boiler tops the consumer up when recovered heat falls short.

A thermostat with a hysteresis band and a minimum time between switches: boilers are rated for a
limited number of starts, and the valve loop's ripple must not toggle it (seen: 87 starts a day
with a 0.5 K band and no minimum time).
"""

from __future__ import annotations

from controller.site.models import SiteConfig


class Boiler:
    def __init__(self, site: SiteConfig):
        self.threshold = site.loops.consumer_supply.setpoint - site.policy_settings.boiler_on_below_k
        self.hysteresis = site.outputs.boiler_hysteresis_k
        self.min_switch_s = site.outputs.boiler_min_switch_s

    def __call__(self, available_seen: bool, online: bool, consumer_supply_c: float | None,
                 was_on: bool, on_since: float, now: float) -> bool:
        """`available_seen`: the consumer's availability signal is a good reading; `online`: it
        says the consumer takes heat. `was_on`, `on_since`: the last decision and since when."""
        if available_seen and not online:
            return False  # the consumer says it is offline: it takes no heat from anyone
        if not available_seen or consumer_supply_c is None:
            # Cannot see the consumer (comms to its BMS lost): the boiler keeps it warm under its
            # own thermostat. Recovered heat still goes to the tank meanwhile (not online).
            return True
        t = consumer_supply_c
        want = t < self.threshold + self.hysteresis if was_on else t < self.threshold
        may_switch = now - on_since >= self.min_switch_s
        return want if (want == was_on or may_switch) else was_on
