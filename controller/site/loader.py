"""Load a site config from YAML, failing closed with one line per problem: file:line: path: what.

PyYAML keeps the last of two duplicate keys without a word; here a duplicate is an error. The text is
parsed with safe_load semantics (no Python objects), then validated in pydantic's strict JSON mode,
so that a quoted "5" is not taken for a number and an enum is one of its listed values.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from controller.site.access import permission_denied
from controller.site.models import SiteConfig
from controller.site.checks import Problem, ProblemRecord, check_site, point_kind
from controller.site.rules import WAIVABLE
from controller.site.source_checks import check_sources
from controller.site.waivers import apply_waivers
from controller.site.roles import PointKind, Role
from controller.site.ipmi_schema import IpmiPointSource
from controller.site.modbus_schema import ModbusPointSource
from controller.site.opcua_schema import OpcuaPointSource

YamlPath = tuple[str | int, ...]

SOURCE_MODELS: dict[str, type[BaseModel]] = {
    "modbus": ModbusPointSource,
    "opcua": OpcuaPointSource,
    "ipmi": IpmiPointSource,
}


class ConfigError(Exception):
    """A config that must not run. `problems` holds one operator-readable line each; `records` the
    same problems structured (file, line, key, rule, ...) when the site checks found them, plus the
    waived ones."""

    def __init__(self, problems: list[str], records: list[ProblemRecord] | None = None):
        super().__init__("\n".join(problems))
        self.problems = problems
        self.records = records


# Top-level sections that belong to a tool rather than to the site (the simulated plant's
# parameters): set aside before the site is validated, kept raw on it (`SiteConfig.extension`), and
# validated by the tool's own schema only when the caller passes it (`extensions=`). The daemon never
# passes one, so it never sees simulated plant parameters, yet runs a config that has them.
EXTENSION_SECTIONS = ("simulation",)


@dataclass(frozen=True)
class LoadedConfig:
    site: SiteConfig
    path: str
    text: str
    sha256: str
    # point name -> its source, parsed by its driver's own schema
    sources: Mapping[str, BaseModel] = field(default_factory=dict)
    # Problems the config's `waive:` entries accept, each with its entry's reason.
    waived: tuple[ProblemRecord, ...] = ()
    # YAML path -> line, to place problems found after loading (controller.site.files).
    lines: Mapping[YamlPath, int] = field(default_factory=dict)

    def line_of(self, path: YamlPath) -> int:
        return line_for(path, dict(self.lines))


def format_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def walk_yaml(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int], problems: list[Problem]) -> None:
    """Record each YAML path's line; report duplicate keys, non-text keys and non-plain tags."""
    lines.setdefault(path, node.start_mark.line + 1)
    # safe_load would refuse these with a traceback-shaped message and no path: say where they are.
    if node.tag not in yaml.SafeLoader.yaml_constructors:
        problems.append(Problem(path, f"YAML tag {node.tag!r} is not allowed; expected a plain value", "schema"))
        return
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                lines.setdefault(path + ("?",), key_node.start_mark.line + 1)
                problems.append(Problem(path + ("?",), "expected a plain key (a name), got a list or mapping as key",
                                        "schema"))
                continue
            key = key_node.value
            child = path + (key,)
            if key in seen:
                problems.append(Problem(child, "duplicate key (YAML would silently keep the last one)", "schema"))
                lines[child] = key_node.start_mark.line + 1
                continue
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            walk_yaml(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            walk_yaml(item, path + (i,), lines, problems)


def line_for(path: YamlPath, lines: dict[YamlPath, int]) -> int:
    # A missing key has no line of its own: report the line of its nearest parent.
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


# How YAML spells the non-finite floats; json_safe turns them into these strings so that the
# validator rejects them as numbers and the message shows what the operator wrote.
_NON_FINITE = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}


def _show(value: Any) -> str:
    """A value as it was written in YAML, short enough for one line."""
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in _NON_FINITE.values():
        return value
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


