"""The monthly SLA and operations review, from the daemon's own persisted history (no Prometheus).

Input: the audit database of controller.daemon.audit (opened read-only): the per-minute `history` rows
(energy counters at the end of each minute, means, the SLA columns) and the `events` log. Output: one
dict (`build_report`), written as JSON and as Markdown (`to_markdown`) for the monthly review of the
seed article (section 5: time to detect, acknowledge and restore; section 8: energy recovered,
compute uptime, alarms, manual interventions).

Honesty rules:
- Energies are differences of the persisted counters (totals since commissioning), never sums of
  means: a restart neither loses nor double-counts what was metered.
- A minute with no history row is a gap; runs of them are listed with their times. Nothing is
  estimated for a gap: the report says the heat of those minutes is not in its figures.
- Time-based figures (throttled, below setpoint, safe_degrade) are over the covered time, and say so.
- Unmetered time is listed, not hidden: every dead interval of the daemon (from its last persisted
  tick to its next metered tick: a stop, a kill, a crash, then start-up) is an `unmetered_gap` event
  with its start, end and cause (controller/daemon/dead_time.py); the report lists them, counts
  them in the metering figures, and gives compute availability over the whole period as a range
  (the gaps counted as throttled, or as not throttled: nobody knows which).
- The report says what it covers (`meta`, as kpis.md/json do): the period in UTC dates and hours,
  the tick, the heatctl version that wrote it, and the config(s) in force with their sha256.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from controller import __version__
from controller.daemon.audit import AuditEvent, AuditStore, counters_from_json, iso
from controller.core.metering import EnergyCounters

KWH_J = 3.6e6
# A run of missing minutes this long or longer is listed as a gap (a single missing minute can be a
# tick that straddled a minute boundary at a coarse tick; those are counted, not listed).
GAP_LIST_MIN = 2
# A daemon whose last persisted tick is older than this (s) is not running (it persists every tick,
# ENERGY_EVERY_TICKS = 1): from that tick on, the time is listed as an open unmetered gap. 60 s is
# far above any tick period (<= 60 s) and below the report's one-minute resolution.
OPEN_GAP_AFTER_S = 60.0
# How far before a trip the report looks for its first abnormal reading or alarm (time to detect).
DETECT_LOOKBACK_S = 3600.0
TRIP_EVENT_KINDS = ("trip", "trip_acked", "trip_reset", "trip_clear", "trip_test")
MANUAL_KINDS = ("request_accepted", "request_refused", "override_set", "override_cleared",
                "trip_acked", "trip_test", "mode_changed")


class ReportError(Exception):
    """One line for the operator."""


def parse_period(month: str | None, start: str | None, end: str | None) -> tuple[float, float, str]:
    """(start_ts, end_ts, label) from --month YYYY-MM or --from/--to ISO 8601 (UTC if no zone)."""
    if month:
        if start or end:
            raise ReportError("give --month or --from/--to, not both")
        try:
            y, m = (int(x) for x in month.split("-"))
            first = dt.datetime(y, m, 1, tzinfo=dt.timezone.utc)
        except ValueError:
            raise ReportError(f"--month: expected YYYY-MM, got {month!r}") from None
        days = calendar.monthrange(y, m)[1]
        return first.timestamp(), first.timestamp() + days * 86400.0, f"{y:04d}-{m:02d}"
    if not (start and end):
        raise ReportError("give --month YYYY-MM, or both --from and --to")

    def ts(text: str, flag: str) -> float:
        from controller.ops.times import parse_utc
        try:
            return parse_utc(text)
        except ValueError:
            raise ReportError(f"{flag}: expected an ISO 8601 time like 2026-01-01T00:00Z, got {text!r}") from None

    a, b = ts(start, "--from"), ts(end, "--to")
    if b <= a:
        raise ReportError("--to must be after --from")
    return a, b, f"{iso(a)[:16]}_{iso(b)[:16]}".replace(":", "")


def _counters(row: dict[str, Any]) -> EnergyCounters:
    return counters_from_json(row["counters"])


def _delta(a: EnergyCounters, b: EnergyCounters, name: str) -> float:
    return getattr(b, name) - getattr(a, name)


def _gaps(minutes: list[int], m0: int, m1: int) -> list[tuple[int, int]]:
    """Runs [a, b) of minutes in [m0, m1) without a row."""
    out, prev = [], m0 - 1
    for m in minutes + [m1]:
        if m - prev > 1:
            out.append((prev + 1, m))
        prev = m
    return out


def _events(store: AuditStore, start: float, end: float, lookback: float = 0.0) -> list[AuditEvent]:
    rows = store.db.execute("SELECT * FROM events WHERE ts >= ? AND ts < ? ORDER BY id",
                            (start - lookback, end)).fetchall()
    return [AuditEvent(ts=r["ts"], kind=r["kind"], message=r["message"], mode=r["mode"], point=r["point"],
                       trip=r["trip"], cause=r["cause"], user=r["user"], uid=r["uid"], reason=r["reason"],
                       fields=json.loads(r["fields"])) for r in rows]


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def utc_label(ts: float) -> str:
    """Epoch seconds as a UTC date and time, marked UTC."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _meta(store: AuditStore, rows: list[dict[str, Any]], start: float, end: float, label: str) -> dict[str, Any]:
    """What the report covers: period, tick(s), heatctl version, config(s) in force and their hashes."""
    ticks: dict[float, int] = {}
    for r in rows:
        p = _num(r.get("period_s"))
        if p:
            ticks[p] = ticks.get(p, 0) + 1
    cfgs = store.db.execute(
        "SELECT ts, path, sha256 FROM configs WHERE accepted = 1 AND ts < ? ORDER BY id", (end,)).fetchall()
    in_force = [c for c in cfgs if c["ts"] <= start][-1:] + [c for c in cfgs if c["ts"] > start]
    configs, seen = [], None
    for c in in_force:
        if c["sha256"] != seen:  # a restart reloads the same file: one entry per change
            configs.append({"from": iso(max(c["ts"], start)), "path": c["path"], "sha256": c["sha256"]})
            seen = c["sha256"]
    last = configs[-1] if configs else None
    return {
        "period": {"label": label, "start": utc_label(start), "end": utc_label(end),
                   "start_ts": start, "end_ts": end, "hours": (end - start) / 3600.0},
        "tick_s": max(ticks, key=lambda k: ticks[k]) if ticks else None,
        "ticks_s": sorted(ticks),
        "heatctl_version": __version__,
        "config": last["path"] if last else None,
        "config_sha256": last["sha256"] if last else None,
        "configs": configs,
    }


