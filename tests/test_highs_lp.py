"""controller.planning.highs_lp: the one LP assembly the plan and both bounds use."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from controller.planning import highs_lp


def test_a_small_lp_from_rows_solves_to_its_known_optimum():
    # max x + 2y  s.t.  x + y <= 4,  x + 3y <= 6,  0 <= x, y <= 3   ->  x = 3, y = 1, objective 5
    rows = highs_lp.Rows()
    rows.add([(1, 1.0), (0, 1.0)], -np.inf, 4.0)      # entries in any order
    rows.add([(0, 1.0), (1, 3.0)], -np.inf, 6.0)
    lp = highs_lp.from_triplets(np.array([-1.0, -2.0]), np.zeros(2), np.full(2, 3.0), rows)
    h, optimal = highs_lp.run(lp)
    assert optimal
    assert np.allclose(h.getSolution().col_value, [3.0, 1.0])
    assert len(rows) == 2


def test_an_infeasible_lp_is_reported_not_optimal():
    rows = highs_lp.Rows()
    rows.add([(0, 1.0)], 5.0, 5.0)
    h, optimal = highs_lp.run(highs_lp.from_triplets(np.array([1.0]), np.zeros(1), np.ones(1), rows))
    assert not optimal
    assert "nfeasible" in h.modelStatusToString(h.getModelStatus())


def test_quiet_highs_prints_nothing_on_stdout():
    code = ("from controller.planning import highs_lp\n"
            "h = highs_lp.quiet_highs()\n"
            "import highspy\n"
            "h2 = highspy.Highs(); h2.setOptionValue('output_flag', False)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
