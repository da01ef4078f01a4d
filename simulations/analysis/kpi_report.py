"""The report of a closed-loop run: the KPI table (text and Markdown), JSON, and PNG plots.

`write_report(result, site, out_dir)` writes into out_dir:
    kpis.json        every KPI of every controller, the bound, the ratios, the monthly breakdown
    kpis.md          the comparison table and the monthly table
    temperatures.png consumer supply vs its setpoint, IT supply vs its limits, building loop, outdoor
    heat_flows.png   recovered heat delivered, into the tank, dumped, boiler (stacked, kW)
    tank_soc.png     the buffer tank's state of charge
    modes.png        the mode timeline
    power.png        IT power and the power cap
    monthly.png      reused heat per month: heatctl vs the bound vs the baseline
Plots of runs longer than two weeks show daily means (an hourly year is a smear at print size).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.analysis.kpis import Kpis, Trace, sim_time_label

MODE_COLOURS = {"normal": "#2b8a3e", "buffer_charging": "#1971c2", "bypass": "#e8590c",
                "safe_degrade": "#c92a2a", "controller_down": "#495057"}


@dataclass
class Result:
    """What a report is made from: one or more controller runs and, for comparisons, the bound."""

    name: str
    description: str
    runs: dict[str, tuple[Kpis, Trace]]
    bound: Any = None
    wall_s: float = 0.0
    # What the report covers (report_meta): period, tick, heatctl version, config and its hash.
    meta: dict | None = None


def report_meta(*, start_s: float, hours: float, tick_s: float, config_path: str, config_sha256: str,
                window: bool) -> dict:
    from controller import __version__
    return {"period": {"start": sim_time_label(start_s), "end": sim_time_label(start_s + hours * 3600),
                       "start_s": start_s, "hours": hours, "window": window},
            "tick_s": tick_s, "heatctl_version": __version__, "config": config_path,
            "config_sha256": config_sha256}


def meta_lines(meta: dict | None) -> list[str]:
    if not meta:
        return []
    p = meta["period"]
    return [f"Period: {p['start']} to {p['end']} ({p['hours']:g} h{', a test window' if p['window'] else ''}, "
            f"simulated), tick {meta['tick_s']:g} s, heatctl {meta['heatctl_version']}, "
            f"config {meta['config']} (sha256 {meta['config_sha256'][:12]})"]


def _f(x: float, nd: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{nd}f}"


def ratios(result: Result) -> dict[str, float]:
    """heatctl's reuse as a share of the bound and its ratios to the baseline."""
    out: dict[str, float] = {}
    h = result.runs.get("heatctl", (None,))[0]
    b = result.runs.get("baseline", (None,))[0]
    if h is not None and result.bound is not None and result.bound.reused_kwh > 0:
        out["heatctl_reuse_of_bound"] = h.reused_kwh / result.bound.reused_kwh  # wanted heat, as the LP bounds
    if b is not None and result.bound is not None and result.bound.reused_kwh > 0:
        out["baseline_reuse_of_bound"] = b.reused_kwh / result.bound.reused_kwh
    if h is not None and b is not None:
        for key in ("delivered_kwh", "erf", "boiler_kwh", "dumped_kwh"):
            bv = getattr(b, key)
            out[f"{key}_heatctl_over_baseline"] = getattr(h, key) / bv if bv else math.nan
    return out


