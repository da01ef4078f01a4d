"""Cost model: capex, opex, avoided fuel and carbon, net benefit and payback, from simulated energies.

The model (config/cost-model.yaml, seed doc section 6) keeps capex, opex and avoided cost apart and
works in three cases (conservative, expected, aggressive). Its input is what a closed-loop run
metered, not nameplate: heat delivered to the consumer, IT electricity, and pumps and fans, over the
simulated period, scaled to a year by 8760 h / simulated hours.

Per case, per year:

    it_kwh          = IT_sim x scale x utilisation         (spent for compute anyway: shown, not charged)
    delivered_kwh   = min(delivered_sim x utilisation x capture, demand_sim) x scale
    avoided_fuel    = delivered_kwh / boiler_efficiency    (what the consumer's boiler would have burnt)
    avoided_cost    = avoided_fuel x fuel price
    aux_cost        = pumps_fans_sim x scale x electricity price   (the heat side's own electricity)
    opex            = sum(opex lines) x maintenance
    net_benefit     = avoided_cost - aux_cost - opex
    avoided_carbon  = avoided_fuel x fuel factor - pumps_fans x electricity factor
    annualised capex= capex / depreciation_years           (straight line, no interest)
    payback         = capex / net_benefit, "never" if net_benefit <= 0

Pumps and fans are not scaled by utilisation: they run whatever the load. The IT electricity is
not a cost of heat reuse (the servers run for their compute; their heat is a by-product), so it is
shown beside the result and never subtracted from it. Likewise, payback is given twice: on all
capex, and on the heat-reuse capex alone (without the compute hardware, a dual-use asset).

The config loads like the site config: unknown or duplicate keys, wrong types and inconsistent
cases stop it, one line per problem, `file:line: path: message`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from pydantic import Field, ValidationError

from controller.site.checks import Problem
from controller.site.loader import (ConfigError, YamlPath, compose_yaml, json_safe, line_for,
                                      pydantic_problems, walk_yaml, format_path)
from controller.site.paths import REPO_ROOT
from controller.site.strict_model import StrictModel

HOURS_PER_YEAR = 8760.0
DEFAULT_COST_MODEL = REPO_ROOT / "config" / "cost-model.yaml"
CASE_NAMES = ("conservative", "expected", "aggressive")


# --- the config ----------------------------------------------------------------------------------

class Capex(StrictModel):
    """One-off investment, in the model's currency."""

    compute: float = Field(ge=0)
    thermal_integration: float = Field(ge=0)
    controls_and_metering: float = Field(ge=0)
    civil_works: float = Field(ge=0)

    @property
    def total(self) -> float:
        return self.compute + self.thermal_integration + self.controls_and_metering + self.civil_works

    @property
    def heat_reuse(self) -> float:
        """Capex without the compute hardware (bought for its compute)."""
        return self.total - self.compute


class Opex(StrictModel):
    """Recurring costs per year."""

    maintenance: float = Field(ge=0)
    water_treatment: float = Field(ge=0)
    metering: float = Field(ge=0)
    support: float = Field(ge=0)

    @property
    def total(self) -> float:
        return self.maintenance + self.water_treatment + self.metering + self.support


class Prices(StrictModel):
    electricity_per_kwh: float = Field(ge=0)
    # Per kWh of the fuel the recovered heat displaces (as billed).
    fuel_per_kwh: float = Field(ge=0)
    # Heat out / fuel in. Above 1.1 is not a boiler (a condensing boiler on net CV reaches ~1.07).
    boiler_efficiency: float = Field(gt=0, le=1.1)


class Carbon(StrictModel):
    electricity_kg_per_kwh: float = Field(ge=0)
    fuel_kg_per_kwh: float = Field(ge=0)


class Case(StrictModel):
    """Multipliers on the simulated energies (utilisation, capture) and on the opex (maintenance)."""

    utilisation: float = Field(gt=0)
    capture: float = Field(gt=0)
    maintenance: float = Field(gt=0)


class Cases(StrictModel):
    conservative: Case
    expected: Case
    aggressive: Case


class CostModel(StrictModel):
    currency: str = Field(min_length=1)
    capex: Capex
    opex_per_year: Opex
    prices: Prices
    carbon: Carbon
    depreciation_years: float = Field(gt=0)
    cases: Cases


def _check_cases(m: CostModel) -> list[Problem]:
    """Cases in order: conservative assumes no more than expected, expected no more than aggressive."""
    problems = []
    c = m.cases
    for key, up in (("utilisation", True), ("capture", True), ("maintenance", False)):
        cons, exp, aggr = (getattr(getattr(c, n), key) for n in CASE_NAMES)
        word = "<=" if up else ">="
        if (cons > exp) if up else (cons < exp):
            problems.append(Problem(("cases", "conservative", key),
                                    f"{cons:g} must be {word} expected's {exp:g} (a conservative case assumes less)"
                                    if up else
                                    f"{cons:g} must be {word} expected's {exp:g} (a conservative case assumes more upkeep)"))
        if (exp > aggr) if up else (exp < aggr):
            problems.append(Problem(("cases", "aggressive", key),
                                    f"{aggr:g} must be {'>=' if up else '<='} expected's {exp:g}"))
    return problems


