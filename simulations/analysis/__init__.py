"""Analysis of runs: KPIs, the physical bound, reports, cost models and what-if sweeps."""