def _unmetered(store: AuditStore, start: float, end: float, now: float) -> dict[str, Any]:
    """The daemon's dead intervals that overlap [start, end), clipped to it, with their causes; and
    the open one when the daemon has persisted nothing for OPEN_GAP_AFTER_S before min(end, now)."""
    gaps = []
    for r in store.db.execute("SELECT ts, cause, fields FROM events WHERE kind = 'unmetered_gap' AND ts >= ?"
                              " ORDER BY id", (start,)).fetchall():
        f = json.loads(r["fields"])
        a, b = float(f.get("from", r["ts"])), float(f.get("to", r["ts"]))
        if b <= start or a >= end:
            continue
        gaps.append(_gap(a, b, start, end, r["cause"] or "", f.get("startup_s")))
    saved = store.load_energy()
    stop = min(end, now)
    if saved is not None and stop - saved[1] > OPEN_GAP_AFTER_S and saved[1] < end and             not any(g["from_ts"] >= saved[1] - 1.0 for g in gaps):
        from controller.daemon.dead_time import previous_end
        gaps.append(_gap(saved[1], max(now, saved[1]), start, end,
                         f"{previous_end(store)}; nothing recorded since its last persisted tick (not running "
                         "at the end of the period)", None, open_=True))
    # A daemon killed after auditing its gap but before persisting its first counters leaves the same
    # start to the next gap, which then contains the first: nested gaps are merged, never summed.
    merged: list[dict[str, Any]] = []
    for g in sorted(gaps, key=lambda g: (g["from_ts"], g["to_ts"])):
        m = merged[-1] if merged else None
        if m is not None and g["from_ts"] <= m["to_ts"]:
            if g["to_ts"] > m["to_ts"]:
                m.update(to=g["to"], to_ts=g["to_ts"], startup_s=g["startup_s"], open=g.get("open", False))
                m["seconds"] = m["to_ts"] - m["from_ts"]
                m["clipped"] = m["clipped"] or g["clipped"]
            if g["cause"] not in m["cause"]:
                m["cause"] += "; " + g["cause"]
        else:
            merged.append(g)
    gaps = merged
    secs = sum(g["seconds"] for g in gaps)
    return {"gaps": gaps, "count": len(gaps), "hours": secs / 3600.0,
            "open": any(g.get("open") for g in gaps)}