def parse_cost_model(text: str, path: str = "<cost model>") -> CostModel:
    """Parse and validate cost-model text; raise ConfigError with file:line: path: message lines."""
    import yaml

    lines: dict[YamlPath, int] = {}

    def fail(problems: list[Problem]) -> ConfigError:
        return ConfigError([f"{path}:{line_for(p.path, lines)}: {format_path(p.path)}: {p.message}"
                            for p in problems])

    try:
        root = compose_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{path}:{mark.line + 1 if mark else 1}: YAML syntax error: {problem}"]) from None
    if root is None:
        raise ConfigError([f"{path}:1: the file is empty; expected a cost model"])
    yaml_problems: list[Problem] = []
    walk_yaml(root, (), lines, yaml_problems)
    if yaml_problems:
        raise fail(yaml_problems)
    constructor = yaml.SafeLoader("")
    try:
        data = constructor.construct_document(root)
    finally:
        constructor.dispose()
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:{root.start_mark.line + 1}: expected a mapping of sections "
                           f"(capex:, opex_per_year:, ...) at the top level"])
    try:
        model = CostModel.model_validate_json(json.dumps(json_safe(data), default=str), strict=True)
    except ValidationError as exc:
        raise fail(pydantic_problems(exc)) from None
    problems = _check_cases(model)
    if problems:
        raise fail(problems)
    return model


def load_cost_model(path: str | Path = DEFAULT_COST_MODEL) -> CostModel:
    """Read and validate a cost model file; raise ConfigError (never anything else) on failure."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such file; expected a cost model (YAML)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc.__class__.__name__}: {exc}"]) from None
    return parse_cost_model(text, str(p))


# --- the input: simulated energies -----------------------------------------------------------

@dataclass(frozen=True)
class SimulatedEnergy:
    """What a closed-loop run metered over `hours` (kWh). `demand_kwh` None: demand not known."""

    hours: float
    it_kwh: float
    delivered_kwh: float
    pumps_fans_kwh: float
    demand_kwh: float | None = None

    FIELDS = ("hours", "it_kwh", "delivered_kwh", "pumps_fans_kwh")

    @classmethod
    def of(cls, kpis: Any) -> "SimulatedEnergy":
        """From a Kpis object (simulations.runners.closed_loop) or its JSON dict (`heatctl simulate --json`)."""
        get = kpis.get if isinstance(kpis, Mapping) else (lambda k, d=None: getattr(kpis, k, d))
        missing = [k for k in cls.FIELDS if get(k) is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (expected the KPIs of `heatctl simulate --json`)")
        vals = {}
        for k in cls.FIELDS + ("demand_kwh",):
            v = get(k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{k}: expected a finite number, got {v!r}")
            if v < 0:
                raise ValueError(f"{k}: expected a value >= 0, got {v!r}")
            vals[k] = float(v)
        if vals["hours"] <= 0:
            raise ValueError(f"hours: expected a value > 0, got {vals['hours']!r}")
        return cls(**vals)


# --- the output ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseResult:
    """One case, per year. Money in the model's currency; None payback: never."""

    case: str
    it_kwh: float
    it_electricity_cost: float       # shown, not charged to the heat reuse
    delivered_kwh: float
    avoided_fuel_kwh: float
    avoided_cost: float
    pumps_fans_kwh: float
    pumps_fans_cost: float
    opex: float
    net_benefit: float               # avoided_cost - pumps_fans_cost - opex
    avoided_carbon_kg: float         # fuel not burnt - pumps and fans' electricity
    annualised_capex: float
    net_after_depreciation: float    # net_benefit - annualised_capex
    payback_years: float | None      # capex total / net_benefit
    heat_reuse_payback_years: float | None  # (capex - compute) / net_benefit
    delivered_capped_by_demand: bool


@dataclass(frozen=True)
class CostReport:
    currency: str
    simulated_hours: float
    year_scale: float
    capex_total: float
    heat_reuse_capex: float
    cases: tuple[CaseResult, ...]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cases"] = {c.case: {k: v for k, v in asdict(c).items() if k != "case"} for c in self.cases}
        return d


def _payback(capex: float, benefit: float) -> float | None:
    return capex / benefit if benefit > 0 else None


