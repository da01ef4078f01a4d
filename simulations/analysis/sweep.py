"""What-if sweeps: one closed-loop run per value of one site-config key, KPIs side by side.

`--set KEY=A..B/STEP` (or `KEY=V1,V2,...`): KEY is a YAML path into the site config
(`modes.tank_full_temp_c`, `loops.consumer_supply.kp`, `policy.heat_first.dump_offset_k`). For each
value the loaded YAML data (not its text) is edited, then validated again through the normal loader
path (`parse_config_text`: schema, cross-section checks, driver sources), so that a value which makes
the config invalid becomes that value's row with the loader's one-line reason, never a crash. The
valid values run in a process pool (2 workers by default: one run is single-threaded CPython).

A KEY that does not name a value of the config (no such section, an unknown key, a section rather
than a value) or a bad range raises SweepError: the verb prints it on one line and exits 2.
"""

from __future__ import annotations

import copy
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

import yaml

from controller.site.loader import ConfigError, format_path, parse_config_text

# More runs than this is a mistake in the range, not a sweep (each run is seconds to minutes).
MAX_VALUES = 100

# The KPI columns of a row, in the order they are printed.
COLUMNS = ("delivered_kwh", "dumped_kwh", "boiler_kwh", "erf", "comfort_deficit_kh", "throttled_hours",
           "mode_changes_per_day", "trips")


class SweepError(Exception):
    """A bad --set (key or range): one operator-readable line."""


@dataclass(frozen=True)
class SweepSpec:
    key: tuple[str | int, ...]
    values: tuple[Any, ...]

    @property
    def key_text(self) -> str:
        return format_path(self.key)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*/\s*({_NUMBER})\s*$")


