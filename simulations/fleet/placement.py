"""Slurm's node choice, reproduced: PURE. The one placement rule of the fleet simulation, checked
node for node against a real slurmctld by tests/test_fleet_placement_slurm.py.

slurm.conf(5), Weight: "The priority of the node for scheduling purposes. All things being equal,
jobs will be allocated the nodes with the lowest weight which satisfies their requirements." How
Slurm 22.05 (select/cons_tres, no topology plugin) picks among the usable nodes, as its SelectType
debug log shows it (`_eval_nodes: set:N consec CPUs:.. nodes:.. weight:..`):
- it walks its node table in order and cuts the usable nodes into runs of consecutive nodes of one
  weight (a busy, drained or absent node, or a change of weight, ends a run);
- it takes the run of the lowest weight; among runs of that weight, one big enough for the job
  before one that is not, the smallest big-enough run, or else the largest; the first such run in
  node order wins a tie ("best fit");
- it takes that run's nodes from its start, and repeats for what the job still needs.
Slurm's node table is in node NAME order, not the order of the NodeName lines (22.05: a conf listing
pool, dhw, dist nodes is dhw1, dhw2, dist1, dist2, pool1, pool2 in the log): pass `nodes` sorted by
name (`table_order`), with numbers zero-padded so that name order is numeric order.

The model the fleet simulation and its Slurm check share: every node runs one job at a time (one CPU
per node, whole-node jobs), a job asks for `width` nodes, and waits when fewer are usable. Nothing in
heatctl places work: it only sets the weights and drains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class NodeView:
    """One node as the scheduler sees it at one moment."""

    name: str
    weight: int
    usable: bool       # idle, not drained, not kept for interactive work


def table_order(nodes: Iterable[NodeView]) -> list[NodeView]:
    """Nodes in the order of Slurm's node table: by name."""
    return sorted(nodes, key=lambda n: n.name)


def runs_of(nodes: Sequence[NodeView]) -> list[tuple[int, list[int]]]:
    """Runs of consecutive usable nodes of one weight: (weight, indices), in table order."""
    runs: list[tuple[int, list[int]]] = []
    current: tuple[int, list[int]] | None = None
    for i, n in enumerate(nodes):
        if not n.usable:
            current = None
            continue
        if current is None or current[0] != n.weight:
            current = (n.weight, [])
            runs.append(current)
        current[1].append(i)
    return runs


def pick_nodes(nodes: Sequence[NodeView], width: int) -> list[str] | None:
    """The nodes Slurm gives a `width`-node job (module docstring), `nodes` in Slurm's table order;
    None when fewer than `width` nodes are usable."""
    if width < 1:
        raise ValueError(f"a job needs at least one node, not {width}")
    runs = runs_of(nodes)
    if sum(len(r[1]) for r in runs) < width:
        return None
    need, picked = width, []
    while need > 0:
        best = None
        for r in runs:
            if best is None or r[0] < best[0]:
                best = r
                continue
            if r[0] > best[0]:
                continue
            enough, best_enough = len(r[1]) >= need, len(best[1]) >= need
            if (enough and not best_enough) or (enough and len(r[1]) < len(best[1])) \
                    or (not enough and not best_enough and len(r[1]) > len(best[1])):
                best = r
        assert best is not None
        take = best[1][:need]
        picked += take
        need -= len(take)
        runs.remove(best)
    return [nodes[i].name for i in picked]
