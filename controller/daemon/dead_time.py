"""Dead time: from the last persisted tick of the previous run to the first metered tick of this one.

Nobody metered that time: the daemon was stopped, killed or crashed, then started and waited for
its first complete, valid snapshot (the step integrates energy only from then on). It is counted
as unmetered, never guessed as delivered heat, and audited as one `unmetered_gap` event with its
start, end and cause, which `heatctl report` lists.

While the gap is open the energy counters are not persisted: the stored row keeps the time of the
last metered tick, so a daemon killed again before its first complete snapshot leaves the whole
interval to the next start, and no dead second is lost or counted twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from controller.core.metering import EnergyCounters
from controller.daemon.audit import AuditEvent, AuditStore, iso

CAUSE_CRASH = "daemon killed or crashed (no clean stop recorded)"
CAUSE_STOP = "daemon stopped"


def previous_end(store: AuditStore) -> str:
    """How the previous run ended, from the audit log: a clean stop, or not (a kill, a crash, a
    power cut). Call before this run's daemon_start is written."""
    r = store.db.execute("SELECT kind FROM events WHERE kind IN ('daemon_start', 'daemon_stop')"
                         " ORDER BY id DESC LIMIT 1").fetchone()
    return CAUSE_STOP if r is not None and r[0] == "daemon_stop" else CAUSE_CRASH


@dataclass
class DeadTime:
    """The open gap of this run (`since` None: a fresh database, nothing to account for)."""

    since: float | None  # wall time of the last persisted tick
    started_at: float    # wall time this run started
    cause: str

    @property
    def open(self) -> bool:
        return self.since is not None

    def close(self, energy: EnergyCounters, wall: float, mode: str | None,
              why_end: str = "first metered tick") -> tuple[EnergyCounters, AuditEvent | None]:
        """Fold the gap up to `wall` into the counters; the audit event that lists it."""
        if self.since is None:
            return energy, None
        since, self.since = self.since, None
        seconds = max(wall - since, 0.0)
        if seconds <= 0:
            return energy, None
        startup_s = max(wall - max(self.started_at, since), 0.0)
        energy = dataclasses.replace(energy, unmetered_s=energy.unmetered_s + seconds)
        ev = AuditEvent(wall, "unmetered_gap",
                        f"unmetered {seconds:.1f} s from {iso(since)} to {iso(wall)}: {self.cause}, then "
                        f"{startup_s:.1f} s of start-up to the {why_end}",
                        mode=mode, cause=self.cause,
                        fields={"from": since, "to": wall, "seconds": seconds,
                                "started_at": self.started_at, "startup_s": startup_s})
        return energy, ev
