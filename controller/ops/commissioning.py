"""Commissioning runs: a scripted plan (YAML) executed against the live daemon through its control API.

Phase 2 of the seed article's playbook (section 8): validate the points, the modes, every trip and the
failure drills (a pump stopped, a server removed, a sensor failed, the heat consumer offline), each
with its expected safe state and a time limit, and record pass/fail with evidence (readings before
and after, time to respond) in a report a safety reviewer signs.

A plan is validated like a site config: unknown keys, duplicate keys and bad values stop it with
one line each (file:line: path: message), before anything is sent to the daemon.

Step kinds:
  points     every reading through the daemon's drivers; pass when every critical one is good
  mode       request a mode (held), expect it
  release    release the hold to automatic
  trip_test  prove a trip with trip-test (actions checked), acknowledge it, expect the restore
  drill      a failure: injected through the simulator (--sim-control) or done by a person (the
             step's `manual` text is shown and confirmed on stdin); expect the safe state (mode,
             trips, outputs, bad readings) within timeout_s; then cleared the same way, the listed
             trips acknowledged, and the restore expected within restore_timeout_s
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import Field, ValidationError

from controller.ops.api_client import ApiError, call
from controller.daemon.audit import iso
from controller.site.loader import line_for, pydantic_problems, walk_yaml, format_path
from controller.site.strict_model import StrictModel

POLL_S = 0.1


class PlanError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Expect(StrictModel):
    mode: str | list[str] | None = None
    trips: list[str] | None = None          # these latched (and, when given as [], none latched)
    outputs: dict[str, float] = Field(default_factory=dict)
    readings_bad: list[str] = Field(default_factory=list)
    tolerance: float = Field(0.5, ge=0)


class Fault(StrictModel):
    kind: str
    target: str | int | None = None
    value: float | None = None


class Step(StrictModel):
    name: str
    kind: Literal["points", "mode", "release", "trip_test", "drill"]
    mode: str | None = None
    trip: str | None = None
    manual: str | None = None               # what a person does on a real plant
    inject: Fault | None = None             # what the simulator does instead (--sim-control)
    clear_manual: str | None = None
    unattended_ok: bool = False             # --yes may confirm this step's manual action
    expect: Expect = Field(default_factory=Expect)
    timeout_s: float = Field(30.0, gt=0)
    ack: list[str] = Field(default_factory=list)
    restore: Expect | None = None
    restore_timeout_s: float = Field(60.0, gt=0)


class Plan(StrictModel):
    plan: str
    site: str
    steps: list[Step] = Field(min_length=1)


def load_plan(path: str | Path) -> Plan:
    """Parse and validate; PlanError with one line per problem."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PlanError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlanError([f"{p}:{mark.line + 1 if mark else 1}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    lines: dict = {}
    problems: list = []
    if node is not None:
        walk_yaml(node, (), lines, problems)
    if problems:
        raise PlanError([f"{p}:{line_for(x.path, lines)}: {format_path(x.path)}: {x.message}" for x in problems])
    data = yaml.safe_load(text)
    try:
        plan = Plan.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise PlanError([f"{p}:{line_for(x.path, lines)}: {format_path(x.path)}: {x.message}"
                         for x in pydantic_problems(exc)]) from None
    bad = []
    for i, s in enumerate(plan.steps):
        need = {"mode": ["mode"], "trip_test": ["trip"], "drill": []}.get(s.kind, [])
        for k in need:
            if getattr(s, k) is None:
                bad.append(f"{p}:{line_for(('steps', i), lines)}: steps[{i}]: a {s.kind} step needs '{k}'")
        if s.kind == "drill" and s.inject is None and s.manual is None:
            bad.append(f"{p}:{line_for(('steps', i), lines)}: steps[{i}]: a drill needs 'manual' or 'inject'")
    if bad:
        raise PlanError(bad)
    return plan


# --- running ---------------------------------------------------------------------------------------

