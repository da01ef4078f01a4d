"""What `heatctl status` shows: the daemon's state assembled for the API, and the per-minute history
and loop-stability figures behind it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.daemon.api_server import user_name
from controller.daemon.audit import iso
from controller.site.roles import Role

# The window the status verb's loop-stability figures cover.
STABILITY_WINDOW_S = 300.0

if TYPE_CHECKING:
    from controller.daemon.runtime import Daemon


@dataclass
class _Sample:
    t: float
    consumer_err: float | None
    dt_err: float | None
    outputs: dict[str, float]


@dataclass
class _Minute:
    """Accumulates one wall-clock minute for the history table."""

    minute: int
    samples: int = 0
    degraded_s: float = 0.0
    boiler_on_s: float = 0.0
    throttled_s: float = 0.0
    below_s: float = 0.0
    deficit_ks: float = 0.0
    low: float | None = None
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, value: float | None) -> None:
        if value is not None:
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def mean(self, key: str) -> float | None:
        n = self.counts.get(key, 0)
        return self.sums[key] / n if n else None


def _stability(samples: list[_Sample], window_s: float) -> dict[str, Any]:
    """Loop stability over the window: errors, how much outputs moved, reversals of direction."""
    out: dict[str, Any] = {"window_s": 0.0, "verdict": "unknown"}
    if len(samples) < 2:
        return out
    out["window_s"] = samples[-1].t - samples[0].t

    def err_stats(key: str) -> dict[str, Any]:
        vals = [getattr(s, key) for s in samples if getattr(s, key) is not None]
        if not vals:
            return {"now": None, "max_abs": None, "mean_abs": None, "sign_changes": 0}
        changes, last = 0, 0
        for v in vals:
            sgn = 1 if v > 0.2 else -1 if v < -0.2 else 0  # ignore the band around zero (sensor noise)
            if sgn and last and sgn != last:
                changes += 1
            if sgn:
                last = sgn
        return {"now": vals[-1], "max_abs": max(abs(v) for v in vals),
                "mean_abs": sum(abs(v) for v in vals) / len(vals), "sign_changes": changes}

    out["consumer_supply_error_k"] = err_stats("consumer_err")
    out["it_delta_t_error_k"] = err_stats("dt_err")
    movement: dict[str, float] = {}
    reversals: dict[str, int] = {}
    for point in samples[-1].outputs:
        series = [s.outputs[point] for s in samples if point in s.outputs]
        moved, rev, last_dir = 0.0, 0, 0
        for a, b in zip(series, series[1:]):
            d = b - a
            moved += abs(d)
            direction = 1 if d > 1e-6 else -1 if d < -1e-6 else 0
            if direction and last_dir and direction != last_dir:
                rev += 1
            if direction:
                last_dir = direction
        movement[point] = moved
        reversals[point] = rev
    out["output_movement"] = movement
    out["output_reversals"] = reversals
    ce, de = out["consumer_supply_error_k"], out["it_delta_t_error_k"]
    if ce["max_abs"] is None and de["max_abs"] is None:
        return out
    # An error that keeps crossing zero by more than the noise band is a loop hunting.
    if ce["sign_changes"] >= 4 or de["sign_changes"] >= 4:
        out["verdict"] = "oscillating"
    elif (ce["max_abs"] or 0.0) <= 1.0 and (de["max_abs"] or 0.0) <= 1.5:
        out["verdict"] = "stable"
    else:
        out["verdict"] = "settling"
    return out


def _quantile(xs: list[float], q: float) -> float | None:
    """The q-quantile of the last minute's tick durations (nearest rank), for status and bench/."""
    if not xs:
        return None
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_status(d: Daemon) -> dict[str, Any]:
    """Everything `heatctl status` shows, as plain JSON-able values."""
    now = d.clock()
    st, res, site, ctrl = d.state, d.last, d.ctrl.site, d.ctrl
    durations = [x for _, x in d._tick_durations]
    out: dict[str, Any] = {
        "daemon": {
            "pid": os.getpid(), "uid": os.getuid(), "user": user_name(os.getuid()),
            "started_at": iso(d.started_wall), "uptime_s": now - d.started_mono,
            "config_path": d.loaded.path, "config_sha256": d.loaded.sha256, "site": site.site.name,
            "policy": site.site.policy.value, "state_dir": d.options.state_dir,
            "socket": d.options.socket_path, "ready": d._ready,
            "metrics": d.metrics is not None,
            "last_reload": d.last_reload,
        },
        "ticks": {
            "count": d.ticks, "period_s": d.period, "last_s": d.last_tick_s,
            "max_1min_s": max(durations) if durations else None,
            "mean_1min_s": sum(durations) / len(durations) if durations else None,
            "p50_1min_s": _quantile(durations, 0.50),
            "p99_1min_s": _quantile(durations, 0.99),
            "samples_1min": len(durations),
            "overruns_total": d.overruns_total, "skipped_total": d.skipped_total,
            "failures_total": d.tick_failures_total,
            "lateness": d.lateness.view(),
        },
    }
    if st is None:
        return out
    out["mode"] = {"mode": st.mode.value, "cause": st.mode_cause, "for_s": now - st.mode_since,
                   "held": st.held, "started": st.started, "degrade_causes": list(st.degrade_causes)}
    out["trips"] = {n: {"latched": t.latched, "active": t.active, "acked": t.acked, "cause": t.cause,
                        "for_s": None if t.since is None else now - t.since}
                    for n, t in st.trips.items() if t.latched or t.active}
    out["overrides"] = {p: {"value": o.value, "remaining_s": o.until - now, "reason": o.reason, "user": o.user}
                        for p, o in st.overrides.items()}
    e = st.energy
    out["energy"] = {**dataclasses.asdict(e), "erf": e.erf}
    out["drivers"] = {n: s.status() for n, s in d.supervisors.items()}
    out["alarms"] = d.api_alarms()
    if d.db is not None:
        w = d.db.state()
        # The database writer (persistence.py): rows waiting, and how long writes have been blocked.
        out["database"] = {"queued": w.queued, "dropped": w.dropped, "written": w.written,
                           "blocked_s": round(w.blocked_s, 3), "error": w.last_error or None}
    if res is None:
        return out
    readings = {}
    for name in ctrl.reading_points:
        c = res.checked.get(name)
        p = site.points[name]
        readings[name] = {"value": None if c is None else c.value, "unit": p.unit, "role": p.role,
                          "good": bool(c and c.good), "reason": "" if c is None else c.reason,
                          "critical": p.critical, "driver": d.point_driver.get(name),
                          "ne107": d.alarm_state.ne107.get(name)}
    out["readings"] = readings
    out["outputs"] = {pt: {"value": o.value, "source": o.source.value, "why": o.why,
                           "role": site.points[pt].role, "unit": site.points[pt].unit}
                      for pt, o in res.commands.items()}
    f = res.flows
    out["flows"] = {} if f is None else {k: getattr(f, k) for k in (
        "it_w", "captured_w", "transferred_w", "delivered_w", "to_tank_w", "dumped_w", "boiler_w",
        "aux_w", "tank_soc", "delivered_estimated")}
    r = ctrl.role
    servers = ctrl.idx.get(Role.SERVER_POWER, ())
    good_servers = [res.checked[n].value for n in servers if n in res.checked and res.checked[n].good]
    cap = res.commands.get(r.get(Role.POWER_CAP, ""))
    boiler = res.commands.get(r.get(Role.BOILER_ENABLE, ""))
    val = lambda role: d._role_value(res, role)  # noqa: E731
    out["summary"] = {
        "it_power_w": f.it_w if f else None,
        "it_power_partial_w": sum(good_servers) if good_servers else None,
        "servers_good": len(good_servers), "servers_total": len(servers),
        "power_cap_w": cap.value if cap else None, "power_cap_source": cap.source.value if cap else None,
        "captured_w": f.captured_w if f else None, "transferred_w": f.transferred_w if f else None,
        "delivered_w": f.delivered_w if f else None, "to_tank_w": f.to_tank_w if f else None,
        "dumped_w": f.dumped_w if f else None, "boiler_w": f.boiler_w if f else None,
        "tank_soc": f.tank_soc if f else None,
        "consumer_supply_c": val(Role.CONSUMER_SUPPLY_TEMP),
        "consumer_setpoint_c": site.loops.consumer_supply.setpoint,
        "consumer_demand_w": val(Role.CONSUMER_DEMAND),
        "consumer_available": None if val(Role.CONSUMER_AVAILABLE) is None else val(Role.CONSUMER_AVAILABLE) >= 0.5,
        "boiler_on": bool(boiler and boiler.value >= 0.5),
        "boiler_source": boiler.source.value if boiler else None,
        "it_supply_c": val(Role.IT_SUPPLY_TEMP), "it_return_c": val(Role.IT_RETURN_TEMP),
        "it_delta_t_setpoint_k": site.policy_settings.it_delta_t_k,
        "stability": _stability(list(d._samples), STABILITY_WINDOW_S),
    }
    return out