def _gap(a: float, b: float, start: float, end: float, cause: str, startup_s: Any,
         open_: bool = False) -> dict[str, Any]:
    ca, cb = max(a, start), min(b, end)
    g = {"from": iso(ca), "to": iso(cb), "from_ts": ca, "to_ts": cb, "seconds": cb - ca, "cause": cause,
         "startup_s": startup_s, "clipped": (ca, cb) != (a, b)}
    if open_:
        g["open"] = True
    return g


def build_report(store: AuditStore, start: float, end: float, label: str = "",
                 now: float | None = None) -> dict[str, Any]:
    """The report over [start, end) (epoch seconds) as plain JSON-able data. `now` (epoch seconds,
    default the wall clock) decides whether a daemon that recorded nothing lately is down now."""
    import time
    now = time.time() if now is None else now
    m0, m1 = int(start // 60), int(math.ceil(end / 60))
    rows = [dict(r) for r in store.db.execute(
        "SELECT * FROM history WHERE minute >= ? AND minute < ? ORDER BY minute", (m0, m1)).fetchall()]
    before = store.db.execute("SELECT * FROM history WHERE minute < ? ORDER BY minute DESC LIMIT 1",
                              (m0,)).fetchone()
    expected_min = m1 - m0
    rep: dict[str, Any] = {"meta": _meta(store, rows, start, end, label),
                           "period": {"label": label, "from": iso(start), "to": iso(end),
                                      "hours": (end - start) / 3600.0}}
    unmetered = rep["unmetered"] = _unmetered(store, start, end, now)
    period_h = (end - start) / 3600.0
    # --- coverage ----------------------------------------------------------------------------
    covered_s = 0.0
    for r in rows:
        p = _num(r.get("period_s"))
        covered_s += min(60.0, r["samples"] * p) if p else 60.0
    gaps = _gaps([r["minute"] for r in rows], m0, m1)
    listed = [{"from": iso(a * 60.0), "to": iso(b * 60.0), "minutes": b - a} for a, b in gaps
              if b - a >= GAP_LIST_MIN]
    rep["coverage"] = {
        "minutes_expected": expected_min, "minutes_recorded": len(rows),
        "covered_hours": covered_s / 3600.0, "share": len(rows) / expected_min if expected_min else 0.0,
        "gaps": listed, "gap_minutes": sum(b - a for a, b in gaps),
        "short_gap_minutes": sum(b - a for a, b in gaps if b - a < GAP_LIST_MIN),
        "old_rows_without_sla_columns": sum(1 for r in rows if r.get("period_s") is None),
    }
    # --- energy (counter differences) --------------------------------------------------------
    energy: dict[str, Any] = {"available": bool(rows)}
    if rows:
        if before is not None:
            base, base_note = _counters(dict(before)), f"counters at {iso(before['minute'] * 60.0 + 60)}"
        elif _fresh_database(store, rows[0]["ts"]):
            base, base_note = EnergyCounters(), "counters from zero (the database started in this period)"
        else:
            base, base_note = _counters(rows[0]), (f"counters at the first recorded minute "
                                                  f"{iso(rows[0]['minute'] * 60.0 + 60)}: that minute is not counted")
        last = _counters(rows[-1])
        d = {k: _delta(base, last, k) for k in ("it_j", "captured_j", "transferred_j", "delivered_j",
                                                 "stored_in_j", "stored_out_j", "dumped_j", "boiler_j",
                                                 "aux_j", "metered_s", "unmetered_s")}
        total = d["it_j"] + d["aux_j"]
        energy.update({
            "baseline": base_note,
            **{k.replace("_j", "_kwh"): v / KWH_J for k, v in d.items() if k.endswith("_j")},
            "metered_hours": d["metered_s"] / 3600.0, "unmetered_hours": d["unmetered_s"] / 3600.0,
            # The counters' unmetered time: the listed gaps (folded in when metering resumes) and
            # time with bad or missing readings while the daemon ran.
            "unmetered_gap_hours": unmetered["hours"],
            "metered_share": d["metered_s"] / 3600.0 / period_h if period_h > 0 else None,
            "erf": d["delivered_j"] / total if total > 0 else None,
            "demand_met_share": (d["delivered_j"] / (d["delivered_j"] + d["boiler_j"])
                                 if d["delivered_j"] + d["boiler_j"] > 0 else None),
            "not_counted": ("heat and IT energy of the gaps listed under coverage are not in these "
                            "figures (the controller was not running or not recording)") if listed else "",
        })
    rep["energy"] = energy
    # --- thermal delivery --------------------------------------------------------------------
    sp = [r["consumer_setpoint_c"] for r in rows if r.get("consumer_setpoint_c") is not None]
    lows = [v for r in rows for v in [_num(r.get("consumer_supply_min_c")) or _num(r.get("consumer_supply_c"))]
            if v is not None]
    sla_rows = [r for r in rows if r.get("period_s") is not None]
    rep["thermal"] = {
        "setpoint_c": sp[-1] if sp else None,
        "min_supply_c": min(lows) if lows else None,
        "below_setpoint_hours": sum(r["below_setpoint_s"] or 0.0 for r in sla_rows) / 3600.0,
        "deficit_kh": sum(r["deficit_ks"] or 0.0 for r in sla_rows) / 3600.0,
        "boiler_on_hours": sum(r["boiler_on_s"] or 0.0 for r in rows) / 3600.0,
        "basis": "while the consumer was available and demanding, over the covered time",
    }
    # --- compute -----------------------------------------------------------------------------
    mode_h: dict[str, float] = {}
    for r in rows:
        p = _num(r.get("period_s"))
        mode_h[r["mode"]] = mode_h.get(r["mode"], 0.0) + (min(60.0, r["samples"] * p) if p else 60.0) / 3600.0
    throttled_h = sum(r["throttled_s"] or 0.0 for r in sla_rows) / 3600.0
    degraded_h = sum(r["degraded_s"] or 0.0 for r in rows) / 3600.0
    cov_h = covered_s / 3600.0
    # Unmetered gaps inside the period that the covered time does not already hold (a gap's start-up
    # seconds can share a minute with recorded ticks): the hours nobody knows about.
    unknown_h = min(unmetered["hours"], max(period_h - cov_h, 0.0))
    whole_h = cov_h + unknown_h
    rep["compute"] = {
        "throttled_hours": throttled_h, "safe_degrade_hours": degraded_h,
        "availability": 1.0 - throttled_h / cov_h if cov_h > 0 else None,
        "unmetered_hours": unknown_h,
        # Over the covered time plus the unmetered gaps: the gaps counted as throttled (low) or as
        # not throttled (high); the truth lies between.
        "availability_range": ((cov_h - throttled_h) / whole_h, (whole_h - throttled_h) / whole_h)
        if whole_h > 0 else None,
        "mode_hours": mode_h,
        "basis": "availability = share of the covered time the IT power cap did not hold the servers back; "
                 "the range counts the unmetered gaps as throttled or as not",
    }
    # --- events: trips, alarms, interventions, outages, restarts -------------------------------
    evs = _events(store, start, end, DETECT_LOOKBACK_S)
    in_period = [e for e in evs if e.ts >= start]
    rep["trips"] = _trips(evs, start)
    rep["alarms"] = [_ev(e) for e in in_period if e.kind.startswith("alarm")]
    rep["safe_degrade"] = _episodes(in_period, end)
    rep["interventions"] = [
        {**_ev(e), "accepted": e.kind != "request_refused"} for e in in_period
        if e.user and e.kind in MANUAL_KINDS]
    rep["driver_outages"] = _outages(in_period, end)
    rep["daemon"] = [_ev(e) for e in in_period if e.kind in ("daemon_start", "daemon_stop")]
    return rep


def _fresh_database(store: AuditStore, first_ts: float) -> bool:
    """True when the first daemon start on record started its counters new, in or after this period."""
    r = store.db.execute("SELECT ts, fields FROM events WHERE kind = 'daemon_start' ORDER BY id LIMIT 1").fetchone()
    if r is None:
        return False
    return not json.loads(r["fields"]).get("energy_restored", True) and r["ts"] <= first_ts


def _ev(e: AuditEvent) -> dict[str, Any]:
    return {"time": iso(e.ts), "ts": e.ts, "kind": e.kind, "message": e.message, "user": e.user,
            "reason": e.reason, "trip": e.trip, "point": e.point}


def _trips(evs: list[AuditEvent], start: float) -> list[dict[str, Any]]:
    out = []
    for i, e in enumerate(evs):
        if e.kind != "trip" or e.ts < start:
            continue
        name = e.trip
        test = any(x.kind == "trip_test" and x.trip == name and abs(x.ts - e.ts) < 1e-6 for x in evs)
        # Onset: the first abnormal reading or alarm recorded before the trip (within the lookback,
        # and after the previous trip of the same name); none: the trip was the first sign.
        prev = max((x.ts for x in evs[:i] if x.kind == "trip" and x.trip == name), default=-math.inf)
        onset = e.ts
        for x in evs[:i]:
            if x.ts < max(prev, e.ts - DETECT_LOOKBACK_S):
                continue
            if (x.kind == "reading_bad" and name == "sensor_lost") or \
                    (x.kind.startswith("alarm") and (x.trip == name or (x.point and x.point == e.point))):
                onset = min(onset, x.ts)
        later = evs[i + 1:]
        ack = next((x for x in later if x.kind == "trip_acked" and x.trip == name), None)
        reset = next((x for x in later if x.kind == "trip_reset" and x.trip == name), None)
        restored = None
        if reset is not None:
            restored = next((x for x in later if x.ts >= reset.ts and x.kind == "mode_changed"
                             and x.fields.get("source") == "safe_degrade"), None) or reset
        out.append({
            "time": iso(e.ts), "trip": name, "cause": e.cause, "test": test,
            "time_to_detect_s": e.ts - onset,
            "detect_basis": "first abnormal reading or alarm recorded" if onset < e.ts else "tripped on the first reading seen",
            "time_to_acknowledge_s": None if ack is None else ack.ts - e.ts,
            "acknowledged_by": None if ack is None else ack.user, "ack_reason": None if ack is None else ack.reason,
            "time_to_restore_s": None if restored is None else restored.ts - e.ts,
            "restored_by": None if restored is None else restored.kind,
            "open": reset is None,
        })
    return out


def _episodes(evs: list[AuditEvent], end: float) -> list[dict[str, Any]]:
    out, cur = [], None
    for e in evs:
        if e.kind != "mode_changed":
            continue
        if e.fields.get("dest") == "safe_degrade" and cur is None:
            cur = {"from": iso(e.ts), "ts": e.ts, "cause": e.cause, "by": e.user}
        elif e.fields.get("source") == "safe_degrade" and cur is not None:
            cur.update(to=iso(e.ts), hours=(e.ts - cur["ts"]) / 3600.0)
            out.append(cur)
            cur = None
    if cur is not None:
        cur.update(to=None, hours=(end - cur["ts"]) / 3600.0, open=True)
        out.append(cur)
    return out


def _outages(evs: list[AuditEvent], end: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    open_: dict[str, dict] = {}
    for e in evs:
        drv = e.fields.get("driver")
        if e.kind == "driver_outage":
            open_[drv] = {"driver": drv, "from": iso(e.ts), "ts": e.ts, "cause": e.cause}
        elif e.kind == "driver_recovered" and drv in open_:
            o = open_.pop(drv)
            o.update(to=iso(e.ts), minutes=(e.ts - o["ts"]) / 60.0)
            out.append(o)
    for o in open_.values():
        o.update(to=None, minutes=(end - o["ts"]) / 60.0, open=True)
        out.append(o)
    return out


# --- rendering ---------------------------------------------------------------------------------

def _f(v: Any, fmt: str = ".1f", unit: str = "") -> str:
    if v is None:
        return "n/a"
    return f"{v:{fmt}}{unit}"


def _dur(s: float | None, tenths: bool = False) -> str:
    if s is None:
        return "open"
    if s < 120:
        return f"{s:.1f} s" if tenths else f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def meta_lines(meta: dict[str, Any] | None) -> list[str]:
    """The report's "what it covers" line, as simulations/analysis/kpi_report.meta_lines gives it."""
    if not meta:
        return []
    p = meta["period"]
    tick = "n/a" if meta["tick_s"] is None else f"{meta['tick_s']:g} s"
    if len(meta["ticks_s"]) > 1:
        tick += f" (also {', '.join(f'{t:g} s' for t in meta['ticks_s'] if t != meta['tick_s'])})"
    cfg = ("config n/a (none recorded)" if meta["config"] is None else
           f"config {meta['config']} (sha256 {meta['config_sha256'][:12]})")
    more = len(meta["configs"]) - 1
    return [f"Period: {p['start']} to {p['end']} ({p['hours']:.4g} h), tick {tick}, "
            f"heatctl {meta['heatctl_version']}, {cfg}"
            + (f"; {more} other config(s) in force during the period, listed in the JSON" if more > 0 else ""),
            ""]


def to_markdown(rep: dict[str, Any]) -> str:
    p, c, e, t, k = rep["period"], rep["coverage"], rep["energy"], rep["thermal"], rep["compute"]
    L = [f"# heatctl monthly review: {p['label']}", "", *meta_lines(rep.get("meta")),
         "Source: the daemon's audit database (per-minute history and event log).", "",
         "## Data coverage", "",
         f"- minutes recorded: {c['minutes_recorded']} of {c['minutes_expected']} ({c['share'] * 100:.2f} %)"]
    if c["gaps"]:
        L.append("- gaps (no history: daemon down or not recording; nothing below is estimated for them):")
        L += [f"  - {g['from']} to {g['to']} ({g['minutes']} min)" for g in c["gaps"]]
    else:
        L.append("- no gaps of two minutes or more")
    if c["short_gap_minutes"]:
        L.append(f"- single missing minutes: {c['short_gap_minutes']}")
    if c["old_rows_without_sla_columns"]:
        L.append(f"- {c['old_rows_without_sla_columns']} rows from an older daemon lack the SLA columns "
                 "(throttled, below setpoint): those minutes are not in the time-based figures")
    L += ["", "## Energy", ""]
    if not e["available"]:
        L.append("No history in this period: no energy figures.")
    else:
        L += ["| quantity | value |", "| --- | --- |",
              f"| heat delivered to the consumer | {e['delivered_kwh']:.1f} kWh |",
              f"| IT energy | {e['it_kwh']:.1f} kWh |",
              f"| pumps and fans (aux) | {e['aux_kwh']:.1f} kWh |",
              f"| ERF (delivered / (IT + aux)) | {_f(e['erf'], '.3f')} |",
              f"| captured into the IT loop | {e['captured_kwh']:.1f} kWh |",
              f"| dumped | {e['dumped_kwh']:.1f} kWh |",
              f"| boiler | {e['boiler_kwh']:.1f} kWh |",
              f"| recovered share of the consumer's heat | {_f(e['demand_met_share'], '.3f')} |",
              f"| metered / unmetered time | {e['metered_hours']:.1f} h / {e['unmetered_hours']:.2f} h |",
              f"| metered share of the period | {_f(None if e['metered_share'] is None else e['metered_share'] * 100, '.2f', ' %')} |",
              f"| of the unmetered time: daemon gaps (listed below) | {e['unmetered_gap_hours']:.2f} h |",
              "", f"Baseline: {e['baseline']}." + (f" Note: {e['not_counted']}." if e["not_counted"] else "")]
    L += ["", "## Thermal delivery", "",
          f"- consumer supply setpoint {_f(t['setpoint_c'], '.1f', ' degC')}; lowest supply held "
          f"{_f(t['min_supply_c'], '.1f', ' degC')}",
          f"- below setpoint while demanded: {t['below_setpoint_hours']:.2f} h ({t['deficit_kh']:.2f} K.h)",
          f"- boiler enabled: {t['boiler_on_hours']:.1f} h",
          "", "## Compute", "",
          f"- availability (not throttled by the cap): {_f(None if k['availability'] is None else k['availability'] * 100, '.2f', ' %')}",
          f"- throttled: {k['throttled_hours']:.2f} h; safe_degrade: {k['safe_degrade_hours']:.2f} h",
          "- over the whole period with the unmetered gaps (" + _dur(k["unmetered_hours"] * 3600, True) + "): "
          + ("n/a" if k["availability_range"] is None else
             f"{k['availability_range'][0] * 100:.2f} % (gaps counted as throttled) to "
             f"{k['availability_range'][1] * 100:.2f} % (as not throttled)"),
          "- hours per mode: " + ", ".join(f"{m} {h:.1f}" for m, h in sorted(k["mode_hours"].items())),
          "", "## Unmetered gaps", ""]
    u = rep["unmetered"]
    if u["gaps"]:
        L += [f"{u['count']} gap(s), {_dur(u['hours'] * 3600, True)} in all: the daemon was not metering (not "
              "running, or starting and waiting for a complete snapshot). Nothing is estimated for them.", "",
              "| start | end | duration | cause |", "| --- | --- | --- | --- |"]
        L += [f"| {g['from']} | {g['to'] if not g.get('open') else g['to'] + ' (still open)'} | "
              f"{_dur(g['seconds'], True)} | {g['cause']}"
              + (f"; start-up {g['startup_s']:.1f} s" if g.get("startup_s") is not None else "")
              + (" (clipped to the period)" if g["clipped"] else "") + " |" for g in u["gaps"]]
    else:
        L.append("None: the daemon metered the whole time it was running in this period.")
    L += ["", "## Trips (time to detect, acknowledge, restore)", ""]
    if rep["trips"]:
        L += ["| time | trip | test | detect | acknowledge (by) | restore | cause |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rep["trips"]:
            L.append(f"| {r['time']} | {r['trip']} | {'yes' if r['test'] else ''} | {_dur(r['time_to_detect_s'])} | "
                     f"{_dur(r['time_to_acknowledge_s'])} ({r['acknowledged_by'] or '-'}) | "
                     f"{_dur(r['time_to_restore_s'])} | {r['cause'] or ''} |")
    else:
        L.append("None.")
    L += ["", "## Alarms", ""]
    L += [f"- {a['time']} {a['kind']}: {a['message']}" for a in rep["alarms"]] or ["None recorded."]
    L += ["", "## safe_degrade episodes", ""]
    L += [f"- {s['from']} to {s['to'] or 'still'} ({s['hours']:.2f} h): {s['cause']}" for s in rep["safe_degrade"]] or ["None."]
    L += ["", "## Manual interventions", ""]
    if rep["interventions"]:
        L += ["| time | who | what | reason | accepted |", "| --- | --- | --- | --- | --- |"]
        L += [f"| {i['time']} | {i['user']} | {i['message']} | {i['reason'] or ''} | {'yes' if i['accepted'] else 'refused'} |"
              for i in rep["interventions"]]
    else:
        L.append("None.")
    L += ["", "## Driver outages", ""]
    L += [f"- {o['driver']}: {o['from']} to {o['to'] or 'still down'} ({o['minutes']:.1f} min): {o['cause']}"
          for o in rep["driver_outages"]] or ["None."]
    L += ["", "## Daemon starts and stops", ""]
    L += [f"- {d['time']} {d['kind']}: {d['message']}" for d in rep["daemon"]] or ["None in this period."]
    return "\n".join(L) + "\n"


def write_report(state_dir: str | Path, start: float, end: float, label: str, out_dir: str | Path) -> tuple[dict, Path, Path]:
    """Build the report from `state_dir`'s database (read-only) and write <label>.md and .json."""
    try:
        store = AuditStore(state_dir, read_only=True)
    except FileNotFoundError as exc:
        raise ReportError(str(exc)) from None
    try:
        rep = build_report(store, start, end, label)
    finally:
        store.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"heatctl-report-{label}.md", out / f"heatctl-report-{label}.json"
    md.write_text(to_markdown(rep))
    js.write_text(json.dumps(rep, indent=2, default=str) + "\n")
    return rep, md, js
