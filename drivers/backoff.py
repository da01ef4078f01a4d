"""The one reconnect/restart backoff: bounded exponential, on a clock that the caller passes.

Every driver that reconnects (Modbus, OPC-UA, IPMI) and the supervisor that restarts a crashed
driver use this, so that "when is the next try" has one answer, which status and log lines name.
Delays double from `min_s` to `max_s` after each failure and reset on success: a peer that is back
is used at once, and a dead one costs one attempt per `max_s` at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Backoff:
    min_s: float
    max_s: float
    factor: float = 2.0
    # Consecutive failures since the last success.
    failures: int = 0
    # The delay the next failure will set (s).
    delay_s: float = field(init=False)
    # Earliest time of the next attempt, on the caller's clock (-inf: now).
    next_at: float = -math.inf

    def __post_init__(self) -> None:
        if not (0 < self.min_s <= self.max_s):
            raise ValueError(f"backoff needs 0 < min_s <= max_s, got {self.min_s} and {self.max_s}")
        self.delay_s = self.min_s

    def ready(self, now: float) -> bool:
        """May an attempt be made at `now`?"""
        return now >= self.next_at

    def wait_s(self, now: float) -> float:
        """Seconds until the next attempt is allowed (0 when it is allowed now)."""
        return max(self.next_at - now, 0.0)

    def failure(self, now: float) -> float:
        """Record a failed attempt at `now`; return the delay before the next one (s)."""
        delay = self.delay_s
        self.failures += 1
        self.next_at = now + delay
        self.delay_s = min(self.delay_s * self.factor, self.max_s)
        return delay

    def success(self) -> None:
        """The peer answered: the next failure starts again from `min_s`, and no wait is pending."""
        self.failures = 0
        self.delay_s = self.min_s
        self.next_at = -math.inf
