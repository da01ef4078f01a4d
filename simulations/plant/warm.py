"""What running warm costs, per kind of server cooling: server power and captured fraction against the
coolant temperature (the IT supply, the water entering the servers).

    P_electrical = P_wanted x (1 + power_per_k x (T_coolant - T_ref)+)        (then capped by the BMC)
    f_captured   = max(f_capture - capture_drop_per_k x (T_coolant - T_ref)+, 0)

These are stated ASSUMPTIONS of the right order, not measurements of any product:
- direct_liquid (cold plates; the servers' fans still cool memory, drives and power supplies): +0.25 %
  of server power per K above 30 degC, from static leakage of the processors (it grows with die
  temperature) and the fans of the air-cooled remainder spinning up; the cold plates take the same
  share whatever the water temperature (their share is set by the components they cover).
- immersion (no fans): +0.15 % per K above 30 degC, leakage only; capture unchanged.
- hybrid_air_to_water (fans blow through a rear-door or in-row air-to-water coil): +0.5 % per K above
  25 degC (fans work harder as the coil's air side warms), and the captured share falls by 1
  percentage point per K above 25 degC: with warmer water the coil leaves more of the heat in the
  room air.
Warm-water-cooled HPC systems report a few percent more node power between ~20 and ~45 degC inlet;
the figures above are picked in that range and are the first thing to replace with a site's own
measurement (a step test of node power against inlet temperature).
"""

from __future__ import annotations

from dataclasses import dataclass

COOLING_KINDS = ("direct_liquid", "immersion", "hybrid_air_to_water")


@dataclass(frozen=True)
class WarmCost:
    ref_c: float  # coolant temperature below which running warm costs nothing
    power_per_k: float  # fractional rise of server power per K above ref_c
    capture_drop_per_k: float  # fall of the captured fraction per K above ref_c


WARM_COSTS = {
    "direct_liquid": WarmCost(30.0, 0.0025, 0.0),
    "immersion": WarmCost(30.0, 0.0015, 0.0),
    "hybrid_air_to_water": WarmCost(25.0, 0.005, 0.01),
}
NONE = WarmCost(0.0, 0.0, 0.0)


def warm_cost(cfg) -> WarmCost:
    """The coefficients for a plant config (`cooling`, or none when `warm_costs` is off)."""
    if not getattr(cfg, "warm_costs", True):
        return NONE
    return WARM_COSTS[getattr(cfg, "cooling", "direct_liquid")]


def power_factor(w: WarmCost, coolant_c: float) -> float:
    """P_electrical / P_wanted at this coolant temperature."""
    x = coolant_c - w.ref_c
    return 1.0 + w.power_per_k * x if x > 0.0 else 1.0


def captured_fraction(w: WarmCost, capture_fraction: float, coolant_c: float) -> float:
    """The share of server power that enters the water at this coolant temperature."""
    x = coolant_c - w.ref_c
    f = capture_fraction - w.capture_drop_per_k * x if x > 0.0 else capture_fraction
    return f if f > 0.0 else 0.0


def max_captured_per_wanted_w(cfg, hottest_c: float) -> float:
    """max over coolant temperatures up to `hottest_c` of captured W per wanted W (for the bound)."""
    w = warm_cost(cfg)
    temps = [w.ref_c + i * (hottest_c - w.ref_c) / 200.0 for i in range(201)] if hottest_c > w.ref_c else [w.ref_c]
    return max(power_factor(w, t) * captured_fraction(w, cfg.capture_fraction, t) for t in temps)