def table_rows(result: Result) -> tuple[list[str], list[list[str]]]:
    """The comparison table: (column headers, rows of cells)."""
    names = list(result.runs)
    bound = result.bound
    cols = ["KPI"] + names + (["bound"] if bound is not None else [])
    ks = [result.runs[n][0] for n in names]

    def row(label: str, fn, bound_cell: str = "") -> list[str]:
        return [label] + [fn(k) for k in ks] + ([bound_cell] if bound is not None else [])

    rows = [
        row("IT energy (kWh)", lambda k: _f(k.it_kwh)),
        row("heat captured (kWh)", lambda k: _f(k.captured_kwh), _f(bound.captured_kwh) if bound else ""),
        row("consumer demand (kWh)", lambda k: _f(k.demand_kwh), _f(bound.demand_kwh) if bound else ""),
        row("heat reused: delivered (kWh)", lambda k: _f(k.delivered_kwh)),
        row("heat reused, wanted: useful - boiler (kWh)", lambda k: _f(k.reused_kwh),
            _f(bound.reused_kwh) if bound else ""),
        row("heat dumped (kWh)", lambda k: _f(k.dumped_kwh), _f(bound.unusable_kwh) if bound else ""),
        row("boiler backup (kWh)", lambda k: _f(k.boiler_kwh),
            _f(bound.demand_kwh - bound.reused_kwh) if bound else ""),
        row("into / out of tank (kWh)", lambda k: f"{_f(k.to_tank_kwh)} / {_f(k.from_tank_kwh)}",
            f"- / {_f(bound.from_tank_kwh)}" if bound else ""),
        row("pumps and fans (kWh)", lambda k: _f(k.pumps_fans_kwh)),
        row("ERF (reused / IT+aux)", lambda k: f"{k.erf:.3f}"),
        row("demand met by recovered heat", lambda k: f"{k.demand_met_share * 100:.1f} %",
            f"{bound.reused_kwh / bound.demand_kwh * 100:.1f} %" if bound and bound.demand_kwh else ""),
        row("compute throttled (h / kWh)", lambda k: f"{k.throttled_hours:.1f} / {_f(k.it_lost_kwh)}"),
        row("comfort: below setpoint (K.h)", lambda k: _f(k.comfort_deficit_kh, 1)),
        row("above setpoint (K.h)", lambda k: _f(k.iae_above_kh, 1)),
        row("supply IAE (K.h) / worst overshoot (K)", lambda k: f"{_f(k.supply_iae_kh)} / {k.max_overshoot_k:.1f}"),
        row("max IT supply (degC)", lambda k: f"{k.max_it_supply_c:.1f}"),
        row("trips", lambda k: ", ".join(f"{t} x{n}" for t, n in k.trips.items()) or "none"),
        row("time above alarm / limit (h)", lambda k: "; ".join(
            f"{t} {k.hours_above_alarm.get(t, 0.0):.2f} / {h:.2f}" for t, h in k.hours_above_limit.items())),
        row("safe_degrade (h)", lambda k: f"{k.safe_degrade_hours:.1f}"),
        row("mode changes (per day)", lambda k: f"{k.mode_changes} ({k.mode_changes_per_day:.1f})"),
        row("actuator travel P1/P2/P3/V1/D1 (%)", lambda k: " / ".join(
            _f(k.actuator_travel.get(f, 0.0)) for f in ("p1_pct", "p2_pct", "p3_pct", "v1_pct", "d1_pct"))),
        row("boiler switchings", lambda k: _f(k.actuator_travel.get("boiler_switches", 0.0))),
        row("BMS fallback (h)", lambda k: f"{k.fallback_hours:.2f}"),
        row("energy balance error", lambda k: f"{k.energy_balance_error * 100:.3f} %"),
    ]
    return cols, rows


def ratio_lines(result: Result) -> list[str]:
    """The comparison's headline ratios (printed under the KPI table by `heatctl simulate`)."""
    rat = ratios(result)
    out = []
    if "heatctl_reuse_of_bound" in rat:
        out.append(f"heatctl reuses {rat['heatctl_reuse_of_bound'] * 100:.1f} % of the physical bound"
                   + (f" (baseline {rat['baseline_reuse_of_bound'] * 100:.1f} %)" if "baseline_reuse_of_bound" in rat else ""))
    if "delivered_kwh_heatctl_over_baseline" in rat:
        out.append(f"heatctl / baseline: reused x{rat['delivered_kwh_heatctl_over_baseline']:.3f}, "
                   f"ERF x{rat['erf_heatctl_over_baseline']:.3f}, boiler x{rat['boiler_kwh_heatctl_over_baseline']:.3f}, "
                   f"dumped x{rat['dumped_kwh_heatctl_over_baseline']:.3f}")
    return out


