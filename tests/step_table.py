"""Per-tick tables for the control step: a row is one tick's inputs and expected outputs and events
on the reference plant, on a fake clock (each row's `t`); `run_table` runs the rows in order."""

from __future__ import annotations

import pytest

from tests.step_helpers import snap


class Tick:
    """One row of a per-tick table: inputs at tick `t` and what the step must output at tick `t`.

    Inputs: `readings` (overrides of step_helpers.GOOD), `bad` (point -> Quality), `drop` (points
    missing), `requests`. Expected (each checked only when given): `outputs` point -> value or
    (value, OutputSource); `events` the exact event kinds, in order; `has_events` kinds that must be
    among them; `mode`; `held`; `latched` trip -> bool.
    """

    __slots__ = ("t", "readings", "bad", "drop", "requests", "outputs", "events", "has_events", "mode",
                 "held", "latched")

    def __init__(self, t, readings=None, *, bad=None, drop=(), requests=(), outputs=None, events=None,
                 has_events=(), mode=None, held=None, latched=None):
        self.t, self.readings, self.bad, self.drop, self.requests = t, readings or {}, bad, drop, list(requests)
        self.outputs, self.events, self.has_events = outputs or {}, events, has_events
        self.mode, self.held, self.latched = mode, held, latched or {}


def run_table(ctrl, state, rows):
    """Run the rows in order on `state` (the fake clock is each row's `t`); assert each row's
    expectations with the row's index in the message. Returns the last StepResult."""
    res = None
    for k, row in enumerate(rows):
        res = ctrl.step(state, snap(ctrl.site, row.t, drop=row.drop, bad=row.bad, **row.readings),
                        row.requests, float(row.t))
        where = f"row {k} (t={row.t})"
        kinds = [e.kind for e in res.events]
        if row.events is not None:
            assert kinds == list(row.events), f"{where}: events {kinds}"
        for kind in row.has_events:
            assert kind in kinds, f"{where}: no {kind} event in {kinds}"
        for point, want in row.outputs.items():
            out = res.commands[point]
            value, source = want if isinstance(want, tuple) else (want, None)
            assert out.value == pytest.approx(value), f"{where}: {point} = {out.value}, expected {value}"
            if source is not None:
                assert out.source is source, f"{where}: {point} from {out.source}, expected {source}"
        if row.mode is not None:
            assert res.state.mode is row.mode, f"{where}: mode {res.state.mode}"
        if row.held is not None:
            assert res.state.held is row.held, f"{where}: held {res.state.held}"
        for trip, latched in row.latched.items():
            got = res.state.trips.get(trip)
            assert bool(got and got.latched) is latched, f"{where}: trip {trip} latched {got}"
        state = res.state
    return res
