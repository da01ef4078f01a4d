"""simulations.workload.results.format_table prints the year results without writing into them: the
runs it is given are also what `--out` writes to JSON afterwards, so a printer that added its derived
figures (batch share, capped hours not by trip/safe state) would change the saved results."""

from __future__ import annotations

import copy

from simulations.workload.results import format_table


def run(**kw) -> dict:
    r = dict(reused_kwh=1000.0, boiler_kwh=200.0, dumped_kwh=50.0, it_kwh=2000.0, batch_kwh=500.0,
             queued_at_end_kwh=10.0, missed=1, throttled_h=12.5, throttled_safe_h=2.25, it_lost_kwh=3.0,
             max_it_supply_c=44.0, above_alarm_h=0.0)
    r.update(kw)
    return r


def test_the_table_shows_the_derived_figures_and_leaves_its_input_alone():
    runs = {"heatctl+plan": run(), "heatctl": run(batch_kwh=0.0, throttled_safe_h=12.5),
            "naive": run(it_kwh=0.0)}
    runs["naive"].pop("throttled_safe_h")  # a run saved before that key existed (--merge)
    bound = {"reused_kwh": 1500.0, "boiler_kwh": 100.0}
    before = copy.deepcopy(runs), copy.deepcopy(bound)

    table = format_table("pool-year", runs, bound)

    assert (runs, bound) == before
    lines = {line[2:28].strip(): line[28:].split() for line in table.splitlines()[2:]}
    assert lines["batch share of IT (%)"] == ["25.0", "0.0", "0.0"]
    assert lines["not by trip/safe state"] == ["10.25", "0.00", "-"]