def format_markdown(result: Result) -> str:
    cols, rows = table_rows(result)
    window = bool(result.meta and result.meta["period"]["window"])
    title = f"{result.name}: {result.meta['period']['hours']:g} h test window" if window else result.name
    desc = f"A {result.meta['period']['hours']:g} h window of: {result.description}" if window else result.description
    md = [f"# {title}", "", desc, "", *meta_lines(result.meta), *([""] if result.meta else []),
          "| " + " | ".join(cols) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(cols) - 1)) + " |"]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    rat = ratios(result)
    if "heatctl_reuse_of_bound" in rat:
        md += ["", f"heatctl reuses **{rat['heatctl_reuse_of_bound'] * 100:.1f} %** of the physical bound"
               + (f"; the baseline {rat['baseline_reuse_of_bound'] * 100:.1f} %." if "baseline_reuse_of_bound" in rat else ".")]
    monthly = monthly_rows(result)
    if len(monthly) > 1:
        hdr = ["month"] + [f"{n} reused" for n in result.runs] + (["bound"] if result.bound is not None else []) + ["demand", "captured"]
        md += ["", "## Monthly (kWh)", "", "| " + " | ".join(hdr) + " |", "| --- " + "| ---: " * (len(hdr) - 1) + "|"]
        for r in monthly:
            md.append("| " + " | ".join([r["month"]] + [_f(r[n]) for n in result.runs]
                                         + ([_f(r["bound"])] if result.bound is not None else [])
                                         + [_f(r["demand"]), _f(r["captured"])]) + " |")
    md += event_lines(result)
    return "\n".join(md) + "\n"


MAX_EVENTS_MD = 40  # the rest are in kpis.json; a year's report stays readable


def event_lines(result: Result) -> list[str]:
    """heatctl's events (faults, modes, trips) with their simulated UTC date, for kpis.md."""
    k = result.runs.get("heatctl", next(iter(result.runs.values())))[0]
    events = k.events
    if not events:
        return []
    more = [f"- ... {len(events) - MAX_EVENTS_MD} more in kpis.json"] if len(events) > MAX_EVENTS_MD else []
    return ["", f"## Events ({k.controller}, simulated time)", "",
            *[f"- {e}" for e in events[:MAX_EVENTS_MD]], *more]


def monthly_rows(result: Result) -> list[dict]:
    """Per month: each controller's delivered heat, the bound's reuse, demand and captured heat."""
    first = next(iter(result.runs.values()))[0]
    rows = [{"month": r["month"], "demand": r["demand"], "captured": r["captured"]} for r in first.monthly]
    index = {r["month"]: r for r in rows}
    for name, (k, _) in result.runs.items():
        for r in k.monthly:
            index[r["month"]][name] = r["useful"] - r["boiler"]  # wanted recovered heat, as bounded
    if result.bound is not None:
        for r in result.bound.monthly:
            if r["month"] in index:
                index[r["month"]]["bound"] = r["reused"]
    return rows


def to_json(result: Result) -> dict:
    return {
        "scenario": result.name, "description": result.description, "wall_s": round(result.wall_s, 2),
        **({"meta": result.meta} if result.meta else {}),
        "controllers": {n: k.as_dict() for n, (k, _) in result.runs.items()},
        "bound": result.bound.as_dict() if result.bound is not None else None,
        "ratios": ratios(result),
        "monthly": monthly_rows(result),
    }


# --------------------------------------------------------------------------- plots


