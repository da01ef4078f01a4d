"""Load a site config from YAML, failing closed with one line per problem: file:line: path: what.

PyYAML keeps the last of two duplicate keys without a word; here a duplicate is an error. The text is
parsed with safe_load semantics (no Python objects), then validated in pydantic's strict JSON mode,
so that a quoted "5" is not taken for a number and an enum is one of its listed values.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from controller.config import SiteConfig
from controller.config_checks import Problem, check_site
from drivers.ipmi_config import IpmiPointSource
from drivers.modbus_config import ModbusPointSource
from drivers.opcua_config import OpcuaPointSource

YamlPath = tuple[str | int, ...]

SOURCE_MODELS: dict[str, type[BaseModel]] = {
    "modbus": ModbusPointSource,
    "opcua": OpcuaPointSource,
    "ipmi": IpmiPointSource,
}


class ConfigError(Exception):
    """A config that must not run. `problems` holds one operator-readable line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    site: SiteConfig
    path: str
    text: str
    sha256: str
    # point name -> its source, parsed by its driver's own schema
    sources: Mapping[str, BaseModel] = field(default_factory=dict)


def format_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _walk(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int], dups: list[Problem]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = path + (key,)
            if key in seen:
                dups.append(Problem(child, "duplicate key (YAML would silently keep the last one)"))
                lines[child] = key_node.start_mark.line + 1
                continue
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, dups)


def _line_for(path: YamlPath, lines: dict[YamlPath, int]) -> int:
    # A missing key has no line of its own: report the line of its nearest parent.
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key (not part of the schema; check its spelling)"
    if kind == "missing":
        return "missing required key"
    if kind in ("float_type", "int_type", "float_parsing", "int_parsing", "int_from_float"):
        expected = "an integer" if kind.startswith("int") else "a number"
        return f"expected {expected}, got {got!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got!r}"
    if kind in ("string_type",):
        return f"expected text, got {got!r}"
    if kind == "union_tag_invalid":
        return f"unknown driver kind {err.get('ctx', {}).get('tag')!r}; expected modbus, opcua or ipmi"
    if kind == "union_tag_not_found":
        return "missing required key 'kind' (modbus, opcua or ipmi)"
    msg = err.get("msg", kind)
    return f"{msg[0].lower()}{msg[1:]}, got {got!r}" if got is not None and not isinstance(got, (dict, list)) else msg


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("modbus", "opcua", "ipmi")))
        problems.append(Problem(loc, _describe(err)))
    return problems


def _json_safe(value: Any) -> Any:
    # JSON has no NaN or inf; keep them visible to the validator as text so they are rejected.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def parse_config_text(text: str, path: str = "<config>") -> LoadedConfig:
    """Parse and validate config text; raise ConfigError with file:line: path: message lines."""

    def fail(problems: list[Problem], lines: dict[YamlPath, int]) -> ConfigError:
        return ConfigError(
            [f"{path}:{_line_for(p.path, lines)}: {format_path(p.path)}: {p.message}" for p in problems]
        )

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{path}:{line}: YAML syntax error: {problem}"]) from None
    if root is None:
        raise ConfigError([f"{path}:1: the file is empty; expected a site configuration"])
    lines: dict[YamlPath, int] = {}
    dups: list[Problem] = []
    _walk(root, (), lines, dups)
    if dups:
        raise fail(dups, lines)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: expected a mapping of sections at the top level"])
    try:
        site = SiteConfig.model_validate_json(json.dumps(_json_safe(data), default=str), strict=True)
    except ValidationError as exc:
        raise fail(_pydantic_problems(exc), lines) from None

    problems = list(check_site(site))
    sources: dict[str, BaseModel] = {}
    for name, point in site.points.items():
        if point.source is None:
            continue
        driver_name = point.source.get("driver")
        driver = site.drivers.get(driver_name) if isinstance(driver_name, str) else None
        if driver is None:
            problems.append(
                Problem(("points", name, "source", "driver"),
                        f"names driver {driver_name!r}, which is not under drivers "
                        f"(have: {', '.join(sorted(site.drivers)) or 'none'})")
            )
            continue
        try:
            sources[name] = SOURCE_MODELS[driver.kind].model_validate_json(
                json.dumps(_json_safe(point.source)), strict=True
            )
        except ValidationError as exc:
            for p in _pydantic_problems(exc):
                problems.append(Problem(("points", name, "source") + p.path, p.message))
    problems.extend(_check_sources(site, sources))
    if problems:
        raise fail(problems, lines)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(site=site, path=path, text=text, sha256=digest, sources=sources)


def _check_sources(site: SiteConfig, sources: Mapping[str, BaseModel]) -> list[Problem]:
    problems = []
    for name, src in sources.items():
        if isinstance(src, IpmiPointSource) and src.bmc is not None:
            driver = site.drivers[src.driver]
            names = [b.name for b in driver.bmcs]  # type: ignore[union-attr]
            if src.bmc not in names:
                problems.append(Problem(("points", name, "source", "bmc"),
                                        f"names BMC {src.bmc!r}, not one of {names}"))
    return problems


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a site config file; raise ConfigError (never anything else) on failure."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such file; expected a site configuration (YAML)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc.__class__.__name__}: {exc}"]) from None
    return parse_config_text(text, str(p))