# pydantic's error type -> (its ctx key, the operator).
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _describe(err: Mapping[str, Any]) -> str:
    """One line saying what was expected and what was found; pydantic's own wording is not kept."""
    kind = err["type"]
    got = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key (not part of the schema; check its spelling)"
    if kind == "missing":
        return f"missing required key {err['loc'][-1]!r}" if err["loc"] else "missing required key"
    if kind in ("float_type", "int_type", "float_parsing", "int_parsing", "int_from_float"):
        expected = "an integer" if kind.startswith("int") else "a number"
        if got in _NON_FINITE.values():
            return f"expected {expected} (finite), got {got}"
        if _is_number_text(got):
            return f"expected {expected}, got the text {got!r} (a quoted value is text; remove the quotes)"
        return f"expected {expected}, got {_show(got)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_show(got)}"
    if kind == "string_type":
        return f"expected text, got {_show(got)}"
    if kind == "string_too_short":
        return f"expected at least {ctx.get('min_length')} character(s), got {_show(got)}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected')}, got {_show(got)}"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return f"expected a value {op} {ctx.get(key)}, got {_show(got)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value), got {_show(got)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {_show(got)}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} items, got {ctx.get('actual_length')}"
    if kind == "union_tag_invalid":
        return f"unknown driver kind {ctx.get('tag')!r}; expected modbus, opcua or ipmi"
    if kind == "union_tag_not_found":
        return "missing required key 'kind' (modbus, opcua or ipmi)"
    msg = str(err.get("msg", kind)).replace("Input should be", "expected")
    msg = msg[0].lower() + msg[1:] if msg else kind
    return f"{msg}, got {_show(got)}" if got is not None and not isinstance(got, (dict, list)) else msg


def pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # A driver's errors carry the union's tag after its name (drivers.x.modbus.port): drop it,
        # and only there, so that a driver that is itself named `modbus` keeps its name.
        if len(loc) >= 3 and loc[0] == "drivers" and loc[2] in ("modbus", "opcua", "ipmi"):
            loc = loc[:2] + loc[3:]
        if loc and loc[-1] == "range" or (len(loc) >= 2 and loc[-2] == "range" and isinstance(loc[-1], int)):
            # [min, max] is a pair: a missing or extra item is one problem with the pair.
            if err["type"] in ("missing", "too_long", "tuple_type"):
                loc = loc[:-1] if isinstance(loc[-1], int) else loc
                problems.append(Problem(loc, f"expected [min, max] (two numbers), got {_show(err.get('input'))}",
                                        "schema"))
                continue
        problems.append(Problem(loc, _describe(err), "schema"))
    return problems


def json_safe(value: Any) -> Any:
    # JSON has no NaN or inf; keep them visible to the validator as text so they are rejected.
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[str(value)]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


# libyaml composes the same node tree (tags, values, marks) several times faster. PyYAML's own
# parser stays the reference: it composes again whenever libyaml fails, so that a syntax error is
# reported in its words and at its mark, and a document only libyaml refuses is not refused.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


# A hostile or badly generated file can hold thousands of mistakes; the first ones are what
# an operator fixes first, the rest only scroll them away.
MAX_PROBLEMS_SHOWN = 50

# Nodes the config may hold once aliases are expanded: a real site is a few thousand; a
# "billion laughs" alias bomb is refused here before anything walks or validates it.
MAX_EXPANDED_NODES = 200_000