def _bins(trace: Trace, bin_s: float):
    """Group trace indices into bins of bin_s (by start time): list of index lists and bin centres (days)."""
    groups: dict[int, list[int]] = {}
    t0 = trace.t_s[0] if trace.t_s else 0.0
    for i, t in enumerate(trace.t_s):
        groups.setdefault(int((t - t0) // bin_s), []).append(i)
    keys = sorted(groups)
    return [groups[k] for k in keys], [(t0 + (k + 0.5) * bin_s) / 86400.0 for k in keys]


def _series(trace: Trace, values: list[float], groups) -> list[float]:
    out = []
    for g in groups:
        vs = [values[i] for i in g if not math.isnan(values[i])]
        out.append(sum(vs) / len(vs) if vs else math.nan)
    return out


def write_plots(result: Result, site, out_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, tr = result.runs.get("heatctl") or next(iter(result.runs.values()))
    if not tr.t_s:
        return []
    span_s = tr.t_s[-1] - tr.t_s[0]
    daily = span_s > 14 * 86400
    bin_s = 86400.0 if daily else (tr.t_s[1] - tr.t_s[0] if len(tr.t_s) > 1 else 3600.0)
    groups, x = _bins(tr, bin_s)
    avg = " (daily means)" if daily else ""
    xlabel = "day of year"
    paths: list[Path] = []
    trip_hi = next((t for t in site.trips.values() if t.kind == "high" and t.point == site.loops.power_cap.measurement), None)

    def save(fig, name: str) -> None:
        fig.tight_layout()
        p = out_dir / name
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    # Temperatures and setpoints.
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(x, _series(tr, tr.it_supply_c, groups), color="#c92a2a", lw=1.2, label="IT supply")
    ax.plot(x, _series(tr, tr.b_supply_c, groups), color="#e8590c", lw=1.0, label="building supply")
    ax.plot(x, _series(tr, tr.consumer_supply_c, groups), color="#1971c2", lw=1.4, label="consumer supply")
    ax.plot(x, _series(tr, tr.setpoint_c, groups), color="#1971c2", lw=1.0, ls="--", label="consumer setpoint")
    ax.plot(x, _series(tr, tr.ambient_c, groups), color="#868e96", lw=0.8, label="outdoor")
    if trip_hi is not None:
        if trip_hi.alarm is not None:
            ax.axhline(trip_hi.alarm, color="#c92a2a", ls=":", lw=1.0, label=f"IT supply alarm {trip_hi.alarm:g}")
        ax.axhline(trip_hi.limit, color="#c92a2a", ls="-.", lw=1.0, label=f"IT supply trip {trip_hi.limit:g}")
    ax.set_ylabel("degC")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{result.name}: temperatures{avg}, heatctl")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    save(fig, "temperatures.png")

    # Heat flows, stacked (kW averages per bin).
    e = tr.energy_kwh
    hours = [bin_s / 3600.0] * len(groups)
    if not daily:
        hours = [max((tr.t_s[i + 1] - tr.t_s[i]) / 3600.0 if i + 1 < len(tr.t_s) else bin_s / 3600.0, 1e-9)
                 for g in groups for i in g[:1]]

    def kw(key: str) -> list[float]:
        return [sum(e[key][i] for i in g) / h for g, h in zip(groups, hours)]

    delivered, to_tank, from_tank = kw("delivered"), kw("to_tank"), kw("from_tank")
    stored = [max(a - b, 0.0) for a, b in zip(to_tank, from_tank)]
    dumped, boiler, demand, captured = kw("dumped"), kw("boiler"), kw("demand"), kw("captured")
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.stackplot(x, delivered, stored, dumped, boiler,
                 labels=["recovered heat delivered", "net into tank", "dumped", "boiler"],
                 colors=["#2b8a3e", "#1971c2", "#e8590c", "#868e96"], alpha=0.85)
    ax.plot(x, demand, color="black", lw=1.0, label="consumer demand")
    ax.plot(x, captured, color="#c92a2a", lw=1.0, ls="--", label="captured")
    ax.set_ylabel("kW")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{result.name}: heat flows{avg}, heatctl")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    save(fig, "heat_flows.png")

    # Tank state of charge.
    fig, ax = plt.subplots(figsize=(11, 3))
    ax.plot(x, _series(tr, tr.true_soc, groups), color="#1971c2", lw=1.2, label="heatctl")
    if "baseline" in result.runs:
        btr = result.runs["baseline"][1]
        bg, bx = _bins(btr, bin_s)
        ax.plot(bx, _series(btr, btr.true_soc, bg), color="#868e96", lw=1.0, label="baseline")
    ax.axhline(site.modes.tank_full_soc, color="#1971c2", ls=":", lw=0.8, label="full")
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("state of charge")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{result.name}: buffer tank{avg}")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "tank_soc.png")

    # Mode timeline (every sample, as bars).
    fig, ax = plt.subplots(figsize=(11, 2.6))
    names = [m for m in MODE_COLOURS if m in set(tr.mode)]
    step = (tr.t_s[1] - tr.t_s[0]) if len(tr.t_s) > 1 else 3600.0
    for row, mode in enumerate(names):
        spans = []
        start = None
        for i, m in enumerate(tr.mode + [None]):
            if m == mode and start is None:
                start = tr.t_s[i]
            elif m != mode and start is not None:
                end = tr.t_s[i] if i < len(tr.t_s) else tr.t_s[-1] + step
                spans.append((start / 86400.0, (end - start) / 86400.0))
                start = None
        ax.broken_barh(spans, (row - 0.4, 0.8), color=MODE_COLOURS[mode])
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_xlabel(xlabel)
    ax.set_title(f"{result.name}: modes, heatctl ({k.mode_changes} changes, {k.mode_changes_per_day:.1f} per day)")
    ax.grid(alpha=0.3, axis="x")
    save(fig, "modes.png")

    # IT power and the cap.
    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.plot(x, [v / 1000 for v in _series(tr, tr.it_power_w, groups)], color="#c92a2a", lw=1.0, label="IT power")
    ax.plot(x, [v / 1000 for v in _series(tr, tr.power_cap_w, groups)], color="black", lw=1.0, ls="--",
            label="power cap")
    ax.set_ylabel("kW")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{result.name}: IT power and cap{avg}, heatctl (throttled {k.throttled_hours:.1f} h)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "power.png")

    # Monthly reused heat: heatctl vs bound vs baseline.
    rows = monthly_rows(result)
    fig, ax = plt.subplots(figsize=(11, 4))
    series = [(n, n) for n in result.runs] + ([("bound", "physical bound")] if result.bound is not None else [])
    order = {"heatctl": 0, "bound": 1, "baseline": 2}
    series.sort(key=lambda s: order.get(s[0], 9))
    colours = {"heatctl": "#2b8a3e", "baseline": "#868e96", "bound": "#1971c2"}
    width = 0.8 / len(series)
    for j, (key, label) in enumerate(series):
        ax.bar([i + (j - (len(series) - 1) / 2) * width for i in range(len(rows))],
               [r.get(key, 0.0) / 1000 for r in rows], width, label=label, color=colours.get(key, None))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["month"] for r in rows])
    ax.set_ylabel("MWh reused")
    ax.set_title(f"{result.name}: heat reused per month")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    save(fig, "monthly.png")
    return paths


def write_report(result: Result, site, out_dir: str | Path, plots: bool = True) -> list[Path]:
    """Write the report folder; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    p = out / "kpis.json"
    p.write_text(json.dumps(to_json(result), indent=2, default=str) + "\n")
    files.append(p)
    p = out / "kpis.md"
    p.write_text(format_markdown(result))
    files.append(p)
    if plots:
        files += write_plots(result, site, out)
    return files
