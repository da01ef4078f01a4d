"""The derived signals a `condition` alarm may watch: part of what a site config can name, so the
site's checks validate them here and the core's alarm evaluation computes them (controller/core/alarms.py)."""

from __future__ import annotations

DRIVER_DOWN = "driver_down:"
# Derived signals a `condition` alarm can watch: name -> (numeric, area, description). A boolean
# signal is active while true; a numeric one while >= the alarm's limit.
SIGNALS: dict[str, tuple[bool, str, str]] = {
    "mode_safe_degrade": (False, "safety", "the plant is in safe_degrade"),
    "consumer_supply_below_setpoint_k": (True, "thermal", "consumer supply setpoint minus the consumer supply (K)"),
    "boiler_on": (False, "thermal", "the boiler is enabled (recovered heat falls short)"),
    "operator_hold": (False, "controller", "an operator holds the mode (automatic transitions suspended)"),
    "bms_fallback_active": (False, "safety", "the BMS says it runs on its own fallback (its bms_fallback_active point)"),
    "heartbeat_not_verified": (False, "controller", "the heartbeat written does not read back counting (controller.core.heartbeat)"),
    DRIVER_DOWN + "<driver>": (False, "controller", "the named driver delivers no readings (outage or crash)"),
}


def signal_spec(name: str) -> tuple[bool, str, str] | None:
    """(numeric, area, description) of a derived signal name, or None if there is no such signal."""
    if name.startswith(DRIVER_DOWN) and len(name) > len(DRIVER_DOWN):
        return SIGNALS[DRIVER_DOWN + "<driver>"]
    if name == DRIVER_DOWN + "<driver>":
        return None
    return SIGNALS.get(name)
