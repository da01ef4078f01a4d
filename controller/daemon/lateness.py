"""Tick lateness: how late each tick starts against its grid deadline (deadline + k * period).

A tick that starts late has less of its period left for the drivers and the step, and a loop's
sample time drifts; an overrun counts only the ticks that missed a whole deadline. The daemon keeps
the last WINDOW lateness figures for `heatctl status` (p50/p99/p99.9/max) and the maximum since it
started; the Prometheus histogram (heatctl_tick_lateness_seconds) keeps the rest.
"""

from __future__ import annotations

import collections
from typing import Any

# 10,000 ticks: 1,000 s at the 100 ms tick, 10,000 s at 1 s; enough samples that p99.9 is a rank (10th
# largest) and not the maximum, and a sort of 10,000 floats per status call costs ~1 ms.
WINDOW = 10_000


class Lateness:
    """The recent lateness figures and their quantiles."""

    def __init__(self, window: int = WINDOW):
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self.max_s = 0.0
        self.count = 0

    def record(self, deadline: float, start: float) -> float:
        """Record a tick due at `deadline` that started at `start`; return its lateness (>= 0)."""
        late = max(0.0, start - deadline)
        self._recent.append(late)
        self.count += 1
        if late > self.max_s:
            self.max_s = late
        return late

    def view(self) -> dict[str, Any]:
        """Quantiles over the recent window (None before the first tick) and the maximum since start."""
        ordered = sorted(self._recent)
        n = len(ordered)

        def q(p: float) -> float | None:
            return ordered[min(n - 1, int(p * n))] if n else None

        return {"p50_s": q(0.50), "p99_s": q(0.99), "p999_s": q(0.999),
                "max_window_s": ordered[-1] if n else None, "max_s": self.max_s if n else None,
                "samples": n, "total": self.count}