def check_aliases(root: yaml.Node) -> tuple[int, str] | None:
    """(line, message) for a recursive alias or an alias expansion over budget, else None.

    Counts each node's expanded size once (memoised on the shared node), so the check itself
    costs the size of the file, not of the expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            children = _children(node)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_EXPANDED_NODES:
                return (node.start_mark.line + 1,
                        f"aliases expand to more than {MAX_EXPANDED_NODES} values; "
                        f"expected a site configuration (an alias bomb?)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return (node.start_mark.line + 1, "an alias refers to the node that contains it "
                                              "(a recursive alias); expected a finite value")
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                return (child.start_mark.line + 1, "an alias refers to the node that contains it "
                                                   "(a recursive alias); expected a finite value")
            if id(child) not in sizes:
                stack.append((child, False))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# YAML events (keys, values, collection starts and ends) a file may hold, counted on the parser's
# stream before any node tree is built: composing the tree costs ~400 bytes and ~10 us a node, so
# a 4 MB file of 600,000 small keys took 250 MB and seconds (minutes on a loaded machine) before
# it was refused. The reference plant has ~1,400 events, a 1,083-point site (bench/bench_scale.py)
# ~24,000: 100,000 leaves four times that margin and refuses a hostile file in a fraction of a second.
MAX_YAML_EVENTS = 100_000


def events_over_budget(text: str, budget: int = MAX_YAML_EVENTS) -> int | None:
    """The line at which the file's YAML event stream exceeds `budget`, or None within it. Streams
    the events (constant memory) and stops at the budget; a syntax error is left to the composer."""
    loader = (_FAST_LOADER or yaml.SafeLoader)(text)
    n = 0
    try:
        while loader.check_event():
            ev = loader.get_event()
            n += 1
            if n > budget:
                mark = getattr(ev, "start_mark", None)
                return mark.line + 1 if mark is not None else 1
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def compose_yaml(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_config_text(text: str, path: str = "<config>",
                      extensions: Mapping[str, type[BaseModel]] | None = None) -> LoadedConfig:
    """Parse and validate config text; raise ConfigError with file:line: path: message lines.

    `extensions`: section name -> the schema that validates it (see EXTENSION_SECTIONS)."""

    def record(p: Problem, lines: dict[YamlPath, int], reason: str | None = None) -> ProblemRecord:
        message = p.message + (f" (waivable as rule {p.rule})" if p.rule in WAIVABLE and reason is None else "")
        return ProblemRecord(path, line_for(p.path, lines), format_path(p.path), p.rule, message,
                             waived=reason is not None, reason=reason or "")

    def fail(problems: list[Problem], lines: dict[YamlPath, int],
             waived: list[ProblemRecord] | None = None) -> ConfigError:
        records = [record(p, lines) for p in problems[:MAX_PROBLEMS_SHOWN]]
        shown = [r.line_text() for r in records]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"{path}: ... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
        return ConfigError(shown, records + list(waived or ()))

    over = events_over_budget(text)
    if over is not None:
        raise ConfigError([f"{path}:{over}: more than {MAX_YAML_EVENTS} YAML keys and values; expected a "
                           "site configuration (a large real site has ~24,000)"])
    try:
        root = compose_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "expected a single document ..., but found ..."
            problem = f"{context}, {problem}"
        raise ConfigError([f"{path}:{line}: YAML syntax error: {problem}"]) from None
    if root is None:
        raise ConfigError([f"{path}:1: the file is empty; expected a site configuration"])
    alias_problem = check_aliases(root)
    if alias_problem is not None:
        raise ConfigError([f"{path}:{alias_problem[0]}: {alias_problem[1]}"])
    lines: dict[YamlPath, int] = {}
    # Duplicate keys, non-text keys and non-plain tags stop here: past a duplicate, whatever else
    # looks wrong follows from YAML having kept the last of the two, and would only mislead.
    yaml_problems: list[Problem] = []
    walk_yaml(root, (), lines, yaml_problems)
    if yaml_problems:
        raise fail(yaml_problems, lines)
    try:
        # safe_load is compose + SafeConstructor; construct from the tree already composed above
        # rather than parse the text a second time (PyYAML's pure-Python parser is the slow part).
        constructor = yaml.SafeLoader("")
        try:
            data = constructor.construct_document(root)
        finally:
            constructor.dispose()
    except yaml.YAMLError as exc:  # not expected after the walk above; never a traceback all the same
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{path}:{mark.line + 1 if mark else 1}: YAML error: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:{root.start_mark.line + 1}: expected a mapping of sections "
                           f"(site:, points:, ...) at the top level, got {_yaml_kind(data)}"])
    ext_data = {name: data.pop(name) for name in EXTENSION_SECTIONS if name in data}
    ext_problems: list[Problem] = []
    for name, model in (extensions or {}).items():
        raw = ext_data.get(name)
        try:
            model.model_validate_json(json.dumps(json_safe(raw if raw is not None else {}), default=str),
                                      strict=True)
        except ValidationError as exc:
            ext_problems.extend(Problem((name,) + p.path, p.message, "schema") for p in pydantic_problems(exc))
    try:
        site = SiteConfig.model_validate_json(json.dumps(json_safe(data), default=str), strict=True)
    except ValidationError as exc:
        raise fail(pydantic_problems(exc) + ext_problems, lines) from None
    site._extensions = ext_data

    problems = ext_problems + list(check_site(site))
    sources: dict[str, BaseModel] = {}
    for name, point in site.points.items():
        if point.source is None:
            continue
        driver_name = point.source.get("driver")
        driver = site.drivers.get(driver_name) if isinstance(driver_name, str) else None
        if driver_name is None:
            problems.append(Problem(("points", name, "source"),
                                    f"missing required key 'driver' (one of: {', '.join(sorted(site.drivers)) or 'none'})"))
            continue
        if driver is None:
            problems.append(
                Problem(("points", name, "source", "driver"),
                        f"names driver {driver_name!r}, which is not under drivers "
                        f"(have: {', '.join(sorted(site.drivers)) or 'none'})")
            )
            continue
        try:
            sources[name] = SOURCE_MODELS[driver.kind].model_validate_json(
                json.dumps(json_safe(point.source)), strict=True
            )
        except ValidationError as exc:
            for p in pydantic_problems(exc):
                problems.append(Problem(("points", name, "source") + p.path, p.message, "schema"))
    problems.extend(_check_sources(site, sources))
    problems.extend(check_sources(site, sources))
    problems, waived_pairs = apply_waivers(site.waive, problems, format_path)
    waived = [record(p, lines, e.reason) for p, e in waived_pairs]
    if problems:
        raise fail(problems, lines, waived)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(site=site, path=path, text=text, sha256=digest, sources=sources,
                        waived=tuple(waived), lines=lines)


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {_show(value)}"
    return _show(value)


def _check_sources(site: SiteConfig, sources: Mapping[str, BaseModel]) -> list[Problem]:
    """Checks of a point's source against its driver and its role (both known only after parsing)."""
    problems = []
    for name, src in sources.items():
        base = ("points", name, "source")
        kind = point_kind(site, name)
        if isinstance(src, IpmiPointSource):
            driver = site.drivers[src.driver]
            names = [b.name for b in driver.bmcs]  # type: ignore[union-attr]
            if src.bmc is not None and src.bmc not in names:
                problems.append(Problem(base + ("bmc",), f"names BMC {src.bmc!r}, not one of {names}"))
            if src.bmc is None and site.points[name].role == Role.SERVER_POWER.value:
                problems.append(Problem(base, f"missing required key 'bmc': a server_power reading comes "
                                              f"from one BMC, one of {names}"))
        if isinstance(src, ModbusPointSource):
            # Coils and discrete inputs are single bits; a register type there would be misread.
            if src.table in ("coil", "discrete_input") and src.data_type != "bool":
                problems.append(Problem(base + ("data_type",) if "data_type" in site.points[name].source else base,
                                        f"a {src.table} holds one bit: expected data_type: bool, got {src.data_type}"))
            # Input registers and discrete inputs cannot be written: the actuator would never move.
            if kind is PointKind.ACTUATOR and src.table in ("input", "discrete_input"):
                problems.append(Problem(base + ("table",), f"point {name!r} is an actuator; expected a writable "
                                                            f"table (holding or coil), got {src.table}"))
    return problems


