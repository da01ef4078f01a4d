"""A linear program for HiGHS (`highspy`) assembled from rows, and a Highs instance without its banner.

One place for what the plan (controller.planning.solver) and the simulations' bounds
(simulations.analysis.lp_bound, simulations.workload.bound) all do: collect the constraint rows as
(row, column, value) triplets with their bounds, and hand HiGHS a column-wise matrix.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np


class Rows:
    """Constraint rows as triplets: `add([(column, coefficient), ...], lower, upper)`."""

    def __init__(self) -> None:
        self.ri: list[int] = []
        self.cj: list[int] = []
        self.va: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, entries: Iterable[tuple[int, float]], lower: float, upper: float) -> None:
        r = len(self.lo)
        for j, v in entries:
            self.ri.append(r)
            self.cj.append(j)
            self.va.append(v)
        self.lo.append(lower)
        self.hi.append(upper)

    def __len__(self) -> int:
        return len(self.lo)


def from_triplets(cost: np.ndarray, col_lower: np.ndarray, col_upper: np.ndarray, rows: Rows):
    """A highspy.HighsLp (minimise cost . x) with the rows as a column-wise sparse matrix."""
    import highspy

    n = len(cost)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(rows)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, col_lower, col_upper
    lp.row_lower_, lp.row_upper_ = np.array(rows.lo, dtype=float), np.array(rows.hi, dtype=float)
    ri, cj = np.array(rows.ri, dtype=np.int64), np.array(rows.cj, dtype=np.int64)
    order = np.lexsort((ri, cj))          # by column, then by row within a column
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate(([0], np.cumsum(np.bincount(cj, minlength=n))))
    lp.a_matrix_.index_ = ri[order]
    lp.a_matrix_.value_ = np.array(rows.va, dtype=float)[order]
    return lp


def quiet_highs():
    """A Highs instance without its start-up banner on stdout (HiGHS prints it at C level, on the
    first instance of a process, before any option can be set), and with its log off."""
    import highspy

    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(fd, 1)
        os.close(fd)
    h.setOptionValue("output_flag", False)
    return h


def run(lp, time_limit_s: float | None = None):
    """Solve `lp`: (the Highs instance, whether the model status is optimal)."""
    import highspy

    h = quiet_highs()
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    h.passModel(lp)
    h.run()
    return h, h.getModelStatus() == highspy.HighsModelStatus.kOptimal
