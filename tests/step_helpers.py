"""Shared helpers for per-tick tests of the control step on the reference plant config."""

from __future__ import annotations

from pathlib import Path

from controller.site.loader import load_config
from controller.core.readings import Quality, Reading, Snapshot
from controller.core.step import Controller

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "config" / "reference-plant.yaml"

# A plausible steady winter operating point of the reference plant: 32 kW IT, pool taking 30 kW.
GOOD = dict(
    srv1_power=4000, srv2_power=4000, srv3_power=4000, srv4_power=4000,
    srv5_power=4000, srv6_power=4000, srv7_power=4000, srv8_power=4000,
    it_supply_temp=35.0, it_return_temp=43.0, it_flow=3.0, loop_pressure=2.0,
    leak_cdu=0, leak_rack=0, b_supply_temp=41.0, b_return_temp=33.0, b_flow=4.0,
    ambient_temp=10.0, consumer_supply_temp=40.0, consumer_demand=30000.0,
    consumer_available=1, tank_top_temp=40.0, tank_bottom_temp=35.0, bms_fallback=0,
)


def reference_site():
    return load_config(REFERENCE).site


def make_controller():
    return Controller(reference_site())


def snap(site, t: float, drop: tuple[str, ...] = (), bad: dict[str, Quality] | None = None,
         **over: float) -> Snapshot:
    """A snapshot at time t of GOOD values, with overrides, dropped points and bad qualities."""
    values = {**GOOD, **over}
    readings = {}
    for name, v in values.items():
        if name in drop:
            continue
        q = (bad or {}).get(name, Quality.GOOD)
        readings[name] = Reading(float(v) if v is not None else None, site.points[name].unit, t, q,
                                 "" if q is Quality.GOOD else "test")
    return Snapshot(t, readings)


def run(ctrl, state, snapshots_and_requests, start: float = 0.0):
    """Run ticks of (snapshot_overrides, requests); return the list of StepResults."""
    results = []
    for i, (over, reqs) in enumerate(snapshots_and_requests):
        t = start + i
        res = ctrl.step(state, snap(ctrl.site, t, **over), reqs, float(t))
        results.append(res)
        state = res.state
    return results