def load_config(path: str | Path, extensions: Mapping[str, type[BaseModel]] | None = None) -> LoadedConfig:
    """Read and validate a site config file; raise ConfigError (never anything else) on failure.

    `extensions`: as for `parse_config_text`."""
    p = Path(path)
    return parse_config_text(read_config_text(p), str(p), extensions)


# A site config is a few hundred kB at most; anything larger is a wrong file, not a config.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_config_text(p: Path) -> str:
    """Read a config file as UTF-8 text, refusing what is not a small regular file.

    Pure and thread-safe (no global state), so the daemon may call it from a worker thread.
    The file is opened non-blocking and checked with fstat before any read, so a FIFO,
    a device such as /dev/zero or a directory is refused at once instead of hanging."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such file; expected a site configuration (YAML)"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{p}: is a directory; expected a site configuration file (YAML)"]) from None
    except PermissionError:
        raise ConfigError([permission_denied(p)]) from None
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError([f"{p}: is a directory; expected a site configuration file (YAML)"])
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError([f"{p}: not a regular file (a device, FIFO or socket); "
                               f"expected a site configuration file (YAML)"])
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{p}: {st.st_size} bytes; expected a site configuration of at most "
                               f"{MAX_CONFIG_BYTES} bytes"])
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{p}: more than {MAX_CONFIG_BYTES} bytes; expected a site configuration"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError([f"{p}:{line}:{column}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                           f"expected a UTF-8 text file"]) from None