def evaluate(model: CostModel, energy: SimulatedEnergy) -> CostReport:
    """The three cases from simulated energies. See the module docstring for the formulas."""
    scale = HOURS_PER_YEAR / energy.hours
    pr, co = model.prices, model.carbon
    annual_capex = model.capex.total / model.depreciation_years
    aux_kwh = energy.pumps_fans_kwh * scale
    results = []
    for name in CASE_NAMES:
        c: Case = getattr(model.cases, name)
        delivered_sim = energy.delivered_kwh * c.utilisation * c.capture
        capped = energy.demand_kwh is not None and delivered_sim > energy.demand_kwh
        if capped:
            delivered_sim = energy.demand_kwh  # type: ignore[assignment]
        delivered = delivered_sim * scale
        it_kwh = energy.it_kwh * c.utilisation * scale
        fuel = delivered / pr.boiler_efficiency
        avoided = fuel * pr.fuel_per_kwh
        aux_cost = aux_kwh * pr.electricity_per_kwh
        opex = model.opex_per_year.total * c.maintenance
        net = avoided - aux_cost - opex
        results.append(CaseResult(
            case=name, it_kwh=it_kwh, it_electricity_cost=it_kwh * pr.electricity_per_kwh,
            delivered_kwh=delivered, avoided_fuel_kwh=fuel, avoided_cost=avoided,
            pumps_fans_kwh=aux_kwh, pumps_fans_cost=aux_cost, opex=opex, net_benefit=net,
            avoided_carbon_kg=fuel * co.fuel_kg_per_kwh - aux_kwh * co.electricity_kg_per_kwh,
            annualised_capex=annual_capex, net_after_depreciation=net - annual_capex,
            payback_years=_payback(model.capex.total, net),
            heat_reuse_payback_years=_payback(model.capex.heat_reuse, net),
            delivered_capped_by_demand=capped,
        ))
    return CostReport(model.currency, energy.hours, scale, model.capex.total, model.capex.heat_reuse,
                      tuple(results))


def format_report(r: CostReport, title: str = "") -> str:
    """The three cases side by side, one row per figure."""
    cur = r.currency

    def money(x: float) -> str:
        return f"{x:,.0f}"

    def years(x: float | None) -> str:
        return "never" if x is None else f"{x:.1f}"

    rows: list[tuple[str, Any]] = [
        ("heat delivered (kWh/yr)", lambda c: f"{c.delivered_kwh:,.0f}" + (" *" if c.delivered_capped_by_demand else "")),
        ("fuel avoided (kWh/yr)", lambda c: f"{c.avoided_fuel_kwh:,.0f}"),
        (f"avoided fuel cost ({cur}/yr)", lambda c: money(c.avoided_cost)),
        ("pumps and fans (kWh/yr)", lambda c: f"{c.pumps_fans_kwh:,.0f}"),
        (f"pumps and fans cost ({cur}/yr)", lambda c: "-" + money(c.pumps_fans_cost)),
        (f"opex ({cur}/yr)", lambda c: "-" + money(c.opex)),
        (f"net annual benefit ({cur}/yr)", lambda c: money(c.net_benefit)),
        ("avoided carbon (t CO2e/yr)", lambda c: f"{c.avoided_carbon_kg / 1000:,.1f}"),
        (f"annualised capex ({cur}/yr)", lambda c: money(c.annualised_capex)),
        (f"net after depreciation ({cur}/yr)", lambda c: money(c.net_after_depreciation)),
        ("simple payback, all capex (yr)", lambda c: years(c.payback_years)),
        ("payback, heat-reuse capex (yr)", lambda c: years(c.heat_reuse_payback_years)),
        ("", None),
        ("IT electricity (kWh/yr)", lambda c: f"{c.it_kwh:,.0f}"),
        (f"IT electricity cost ({cur}/yr)", lambda c: money(c.it_electricity_cost)),
    ]
    out = []
    if title:
        out.append(title)
    out.append(f"  from {r.simulated_hours:g} simulated h, scaled x{r.year_scale:,.1f} to a year"
               + ("" if abs(r.year_scale - 1.0) < 0.01 else " (a short period scaled to a year is only as "
                                                           "typical as that period)"))
    out.append(f"  capex {money(r.capex_total)} {cur} (heat reuse without compute: {money(r.heat_reuse_capex)} {cur})")
    out.append("")
    out.append(f"  {'':34s}" + "".join(f"{c.case:>14s}" for c in r.cases))
    for label, fn in rows:
        if fn is None:
            out.append("  IT electricity is spent for the compute anyway: shown, not charged to heat reuse")
            continue
        out.append(f"  {label:34s}" + "".join(f"{fn(c):>14s}" for c in r.cases))
    if any(c.delivered_capped_by_demand for c in r.cases):
        out.append("  * capped at the consumer's simulated demand: heat nobody takes is worth nothing")
    return "\n".join(out)