class Runner:
    """Runs a plan. `api(request) -> response` (the daemon), `sim(op, **fields)` (or None), `ask(text)
    -> bool` (a person confirms), `clock` (monotonic)."""

    def __init__(self, plan: Plan, reason: str, api: Callable[[dict], dict], sim: Callable | None,
                 ask: Callable[[str], bool], yes: bool = False, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, say: Callable[[str], None] = print):
        self.plan, self.reason, self.api, self.sim, self.ask, self.yes = plan, reason, api, sim, ask, yes
        self.clock, self.wall, self.say = clock, wall, say

    def status(self) -> dict:
        r = self.api({"op": "status"})
        if not r.get("ok"):
            raise ApiError(r.get("error", "status failed"))
        return r["status"]

    def change(self, req: dict) -> dict:
        return self.api({**req, "reason": f"{self.reason}: {req.pop('why', '')}".rstrip(": ")})

    @staticmethod
    def evidence(st: dict) -> dict:
        s = st.get("summary", {})
        return {"mode": st.get("mode", {}).get("mode"),
                "trips": sorted(n for n, t in st.get("trips", {}).items() if t.get("latched")),
                "outputs": {p: o["value"] for p, o in st.get("outputs", {}).items() if p != "heartbeat"},
                "bad_readings": sorted(n for n, r in st.get("readings", {}).items() if not r.get("good")),
                **{k: s.get(k) for k in ("it_power_w", "it_supply_c", "consumer_supply_c", "tank_soc", "boiler_on")}}

    @staticmethod
    def unmet(exp: Expect, st: dict) -> list[str]:
        """What of `exp` the status does not show (empty: met)."""
        out = []
        mode = st.get("mode", {}).get("mode")
        if exp.mode is not None:
            want = [exp.mode] if isinstance(exp.mode, str) else exp.mode
            if mode not in want:
                out.append(f"mode {mode}, expected {' or '.join(want)}")
        latched = {n for n, t in st.get("trips", {}).items() if t.get("latched")}
        if exp.trips is not None:
            missing = set(exp.trips) - latched
            if missing:
                out.append(f"trips not latched: {', '.join(sorted(missing))}")
            if not exp.trips and latched:
                out.append(f"trips latched: {', '.join(sorted(latched))}")
        outs = st.get("outputs", {})
        for p, v in exp.outputs.items():
            got = outs.get(p, {}).get("value")
            if got is None or abs(got - v) > exp.tolerance:
                out.append(f"{p} = {got}, expected {v:g}")
        reads = st.get("readings", {})
        for p in exp.readings_bad:
            if reads.get(p, {}).get("good", True):
                out.append(f"{p} still good, expected bad")
        return out

    def wait(self, exp: Expect, timeout_s: float) -> tuple[bool, float, dict, list[str]]:
        t0 = self.clock()
        while True:
            st = self.status()
            miss = self.unmet(exp, st)
            if not miss:
                return True, self.clock() - t0, st, []
            if self.clock() - t0 > timeout_s:
                return False, self.clock() - t0, st, miss
            time.sleep(POLL_S)

    def act(self, step: Step, fault: Fault | None, manual: str | None, clear: bool) -> str:
        """Make the failure happen (or go away): the simulator, else a person. Returns how."""
        if self.sim is not None and fault is not None:
            if clear:
                self.sim("clear", kind=fault.kind, target=fault.target)
            else:
                self.sim("inject", kind=fault.kind, target=fault.target, value=fault.value)
            return f"simulator: {'clear' if clear else 'inject'} {fault.kind} {fault.target or ''}".rstrip()
        text = manual or (f"undo: {step.manual}" if clear else step.manual) or ""
        if self.yes:
            if not step.unattended_ok:
                raise PlanAbort(f"step {step.name!r} needs a person ({text}); the plan does not allow --yes here")
            return f"unattended (--yes): {text}"
        if not self.ask(f"[{step.name}] {text} -- done? [y/N] "):
            raise PlanAbort(f"step {step.name!r}: not confirmed by the operator")
        return f"confirmed by the operator: {text}"

    def run(self) -> dict:
        started = self.wall()
        results = []
        for i, step in enumerate(self.plan.steps):
            self.say(f"step {i + 1}/{len(self.plan.steps)}: {step.name} ...")
            t0 = self.clock()
            try:
                r = self.run_step(step)
            except PlanAbort as exc:
                r = {"passed": False, "notes": [str(exc)], "aborted": True}
            except ApiError as exc:
                r = {"passed": False, "notes": [f"daemon: {exc}"], "aborted": True}
            r.update(step=step.name, kind=step.kind, duration_s=self.clock() - t0)
            results.append(r)
            self.say(f"  {'PASS' if r['passed'] else 'FAIL'}" + (f": {'; '.join(r['notes'])}" if r.get("notes") else ""))
            if r.get("aborted"):
                break
        st = None
        try:
            st = self.status()
        except ApiError:
            pass
        return {"plan": self.plan.plan, "site": self.plan.site, "reason": self.reason,
                "started": iso(started), "finished": iso(self.wall()),
                "daemon": None if st is None else {k: st["daemon"].get(k) for k in ("config_path", "config_sha256", "site", "pid")},
                "passed": all(r["passed"] for r in results) and len(results) == len(self.plan.steps),
                "steps": results}

    def run_step(self, step: Step) -> dict:
        notes: list[str] = []
        before = self.evidence(self.status())
        if step.kind == "points":
            st = self.status()
            reads = st.get("readings", {})
            bad = [n for n, r in reads.items() if r.get("critical") and not r.get("good")]
            table = {n: {"value": r.get("value"), "unit": r.get("unit"), "good": r.get("good"),
                         "critical": r.get("critical"), "reason": r.get("reason"), "driver": r.get("driver")}
                     for n, r in reads.items()}
            notes += [f"critical reading bad: {n} ({reads[n].get('reason')})" for n in bad]
            return {"passed": not bad and bool(reads), "notes": notes, "readings": table}
        if step.kind in ("mode", "release"):
            req = {"op": "mode", "mode": step.mode, "why": step.name} if step.kind == "mode" else \
                {"op": "release", "why": step.name}
            resp = self.change(req)
            if not resp.get("accepted"):
                return {"passed": False, "notes": [f"refused: {resp.get('error')}"], "before": before}
            ok, took, st, miss = self.wait(step.expect, step.timeout_s)
            return {"passed": ok, "notes": miss, "time_to_respond_s": took, "before": before,
                    "after": self.evidence(st)}
        if step.kind == "trip_test":
            resp = self.change({"op": "trip_test", "trip": step.trip, "why": step.name})
            actions = {p: a["value"] for p, a in (resp.get("actions") or {}).items()}
            if not resp.get("accepted"):
                return {"passed": False, "notes": [f"refused: {resp.get('error')}"], "before": before}
            for p, v in step.expect.outputs.items():
                if p not in actions or abs(actions[p] - v) > step.expect.tolerance:
                    notes.append(f"trip action {p} = {actions.get(p)}, expected {v:g}")
            exp = step.expect.model_copy(update={"outputs": {}})  # the actions are checked in the tick they fired
            ok, took, st, miss = self.wait(exp, step.timeout_s)
            during = self.evidence(st)
            rest = self.restore(step, [step.trip, *step.ack])
            return {"passed": ok and not notes and rest["passed"], "notes": notes + miss + rest["notes"],
                    "actions": actions, "time_to_respond_s": took, "before": before, "during": during,
                    "restore": rest}
        # drill
        how = self.act(step, step.inject, None, clear=False)
        ok, took, st, miss = self.wait(step.expect, step.timeout_s)
        during = self.evidence(st)
        how_clear = self.act(step, step.inject, step.clear_manual, clear=True)
        rest = self.restore(step, step.ack)
        return {"passed": ok and rest["passed"], "notes": miss + rest["notes"], "how": how, "cleared": how_clear,
                "time_to_respond_s": took, "time_limit_s": step.timeout_s, "before": before, "during": during,
                "restore": rest}

    def restore(self, step: Step, acks: list[str]) -> dict:
        """Acknowledge what the step latched (once each condition is clear), then expect `restore`."""
        t0 = self.clock()
        notes: list[str] = []
        for trip in dict.fromkeys(acks):
            deadline = self.clock() + step.restore_timeout_s
            while True:
                t = self.status().get("trips", {}).get(trip)
                if t is None or not t.get("latched"):
                    break
                if not t.get("active"):
                    resp = self.change({"op": "ack", "trip": trip, "why": f"{step.name}: condition cleared"})
                    if resp.get("accepted"):
                        break
                if self.clock() > deadline:
                    notes.append(f"trip {trip} could not be acknowledged within {step.restore_timeout_s:g} s")
                    break
                time.sleep(POLL_S)
        # Trips that the step latched besides the listed ones (e.g. low_flow after a leak test) are
        # not acknowledged silently: they stay, and the restore expectation says so.
        ok, took, st, miss = (True, 0.0, self.status(), []) if step.restore is None else \
            self.wait(step.restore, step.restore_timeout_s)
        return {"passed": ok and not notes, "notes": notes + [f"restore: {m}" for m in miss],
                "time_to_restore_s": self.clock() - t0, "after": self.evidence(st)}