def _key_path(text: str) -> tuple[str | int, ...]:
    """`loops.dump.kp` -> ('loops', 'dump', 'kp'); `a.b[2]` and `a.b.2` index lists."""
    parts: list[str | int] = []
    for seg in text.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", seg)
        if not seg or m is None or (not m.group(1) and not m.group(2)):
            raise SweepError(f"bad key {text!r}: expected a YAML path like modes.tank_full_temp_c")
        if m.group(1):
            parts.append(int(m.group(1)) if m.group(1).isdigit() else m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(parts)


def parse_set(text: str) -> SweepSpec:
    """Parse `KEY=A..B/STEP` (inclusive of B when the steps land on it) or `KEY=V1,V2,...`."""
    key_text, sep, spec = text.partition("=")
    if not sep or not key_text.strip() or not spec.strip():
        raise SweepError(f"bad --set {text!r}: expected KEY=A..B/STEP or KEY=V1,V2,...")
    key = _key_path(key_text.strip())
    if ".." in spec:
        m = _RANGE.match(spec)
        if m is None:
            raise SweepError(f"bad range {spec!r}: expected A..B/STEP with numbers, e.g. 40..50/2")
        try:
            a, b, step = (Decimal(x) for x in m.groups())
        except InvalidOperation:  # pragma: no cover - the regex only passes numbers
            raise SweepError(f"bad range {spec!r}: expected numbers") from None
        if step <= 0:
            raise SweepError(f"bad range {spec!r}: STEP must be > 0")
        if b < a:
            raise SweepError(f"bad range {spec!r}: A must be <= B")
        n = int((b - a) / step) + 1
        if n > MAX_VALUES:
            raise SweepError(f"bad range {spec!r}: {n} values, at most {MAX_VALUES}")
        # Decimal steps: 0.1 + 0.2 stays 0.3. Integers stay integers (a strict int field needs one).
        integral = all(x == x.to_integral_value() and "." not in s and "e" not in s.lower()
                       for x, s in zip((a, b, step), m.groups()))
        dec = [a + i * step for i in range(n)]
        values: tuple[Any, ...] = tuple(int(v) if integral else float(v) for v in dec)
    else:
        items = [s.strip() for s in spec.split(",")]
        if any(not s for s in items):
            raise SweepError(f"bad value list {spec!r}: expected V1,V2,... with no empty item")
        try:
            values = tuple(yaml.safe_load(s) for s in items)
        except yaml.YAMLError:
            raise SweepError(f"bad value list {spec!r}: each item must be a plain YAML value") from None
        if any(isinstance(v, (dict, list)) for v in values):
            raise SweepError(f"bad value list {spec!r}: each item must be a single value")
        if len(values) > MAX_VALUES:
            raise SweepError(f"bad value list: {len(values)} values, at most {MAX_VALUES}")
    return SweepSpec(key, values)


def _set_path(data: Any, key: tuple[str | int, ...], value: Any) -> list[tuple[str | int, ...]]:
    """Set data[key...] = value, creating missing mappings on the way (the schema judges them).

    Returns the paths it created (a section the file leaves to its defaults, or a key it omits).
    """
    node = data
    created: list[tuple[str | int, ...]] = []
    for i, part in enumerate(key[:-1]):
        where = format_path(key[: i + 1])
        if isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
                created.append(key[: i + 1])
            node = node[part]
        elif isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise SweepError(f"no such key {format_path(key)}: {where} is not an item of that list")
            node = node[part]
        else:
            raise SweepError(f"no such key {format_path(key)}: {format_path(key[:i])} is a value, not a section")
        if not isinstance(node, (dict, list)):
            raise SweepError(f"no such key {format_path(key)}: {where} is a value, not a section")
    last = key[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise SweepError(f"no such key {format_path(key)}: not an item of that list")
    elif isinstance(node.get(last), (dict, list)):
        raise SweepError(f"bad key {format_path(key)}: it is a section, not a value; name one of its keys")
    elif last not in node:
        created.append(key)
    node[last] = value
    return created


def _unknown_key(problems: list[str], key: tuple[str | int, ...],
                 created: list[tuple[str | int, ...]]) -> str | None:
    """The path that makes KEY not a key of the site config, if the loader says so.

    An unknown key on the swept path or a parent; or an entry the sweep had to create in a map of
    named entries (points, trips, drivers) that is then missing its required keys.
    """
    for i in range(len(key), 0, -1):
        marker = f": {format_path(key[:i])}: unknown key"
        for line in problems:
            if marker in line:
                return format_path(key[:i])
    for path in created:
        marker = f": {format_path(path)}."
        for line in problems:
            if marker in line and "missing required key" in line:
                return format_path(path)
    return None


@dataclass
class Row:
    value: Any
    error: str | None = None
    kpis: dict[str, Any] | None = None
    wall_s: float = 0.0


def _strip_location(line: str, path: str) -> str:
    """'file:12: modes.x: message' -> 'modes.x: message' (the line is of the edited data, not the file)."""
    prefix = f"{path}:"
    if line.startswith(prefix):
        rest = line[len(prefix):]
        _, _, after = rest.partition(": ")
        return after or line
    return line


def configs_for(base_text: str, spec: SweepSpec, path: str = "<config>",
                base_set: dict[tuple[str | int, ...], Any] | None = None
                ) -> list[tuple[Any, str | None, str | None]]:
    """For each value: (value, config text if valid, else None, the one-line reason if invalid).

    `base_set` edits the base first, for every value (e.g. {("site", "policy"): "heat_first"}).
    Raises SweepError if the key does not name a value of the site config.
    """
    base = yaml.safe_load(base_text)
    if not isinstance(base, dict):
        raise SweepError("the site config is not a mapping")
    for k, v in (base_set or {}).items():
        _set_path(base, k, v)
    out: list[tuple[Any, str | None, str | None]] = []
    label = f"{path} [{spec.key_text}]"
    for value in spec.values:
        data = copy.deepcopy(base)
        created = _set_path(data, spec.key, value)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        try:
            parse_config_text(text, label)
        except ConfigError as exc:
            unknown = _unknown_key(exc.problems, spec.key, created)
            if unknown is not None:
                raise SweepError(f"no such key {spec.key_text}: {unknown} is not part of the site config") from None
            reason = "; ".join(_strip_location(p, label) for p in exc.problems)
            out.append((value, None, reason))
            continue
        out.append((value, text, None))
    return out


def _run_one(args: tuple[str, str, float | None, float | None, bool]) -> tuple[dict[str, Any], float]:
    """Worker: parse the config text, run the scenario, return the KPI row (picklable)."""
    import time

    from simulations.runners.closed_loop import run_scenario

    text, scenario_name, hours, tick_s, window = args
    site = parse_config_text(text, "<sweep>").site
    scenario = find_scenario(scenario_name)
    if window:
        from simulations.scenarios.year import window_of
        scenario = window_of(scenario)
    t0 = time.perf_counter()
    k, _ = run_scenario(site, scenario, hours=hours, tick_s=tick_s)
    wall = time.perf_counter() - t0
    days = k.hours / 24.0
    return {
        "delivered_kwh": k.delivered_kwh, "dumped_kwh": k.dumped_kwh, "boiler_kwh": k.boiler_kwh,
        "erf": k.erf, "comfort_deficit_kh": k.comfort_deficit_kh, "throttled_hours": k.throttled_hours,
        "mode_changes_per_day": k.mode_changes / days if days > 0 else 0.0,
        "trips": sum(k.trips.values()), "trip_names": sorted(k.trips),
        "hours": k.hours,
    }, wall


def find_scenario(name: str):
    """A scenario by name: the day scenarios, then the year scenarios (if that module is there)."""
    from simulations.scenarios.definitions import SCENARIOS

    if name in SCENARIOS:
        return SCENARIOS[name]
    try:
        from simulations.scenarios import year as year_scenarios  # type: ignore[attr-defined]
    except ImportError:
        return None
    for attr in ("SCENARIOS", "YEAR_SCENARIOS"):
        reg = getattr(year_scenarios, attr, None)
        if isinstance(reg, dict) and name in reg:
            return reg[name]
    return None


def scenario_names() -> list[str]:
    from simulations.scenarios.definitions import SCENARIOS

    names = list(SCENARIOS)
    try:
        from simulations.scenarios import year as year_scenarios  # type: ignore[attr-defined]
    except ImportError:
        return names
    for attr in ("SCENARIOS", "YEAR_SCENARIOS"):
        reg = getattr(year_scenarios, attr, None)
        if isinstance(reg, dict):
            names += [n for n in reg if n not in names]
    return names


def run_sweep(base_text: str, spec: SweepSpec, scenario_name: str, hours: float | None = None,
              tick_s: float | None = None, workers: int = 2, path: str = "<config>",
              progress: Callable[[Row], None] | None = None, window: bool = False,
              base_set: dict[tuple[str | int, ...], Any] | None = None) -> list[Row]:
    """One row per value, in the order of the values. Invalid values are rows with `error` set.

    `window`: run the scenario's short test window (year scenarios); `base_set`: see configs_for.
    """
    if find_scenario(scenario_name) is None:
        raise SweepError(f"unknown scenario {scenario_name!r}; expected one of: {', '.join(scenario_names())}")
    prepared = configs_for(base_text, spec, path, base_set)
    rows = [Row(v, error=err) for v, _, err in prepared]
    jobs = [(i, (text, scenario_name, hours, tick_s, window)) for i, (_, text, _) in enumerate(prepared)
            if text is not None]
    if workers <= 1 or len(jobs) <= 1:
        results = ((i, _run_one(a)) for i, a in jobs)
        for i, (kpis, wall) in results:
            rows[i].kpis, rows[i].wall_s = kpis, wall
            if progress:
                progress(rows[i])
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futures = {i: ex.submit(_run_one, a) for i, a in jobs}
            for i, fut in futures.items():
                rows[i].kpis, rows[i].wall_s = fut.result()
                if progress:
                    progress(rows[i])
    return rows
