"""The heartbeat's own check: does the value heatctl writes read back, and does it count?

The BMS falls back to its own control (P1 100 %, boiler on) when the heartbeat register stops
changing. A heartbeat write that fails, reads back another value, or reads back the same value tick
after tick (a range like [0, 0.5] that makes every value 0, a register that keeps what it had) is
invisible to heatctl's own outputs, but the BMS will fall back: it is a fault of its own, judged
from the drivers' verified read-backs (`applied_outputs`), never from the commanded value.

Pure: the state and the tick's facts in, the new state out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True, slots=True)
class HeartbeatCheck:
    # The last heartbeat value the drivers verified as read back (None: none yet).
    seen: float | None = None
    # When a new value was last verified (or when verification began); None: never judged.
    verified_at: float | None = None
    # Why the heartbeat is at fault ("" while it counts).
    fault: str = ""


NOT_JUDGED = HeartbeatCheck()


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def check(prev: HeartbeatCheck, point: str, commanded: float | None,
          applied: Mapping[str, float] | None, now: float, grace_s: float) -> HeartbeatCheck:
    """The check after this tick's read-backs.

    `commanded`: the heartbeat value written last tick (None before the first write); `applied`:
    the drivers' verified read-backs of last tick's writes (None: the caller has no drivers that
    verify, as in a closed-loop simulation: nothing is judged). A new value that reads back as it
    was written restarts the clock; no such value for `grace_s` is a fault, with its reason.
    """
    if applied is None:
        return prev
    rb = applied.get(point)
    if rb is not None and commanded is not None and _same(rb, commanded) and (
            prev.seen is None or not _same(rb, prev.seen)):
        return HeartbeatCheck(rb, now, "")
    if prev.verified_at is None:
        return HeartbeatCheck(prev.seen, now, "")  # the first judged tick: the grace starts
    since = prev.verified_at
    age = now - since
    if age < grace_s:
        return prev
    if rb is None:
        why = f"heartbeat point {point}: no verified read-back for {age:.1f} s (the write fails or reads back another value)"
    elif commanded is not None and not _same(rb, commanded):
        why = f"heartbeat point {point}: wrote {commanded:g}, reads back {rb:g}"
    else:
        why = f"heartbeat point {point}: reads back {rb:g}, unchanged for {age:.1f} s (its range or register does not let it count)"
    return HeartbeatCheck(prev.seen, since, why)