class PlanAbort(Exception):
    """A step cannot go on (a person did not confirm, --yes not allowed)."""


# --- report ----------------------------------------------------------------------------------------

def to_markdown(rep: dict) -> str:
    L = [f"# Commissioning report: {rep['plan']}", "",
         f"Site {rep['site']}; started {rep['started']}, finished {rep['finished']}; reason: {rep['reason']}.",
         f"Daemon config {((rep.get('daemon') or {}).get('config_path'))} sha256 "
         f"{((rep.get('daemon') or {}).get('config_sha256') or '')[:16]}.", "",
         f"**Result: {'PASS' if rep['passed'] else 'FAIL'}** "
         f"({sum(1 for s in rep['steps'] if s['passed'])} of {len(rep['steps'])} steps passed)", "",
         "| # | step | kind | result | time to respond | time to restore | notes |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, s in enumerate(rep["steps"], 1):
        ttr = s.get("time_to_respond_s")
        rst = (s.get("restore") or {}).get("time_to_restore_s")
        L.append(f"| {i} | {s['step']} | {s['kind']} | {'PASS' if s['passed'] else 'FAIL'} | "
                 f"{'' if ttr is None else f'{ttr:.1f} s'} | {'' if rst is None else f'{rst:.1f} s'} | "
                 f"{'; '.join(s.get('notes') or [])} |")
    L += ["", "## Evidence", ""]
    for i, s in enumerate(rep["steps"], 1):
        L.append(f"### {i}. {s['step']}")
        if s.get("how"):
            L.append(f"- how: {s['how']}; cleared: {s.get('cleared')}")
        if s.get("actions"):
            L.append(f"- trip actions that tick: {json.dumps(s['actions'], sort_keys=True)}")
        if s.get("readings"):
            bad = [n for n, r in s["readings"].items() if not r["good"]]
            L.append(f"- {len(s['readings'])} readings; bad: {', '.join(bad) or 'none'}")
        for k in ("before", "during", "after"):
            if s.get(k):
                L.append(f"- {k}: {json.dumps(s[k], sort_keys=True)}")
        if s.get("restore"):
            L.append(f"- after restore: {json.dumps(s['restore']['after'], sort_keys=True)}")
        L.append("")
    L += ["## Sign-off", "",
          "| role | name | signature | date |", "| --- | --- | --- | --- |",
          "| commissioning engineer |  |  |  |", "| facilities (plant owner) |  |  |  |",
          "| safety reviewer |  |  |  |", "",
          "The safety reviewer signs that every trip was proven and every drill reached its safe state "
          "within its time limit, or records the exceptions above.", ""]
    return "\n".join(L)


def write_report(rep: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = rep["started"][:19].replace(":", "").replace("-", "")
    md, js = out / f"commissioning-{stamp}.md", out / f"commissioning-{stamp}.json"
    md.write_text(to_markdown(rep))
    js.write_text(json.dumps(rep, indent=2, default=str) + "\n")
    return md, js


def stdin_ask(prompt: str) -> bool:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.strip().lower() in ("y", "yes")
