"""`waive:` entries: a safety rule a site does not meet, accepted explicitly with a reason.

A waiver names a waivable rule (controller.site.rules.WAIVABLE) and the key whose problem it accepts.
Fail closed: a waiver of an unknown or unwaivable rule, or one that matches no problem (the problem
was fixed, or the key is misspelt), is itself a problem, so no waiver outlives its reason unseen.
"""

from __future__ import annotations

from typing import Callable, Sequence

from controller.site.checks import Problem
from controller.site.models import WaiveEntry
from controller.site.rules import RULES, WAIVABLE


def apply_waivers(entries: Sequence[WaiveEntry], problems: Sequence[Problem],
                  key_of: Callable[[tuple[str | int, ...]], str]
                  ) -> tuple[list[Problem], list[tuple[Problem, WaiveEntry]]]:
    """(the problems that remain, including bad waivers; the waived problems with their entry)."""
    remaining: list[Problem] = []
    waived: list[tuple[Problem, WaiveEntry]] = []
    used: set[int] = set()
    valid = {i: e for i, e in enumerate(entries) if e.rule in WAIVABLE}
    for p in problems:
        entry_i = next((i for i, e in valid.items() if e.rule == p.rule and e.key == key_of(p.path)), None)
        if entry_i is None:
            remaining.append(p)
        else:
            used.add(entry_i)
            waived.append((p, valid[entry_i]))
    for i, e in enumerate(entries):
        base = ("waive", i)
        if e.rule not in RULES:
            remaining.append(Problem(base + ("rule",), f"unknown rule {e.rule!r}; expected one of: "
                                                       f"{', '.join(sorted(WAIVABLE))}", "waiver"))
        elif e.rule not in WAIVABLE:
            remaining.append(Problem(base + ("rule",), f"rule {e.rule} cannot be waived ({RULES[e.rule]}); "
                                                       f"waivable: {', '.join(sorted(WAIVABLE))}", "waiver"))
        elif i not in used:
            remaining.append(Problem(base + ("key",), f"no {e.rule} problem at {e.key!r} to waive; expected a "
                                                      f"key check-config reports (remove the entry once fixed)",
                                     "waiver"))
    return remaining, waived
