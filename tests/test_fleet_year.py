"""The fleet in simulation: Slurm's placement rule, the shared workload (work conserved, deadlines
kept, placement by weight, drains), and a short fleet window of both policies."""

from __future__ import annotations

import pytest

from simulations.fleet.placement import NodeView, pick_nodes
from simulations.fleet.workload import FleetSite, FleetWorkload
from simulations.scenarios.profiles import day_start_s
from simulations.workload.profiles import MIXES

H = 3600.0


def nodes(*spec):
    return [NodeView(name, w, usable) for name, w, usable in spec]


@pytest.mark.parametrize("spec, width, expected", [
    # lowest weight first
    ((("a1", 50, True), ("b1", 1, True), ("c1", 100, True)), 1, ["b1"]),
    # equal weights, one run: from its start
    ((("a1", 10, True), ("a2", 10, True), ("b1", 10, True)), 2, ["a1", "a2"]),
    # a node not usable (busy, drained, kept for interactive work) is skipped
    ((("a1", 1, False), ("a2", 1, True), ("b1", 1, True)), 1, ["a2"]),
    # not enough nodes of the lowest weight: the next weight's nodes join
    ((("a1", 1, True), ("b1", 5, True), ("b2", 5, True)), 2, ["a1", "b1"]),
    # best fit: the smallest run big enough, not the first nodes (a1 alone, b1-b2 a run of two)
    ((("a1", 1, True), ("a2", 1, False), ("b1", 1, True), ("b2", 1, True)), 2, ["b1", "b2"]),
    ((("a1", 1, True), ("a2", 1, True), ("a3", 1, False), ("b1", 1, True)), 1, ["b1"]),
    # none big enough: the largest run first, then the next
    ((("a1", 1, True), ("a2", 1, False), ("b1", 1, True), ("b2", 1, True), ("b3", 1, False),
      ("c1", 1, True)), 3, ["b1", "b2", "a1"]),
    # fewer usable nodes than the width: the job waits
    ((("a1", 1, True), ("b1", 5, False)), 2, None),
])
def test_pick_nodes_is_slurms_lowest_weight_best_fit(spec, width, expected):
    assert pick_nodes(nodes(*spec), width) == expected


def test_pick_nodes_refuses_a_job_without_nodes():
    with pytest.raises(ValueError, match="at least one node"):
        pick_nodes(nodes(("a1", 1, True)), 0)


SITES = [FleetSite("a", 8, MIXES[None]), FleetSite("b", 8, MIXES["config/templates/cpu-rack-dhw.yaml"]),
         FleetSite("c", 16, MIXES[None])]


def drive(policy, weights=lambda t: [1, 1, 1], days=3.0, tick=300.0):
    start = day_start_s(3, 1)
    w = FleetWorkload(SITES, policy, start, tick)
    loads = []
    for k in range(int(days * 24 * H / tick)):
        t = start + k * tick
        w.weights = weights(t)
        loads.append(w.tick(t))
    return w, loads


@pytest.mark.parametrize("policy", ["home", "weight"])
def test_work_is_conserved_and_deadlines_kept(policy):
    w, loads = drive(policy)
    left = sum(j.remaining_node_h for j in w.queue + w.running)
    assert w.stats.jobs_arrived > 100
    assert w.stats.batch_node_h + left == pytest.approx(w.stats.arrived_node_h, rel=1e-9)
    assert w.stats.missed == 0
    assert all(0.0 <= x <= 1.0 for row in loads for x in row)
    if policy == "home":
        assert w.stats.away_node_h == 0.0 and w.stats.spanning_jobs == 0


def test_batch_goes_to_the_lowest_weight_site_that_has_room():
    # Site c wants heat (weight 1), a and b would dump it (weight 100).
    w, _ = drive("weight", weights=lambda t: [100, 100, 1])
    home, _ = drive("home")
    share_c = w.site_batch_node_h[2] / w.stats.batch_node_h
    # c is busy with its own work much of the time: it takes what room it has.
    assert share_c > home.site_batch_node_h[2] / home.stats.batch_node_h + 0.02
    assert w.stats.away_node_h > 0 and w.stats.missed == 0
    # Turn it round: a wanted, c not: a runs more than at home.
    w2, _ = drive("weight", weights=lambda t: [1, 100, 100])
    assert w2.site_batch_node_h[0] > home.site_batch_node_h[0]


def test_a_drained_site_gets_no_new_jobs():
    start = day_start_s(3, 1)
    w = FleetWorkload(SITES, "weight", start, 300.0)
    w.weights = [1, 50, 100]
    w.drained = [True, False, False]
    for k in range(288):
        w.tick(start + k * 300.0)
    assert w.site_batch_node_h[0] == 0.0
    assert w.stats.missed == 0


def test_fleet_window_runs_both_policies_on_the_same_jobs():
    from simulations.fleet.runner import run_fleet

    start = day_start_s(4, 2)
    home, wl_home = run_fleet("home", hours=12.0, start_s=start)
    aware, wl_aware = run_fleet("weight", hours=12.0, start_s=start)
    assert [r.name for r in home] == ["pool", "dhw", "space", "district"]
    assert wl_home.stats.jobs_arrived == wl_aware.stats.jobs_arrived > 50
    assert wl_home.stats.missed == wl_aware.stats.missed == 0
    assert wl_home.stats.away_node_h == 0.0 < wl_aware.stats.away_node_h
    # The weights the sites published moved with their state (more than one level over the window).
    assert any(len(r.weights_seen) > 1 for r in aware)
    for r in home + aware:
        assert r.kpis.trips == {} and r.kpis.it_kwh > 0


def test_a_failing_site_stops_the_fleet_run_with_its_error(monkeypatch):
    import simulations.fleet.runner as runner

    calls = {"n": 0}

    def broken(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 40:
            raise RuntimeError("a site's step failed")
        return 0.5
    monkeypatch.setattr(runner, "from_state", broken)
    # The other sites wait at the barrier: the run must end with the site's error, not hang.
    with pytest.raises(RuntimeError, match="a site's step failed"):
        runner.run_fleet("weight", hours=1.0, start_s=day_start_s(4, 2))
