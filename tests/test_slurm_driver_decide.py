"""The pure decision: heat situation (+ plan) and Slurm snapshot -> actions. Table tests, no Slurm."""

from __future__ import annotations

import pytest

from drivers.slurm.decide import Memory, Situation, Thresholds, decide, node_weight, sink_full
from drivers.slurm.model import Job, Node, Snapshot

NOW = 1_800_000_000.0
T = Thresholds()


def node(name, drain=False, reason="", weight=1):
    return Node(name, "idle", drain, reason, weight)


def job(jid, state="PENDING", reason="Priority", deadline=None, requeue=True):
    return Job(jid, "batch", "", state, reason, deadline, requeue)


def snap(nodes=(), jobs=()):
    return Snapshot({n.name: n for n in nodes}, tuple(jobs))


def kinds(actions):
    return sorted((a.kind, a.target) for a in actions)


@pytest.mark.parametrize("online, soc, was, expected", [
    (True, 0.99, True, False),     # consumer back: resume whatever the tank
    (False, 0.90, False, True),    # at the shed threshold
    (False, 0.89, False, False),   # below it, not shed before
    (False, 0.80, True, True),     # between the thresholds: hysteresis keeps shedding
    (False, 0.80, False, False),   # ... and keeps not shedding
    (False, 0.75, True, False),    # at the resume threshold
    (False, None, True, True),     # unknown SoC keeps the decision
    (False, None, False, False),
])
def test_sink_full_hysteresis(online, soc, was, expected):
    s = Situation(NOW, online, soc)
    assert sink_full(s, T, was) is expected


def test_sink_full_drains_and_holds_with_heatctl_reason():
    s = Situation(NOW, consumer_online=False, tank_soc=0.92)
    acts, mem = decide(s, snap([node("a"), node("b", drain=True, reason="operator: disk")],
                               [job(1), job(2, "RUNNING"), job(3, reason="JobHeldUser")]), Memory())
    assert kinds(acts) == [("drain", "a"), ("hold", "1")]
    assert all(a.reason.startswith("heatctl: heat sink full (tank 92 %, consumer offline)") for a in acts)
    assert mem.shed and mem.held == {1}


def test_requeue_only_preemptible_far_from_deadline_above_requeue_threshold():
    jobs = [job(1, "RUNNING"), job(2, "RUNNING", requeue=False),
            job(3, "RUNNING", deadline=NOW + 3600), job(4, "RUNNING", deadline=NOW + 10 * 3600)]
    acts, _ = decide(Situation(NOW, False, 0.93), snap([node("a", drain=True, reason="heatctl: x")], jobs), Memory())
    assert kinds(acts) == []
    acts, _ = decide(Situation(NOW, False, 0.96), snap([node("a", drain=True, reason="heatctl: x")], jobs), Memory())
    assert kinds(acts) == [("requeue", "1"), ("requeue", "4")]


def test_consumer_back_resumes_only_heatctl_drains_and_releases_only_heatctl_holds():
    nodes = [node("a", drain=True, reason="heatctl: heat sink full"), node("b", drain=True, reason="operator: disk")]
    jobs = [job(1, reason="JobHeldAdmin"), job(2, reason="JobHeldAdmin")]
    acts, mem = decide(Situation(NOW, True, 0.95), snap(nodes, jobs), Memory(shed=True, held=frozenset({1})))
    assert kinds(acts) == [("release", "1"), ("resume", "a")]
    assert not mem.shed and mem.held == frozenset()


def test_steady_state_asks_nothing():
    nodes = [node("a", drain=True, reason="heatctl: x")]
    jobs = [job(1, reason="JobHeldAdmin")]
    acts, mem = decide(Situation(NOW, False, 0.91), snap(nodes, jobs), Memory(shed=True, held=frozenset({1})))
    assert acts == [] and mem.held == {1}


def test_weights_follow_heat_value_when_not_shed():
    assert node_weight(1.0) == 1 and node_weight(0.0) == 100 and node_weight(2.0) == 1
    acts, _ = decide(Situation(NOW, True, 0.5, heat_value=0.0), snap([node("a", weight=1), node("b", weight=100)]), Memory())
    assert [(a.kind, a.target, a.value) for a in acts] == [("weight", "a", 100)]


def test_plan_with_no_batch_budget_holds_and_then_releases():
    s = Situation(NOW, True, 0.5, plan_batch_budget_w=0.0, plan_reason="tank full by 18:00")
    acts, mem = decide(s, snap([node("a")], [job(1)]), Memory())
    assert kinds(acts) == [("hold", "1")] and "plan holds batch work (tank full by 18:00)" in acts[0].reason
    s2 = Situation(NOW, True, 0.5, plan_batch_budget_w=5000.0)
    acts, mem = decide(s2, snap([node("a")], [job(1, reason="JobHeldAdmin")]), mem)
    assert kinds(acts) == [("release", "1")]


def test_forgets_jobs_gone_from_queue():
    _, mem = decide(Situation(NOW, True, 0.5), snap([], []), Memory(held=frozenset({7})))
    assert mem.held == frozenset()


def test_shared_partition_drains_own_nodes_but_never_holds_or_requeues_the_fleets_jobs():
    fleet = Thresholds(manage_jobs=False)
    jobs = [job(1), job(2, "RUNNING")]
    acts, mem = decide(Situation(NOW, False, 0.97), snap([node("a")], jobs), Memory(), fleet)
    assert kinds(acts) == [("drain", "a")] and mem.shed and mem.held == frozenset()
    plan = Situation(NOW, True, 0.5, plan_batch_budget_w=0.0, plan_reason="tank full by 18:00")
    acts, _ = decide(plan, snap([node("a")], [job(1)]), Memory(), fleet)
    assert kinds(acts) == []
    # A job held before the site joined the shared partition is still released.
    acts, _ = decide(Situation(NOW, True, 0.5), snap([node("a")], [job(1, reason="JobHeldAdmin")]),
                     Memory(held=frozenset({1})), fleet)
    assert kinds(acts) == [("release", "1")]
