"""One picture of the yardsticks: recovered heat that was wanted, per month, for heatctl and every
baseline, against each month's LP bound (simulations.analysis.lp_bound) and the consumer's demand."""

from __future__ import annotations

from pathlib import Path

COLOURS = {"heatctl": "#2b8a3e", "baseline": "#adb5bd", "naive": "#adb5bd", "good-practice": "#f08c00",
           "g36": "#7048e8"}


def monthly_reused(kpis) -> dict[str, float]:
    """month -> reused kWh (useful heat minus boiler) from a run's monthly rows."""
    return {r["month"]: r["useful"] - r["boiler"] for r in kpis.monthly}


def plot_yardsticks(runs: dict, lp, path: str | Path, title: str) -> Path:
    """Grouped bars per month (each controller's reused heat) with the LP's monthly bound and demand."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = [r["month"] for r in lp.monthly]
    names = list(runs)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for i, n in enumerate(names):
        per = monthly_reused(runs[n][0])
        xs = [j - 0.4 + (i + 0.5) * width for j in range(len(months))]
        ax.bar(xs, [per.get(m, 0.0) / 1000 for m in months], width, label=n, color=COLOURS.get(n))
    ax.plot(range(len(months)), [r["reused"] / 1000 for r in lp.monthly], "k_", markersize=22, mew=2,
            label="LP bound (each month on its own)")
    demand = {r["month"]: r["demand"] for r in runs[names[0]][0].monthly}
    ax.plot(range(len(months)), [demand.get(m, 0.0) / 1000 for m in months], ":", color="#1971c2",
            label="consumer demand")
    ax.set_xticks(range(len(months)), months)
    ax.set_ylabel("MWh per month")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
