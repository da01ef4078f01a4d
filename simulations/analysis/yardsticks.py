"""heatctl against every baseline and the LP bound: the table `heatctl simulate` prints for comparisons.

Each controller's recovered heat that was wanted (`Kpis.reused_kwh`) as a share of the bound
(simulations.analysis.lp_bound), its boiler energy, dumped heat, comfort (IAE below and above the
setpoint), and what its dry cooler and boiler did (switchings and fan travel, reported as what they
are: not compared with heatctl's mode changes). The lead is heatctl's reused heat over the strongest
baseline's (the one that reused the most), whichever that is.
"""

from __future__ import annotations

from simulations.baselines.registry import ALIASES, DESCRIPTIONS


def strongest_baseline(runs: dict) -> str | None:
    """The baseline (not heatctl) with the most reused heat; None without baselines."""
    names = [n for n in runs if n != "heatctl"]
    if not names:
        return None
    return max(names, key=lambda n: runs[n][0].reused_kwh)


def lead(runs: dict) -> dict:
    """heatctl's ratios to the strongest baseline: reused heat (higher is better) and boiler energy."""
    best = strongest_baseline(runs)
    if best is None or "heatctl" not in runs:
        return {}
    h, b = runs["heatctl"][0], runs[best][0]
    return {
        "strongest_baseline": best,
        "reused_ratio": h.reused_kwh / b.reused_kwh if b.reused_kwh > 0 else float("nan"),
        "boiler_ratio": h.boiler_kwh / b.boiler_kwh if b.boiler_kwh > 0 else float("nan"),
    }


def format_yardsticks(runs: dict, bound) -> str:
    """The comparison table (text)."""
    names = list(runs)
    lines = ["", "  heatctl vs every baseline vs the bound (reused = heat the consumer wanted, minus boiler)"]
    if bound is not None:
        lines.append(f"  bound (LP, {bound.step_s / 3600:g} h steps, tank {bound.t_lo_c:g}-{bound.t_hi_c:g} degC): "
                     f"{bound.reused_kwh:,.0f} kWh of {bound.demand_kwh:,.0f} kWh demand "
                     f"(capture at most {bound.captured_max_kwh:,.0f} kWh)")
    head = f"  {'':28s}" + "".join(f"{n:>15s}" for n in names)
    lines.append(head)

    def row(label: str, fn) -> None:
        lines.append(f"  {label:28s}" + "".join(f"{fn(runs[n][0]):>15s}" for n in names))

    row("reused (kWh)", lambda k: f"{k.reused_kwh:,.0f}")
    if bound is not None and bound.reused_kwh > 0:
        row("  share of the bound", lambda k: f"{k.reused_kwh / bound.reused_kwh * 100:.1f} %")
    row("boiler (kWh)", lambda k: f"{k.boiler_kwh:,.0f}")
    row("dumped (kWh)", lambda k: f"{k.dumped_kwh:,.0f}")
    row("pumps and fans (kWh)", lambda k: f"{k.pumps_fans_kwh:,.0f}")
    row("IAE below setpoint (K.h)", lambda k: f"{k.iae_below_kh:,.1f}")
    row("IAE above setpoint (K.h)", lambda k: f"{k.iae_above_kh:,.1f}")
    row("boiler switchings", lambda k: f"{k.actuator_travel.get('boiler_switches', 0):,.0f}")
    row("dry-cooler fan travel (%)", lambda k: f"{k.actuator_travel.get('d1_pct', 0):,.0f}")
    row("mode changes", lambda k: f"{k.mode_changes:,d}" if k.controller == "heatctl" else "-")
    row("dry-cooler switchings", lambda k: f"{k.mode_changes:,d}" if k.controller != "heatctl" else "-")
    row("IT not run (kWh)", lambda k: f"{k.it_lost_kwh:,.0f}")
    ld = lead(runs)
    if ld:
        lines.append(f"  heatctl vs the strongest baseline ({ld['strongest_baseline']}): reused x{ld['reused_ratio']:.3f}, "
                     f"boiler x{ld['boiler_ratio']:.3f}")
    for n in names:
        if n != "heatctl":
            lines.append(f"    {n}: {DESCRIPTIONS.get(ALIASES.get(n, n), '')}")
    return "\n".join(lines)
