"""The site configuration as typed, immutable objects.

Shape (see config/reference-plant.yaml for a commented example):

    site:      name and policy (compute_first / heat_first)
    tick_period_s
    drivers:   name -> modbus | opcua | ipmi connection settings
    points:    name -> role, unit, valid range, criticality, staleness limits, source
    loops:     the four PID loops, each naming its measurement and output point
    trips:     hard limits, each with its condition and actions (actuator point -> value)
    modes:     thresholds with hysteresis and dwell times for the automatic transitions
    power:     the site's IT power range and the safe_degrade cap
    policy:    the setpoints each site policy uses
    plant:     optional, the site's own plant facts (heat exchanger, dry cooler, flows, servers): the
               capacity envelope needs them and is off without them
    simulation: optional, the simulated plant's own parameters: an extension section the site model
               does not read (validated by `heatctl simulate`/`sim-plant`, never seen by the daemon)
    alarms:    optional, operator alarms (ISA-18.2) on points and derived signals, with owners
    raci:      optional, area (thermal, compute, controller, safety) -> owning team
    api:       optional, the control socket's group (default heatctl-operators)
    waive:     optional, safety rules this site does not meet, each with a reason (controller.site.rules)

Structural checks (types, unknown keys, ranges of single values) are pydantic's; checks across
sections (a loop naming a point that does not exist, a trip on the wrong side of its alarm) are in
`controller.site.checks`, and both report YAML paths, which `controller.site.loader` turns into
file:line messages.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr

from controller.site.roles import Role
from controller.site.rules import RULES, WAIVABLE
from controller.site.strict_model import StrictModel
from controller.site.ipmi_schema import IpmiDriverConfig
from controller.site.modbus_schema import ModbusDriverConfig
from controller.site.opcua_schema import OpcuaDriverConfig


class Policy(enum.Enum):
    # Heat is a by-product: IT keeps full power, unwanted heat is dumped, the boiler tops up.
    COMPUTE_FIRST = "compute_first"
    # The consumer's supply temperature is the promise: the IT loop runs as warm as limits allow.
    HEAT_FIRST = "heat_first"


class SiteInfo(StrictModel):
    name: str = Field(min_length=1)
    policy: Policy = Policy.COMPUTE_FIRST


DriverConfig = Annotated[
    Union[ModbusDriverConfig, OpcuaDriverConfig, IpmiDriverConfig], Field(discriminator="kind")
]


class PointConfig(StrictModel):
    """One reading or actuator. `unit` is the unit of the value after the driver's scaling."""

    role: str | None = None
    unit: str
    # Valid range [min, max]: a reading outside it is bad; a command is clamped into it.
    range: tuple[float, float]
    # A critical reading that is bad for longer than its grace period sends the plant to
    # safe_degrade (and trips sensor_lost, if configured).
    critical: bool = False
    # A reading older than this is stale: it is treated as lost, never as fresh.
    max_age_s: float = Field(5.0, gt=0)
    # For points that must move (temperatures under load): unchanged this long means frozen.
    frozen_after_s: float | None = Field(None, gt=0)
    # Largest believable change per second; a faster jump is a bad reading (a wiring fault).
    max_rate_per_s: float | None = Field(None, gt=0)
    # Where the value comes from: `driver:` names an entry under `drivers`; the other keys are that
    # driver's (register, node id, BMC). Checked against the driver's own schema after loading.
    source: dict[str, Any] | None = Field(None, description=(
        "where the value comes from: `driver:` names an entry under drivers; the other keys are that "
        "driver's. modbus: table (holding, input, coil, discrete_input), address, data_type, word_order, "
        "byte_order, scale, offset, device_id; the address is a 0-based register offset within the table "
        "(the address on the wire): 40001 is Modicon notation for holding register 0 and 30001 for input "
        "register 0, so write 0. opcua: node_id. ipmi: bmc (a server_power reading's BMC name)"))


class LoopConfig(StrictModel):
    """One PID loop. Gains are in output units per measurement unit (e.g. %/K)."""

    measurement: str
    output: str
    setpoint: float
    kp: float
    ki: float = Field(0.0, ge=0)
    kd: float = Field(0.0, ge=0)
    output_min: float
    output_max: float
    # Largest output change per second, up and down (a slew limiter: simple-pid has none).
    rate_up_per_s: float = Field(gt=0)
    rate_down_per_s: float = Field(gt=0)


class Loops(StrictModel):
    # P1 speed holds the IT loop dT (return - supply); measurement is the IT return temperature.
    it_delta_t: LoopConfig
    # V1 (charge the tank) and P3 (discharge it) hold the consumer supply temperature, split range.
    consumer_supply: LoopConfig
    # D1 fan keeps the building-loop return (the HX's cold inlet) below its setpoint.
    dump: LoopConfig
    # Override loop: lowers the site power cap as the IT supply temperature nears its limit.
    power_cap: LoopConfig


TripKind = Literal["high", "low", "leak", "low_flow", "sensor_lost"]


class TripConfig(StrictModel):
    """A hard limit. Its actions are applied in the tick its condition is seen, whatever else holds.

    high: `point` >= `limit`; low: `point` <= `limit`; leak: any leak-role point reads wet;
    low_flow: `point` < `limit` while IT power is above `it_idle_w`;
    sensor_lost: a critical reading has been bad for longer than its `grace_s`.
    """

    kind: TripKind
    point: str | None = None
    limit: float | None = None
    # The alarm threshold in front of the limit: for a high trip alarm < limit, for a low one >.
    alarm: float | None = None
    it_idle_w: float | None = Field(None, ge=0)
    grace_s: float = Field(0.0, ge=0)
    # Actuator point name -> value, in the point's unit.
    actions: dict[str, float]
    description: str = ""


class ModeThresholds(StrictModel):
    # No automatic transition sooner than this after the last one (anti-chatter).
    min_dwell_s: float = Field(300.0, ge=0)
    # Surplus (available heat minus demand) above `surplus_enter_w` for the dwell: buffer_charging.
    surplus_enter_w: float
    # ... and below `surplus_exit_w`: back to normal. exit < enter is the hysteresis.
    surplus_exit_w: float
    # Tank state of charge (0..1) that counts as full, and the one at which it takes heat again.
    tank_full_soc: float = Field(0.95, gt=0, le=1)
    tank_resume_soc: float = Field(0.85, ge=0, lt=1)
    # The tank temperatures that mean empty (0) and full (1) state of charge.
    tank_empty_temp_c: float
    tank_full_temp_c: float
    # A critical reading bad this long sends the plant to safe_degrade.
    critical_grace_s: float = Field(5.0, ge=0)
    # Leaving safe_degrade needs every cause gone for this long (and latched trips acknowledged).
    safe_degrade_exit_dwell_s: float = Field(120.0, ge=0)
    # Within this many kelvin of a high trip limit counts as "limit near" (safe_degrade).
    limit_near_k: float = Field(1.0, ge=0)


class PowerConfig(StrictModel):
    # The site's IT power cap range (W): the cap loop's output stays in [floor_w, max_w].
    max_w: float = Field(gt=0)
    floor_w: float = Field(ge=0)
    # Cap target in safe_degrade.
    safe_degrade_w: float = Field(ge=0)
    # IT power above this means the servers are working (for heat availability and low_flow).
    idle_w: float = Field(ge=0)


class PolicySettings(StrictModel):
    # IT loop dT setpoint (K) for P1: a warmer loop gives higher-grade heat, less margin.
    it_delta_t_k: float = Field(gt=0)
    # The power cap loop holds T_it_supply this far below the it_overtemp trip limit.
    cap_margin_k: float = Field(gt=0)
    # Boiler enabled when the consumer supply is this far below its setpoint.
    boiler_on_below_k: float = Field(ge=0)
    # Added to the dump loop's setpoint: a warmer building loop keeps heat for the consumer and
    # the tank instead of rejecting it, at the cost of IT thermal margin.
    dump_offset_k: float = Field(0.0, ge=0)
    # Added to modes.tank_full_temp_c: charge the tank hotter before it counts as full.
    tank_full_offset_k: float = Field(0.0, ge=0)


class PolicyConfig(StrictModel):
    compute_first: PolicySettings
    heat_first: PolicySettings


class OutputsConfig(StrictModel):
    # P2 runs at a fixed speed in automatic operation (the building loop has no PID of its own).
    p2_auto_pct: float = Field(70.0, ge=0, le=100)
    # Operator overrides longer than this are refused: every override must expire.
    max_override_s: float = Field(8 * 3600.0, gt=0)
    # The boiler thermostat's band (K above the switch-on point before it switches off) and the
    # least time between two automatic switches (s).
    boiler_hysteresis_k: float = Field(1.0, gt=0)
    boiler_min_switch_s: float = Field(600.0, ge=0)


class PlantDescription(StrictModel):
    """What the site's hardware can move, one key per fact, from its data sheets or commissioning
    measurements. The 24-hour capacity envelope is computed from these (controller/core/envelope.py);
    the simulated plant takes the same facts, so a simulation of the site is of this site."""

    # Plate heat exchanger between the IT loop and the building loop: UA (W/K), for epsilon-NTU.
    hx_ua_w_per_k: float = Field(gt=0)
    # Dry (dump) cooler at full fan: UA to ambient air (W/K).
    dump_ua_w_per_k: float = Field(gt=0)
    # Largest flows the pumps deliver (m3/h): P1 on the IT loop, P2 on the building loop.
    it_flow_max_m3h: float = Field(gt=0)
    building_flow_max_m3h: float = Field(gt=0)
    # Share of IT power that the liquid loop captures at design conditions (0.7-0.95 with direct
    # liquid cooling; lower for hybrid air-to-water).
    capture_fraction: float = Field(gt=0, le=1)
    # The servers: how many, and each one's maximum power (W).
    servers: int = Field(ge=1, le=4096)
    server_max_w: float = Field(gt=0)


class MeteringConfig(StrictModel):
    # Buffer tank water volume (m3): stored heat = volume * rho * c_p * (mean temp - empty temp).
    tank_volume_m3: float = Field(2.0, gt=0)
    # Longest gap between two ticks that is integrated; a longer one (a stall, a restart) is
    # counted as unmetered time rather than guessed.
    max_gap_s: float = Field(10.0, gt=0)


class PlanningConfig(StrictModel):
    # The 24-hour plan (controller.planning): HiGHS's time limit per solve, well under the re-plan
    # period (15 min); the solving process is killed after kill_after_s; deadlines are planned early.
    solve_time_limit_s: float = Field(0.5, gt=0, le=60)
    kill_after_s: float = Field(5.0, gt=0, le=600)
    deadline_guard_s: float = Field(3600.0, ge=0)
    # The daemon re-plans this often (s) off the tick. "auto": it plans when the site has a
    # workload: section (the plan's lever is Slurm); "on": always (needs plant:); "off": the rules.
    replan_every_s: float = Field(900.0, gt=0, le=3600)
    enabled: Literal["auto", "on", "off"] = "auto"


class WorkloadConfig(StrictModel):
    # The Slurm workload driver (drivers/slurm): this site's nodes and the heat-flexible partition/QOS.
    nodes: list[str] = Field(min_length=1)
    flexible_partition: str = "batch"
    flexible_qos: str = ""
    slurm_conf: str = ""
    timeout_s: float = Field(5.0, gt=0, le=60)
    every_s: float = Field(15.0, ge=0, le=3600)
    # Tank SoC (0..1) hysteresis: shed at or above, undo at or below; requeue at or above.
    shed_above_soc: float = Field(0.90, ge=0, le=1)
    resume_below_soc: float = Field(0.75, ge=0, le=1)
    requeue_above_soc: float = Field(0.95, ge=0, le=1)
    # True when the flexible partition spans other sites' nodes (one Slurm cluster for a fleet):
    # heatctl then never holds, releases or requeues jobs (they are the fleet's: a hold here would
    # keep them from the sites that want the heat); it drains only this site's nodes and sets their
    # weights, and Slurm's scheduler places the work.
    shared_partition: bool = False


AlarmKind = Literal["high", "low", "bad_reading", "condition"]
AlarmPriority = Literal["high", "medium", "low"]
# Who answers: the plant-room team, the IT operations team, or both (routing label `owner`).
Owner = Literal["facilities", "it_operations", "both"]
Area = Literal["thermal", "compute", "controller", "safety"]


class AlarmConfig(StrictModel):
    """An alarm (ISA-18.2): tells an operator something needs a response; it never acts on the plant.

    high: `point` >= `limit`, returns below `limit - deadband`; low: `point` <= `limit`, returns above
    `limit + deadband`; bad_reading: `point`'s reading fails validation; condition: a derived
    `signal` (see controller.core.alarms.SIGNALS) is true, or for a numeric signal, >= `limit`.
    """

    kind: AlarmKind
    point: str | None = None
    signal: str | None = None
    limit: float | None = None
    deadband: float = Field(0.0, ge=0)
    priority: AlarmPriority = "medium"
    # The condition must hold this long before the alarm goes active (filters noise)...
    on_delay_s: float = Field(0.0, ge=0)
    # ... and be gone this long before it returns (with the deadband: against chattering).
    off_delay_s: float = Field(0.0, ge=0)
    # The team that answers; unset: the raci table's owner of the alarm's area.
    owner: Owner | None = None
    # thermal, compute, controller or safety; unset: from the point's role or the signal.
    area: Area | None = None
    # Out of service by design (a sensor being replaced): evaluated, never annunciated.
    out_of_service: bool = False
    # Shelving longer than this is refused: a shelved alarm must come back on its own.
    max_shelve_s: float = Field(8 * 3600.0, gt=0)
    description: str = ""


class RaciConfig(StrictModel):
    """Area -> the owner responsible for it (RACI's R): who an alarm in that area is routed to."""

    thermal: Owner = "facilities"
    compute: Owner = "it_operations"
    controller: Owner = "it_operations"
    safety: Owner = "both"


class ApiConfig(StrictModel):
    """The daemon's control API (a unix socket, mode 0660). Read at start-up; a reload does not move
    the socket."""

    # The socket's group: its members can reach the daemon (`heatctl status`, and the change verbs
    # if they are also operators). `heatctl run --socket-group` overrides it; "" leaves the
    # daemon's own group. The default matches systemd/heatctl.sysusers.conf.
    socket_group: str = "heatctl-operators"


class WaiveEntry(StrictModel):
    """A safety rule this site does not meet, accepted on purpose: shown by `check-config` as a
    waived line and written to the audit log whenever the daemon loads the config."""

    rule: str = Field(description="the rule's id; waivable: " + ", ".join(sorted(WAIVABLE)) + ". Never "
                                  "waivable: " + ", ".join(sorted(set(RULES) - WAIVABLE)))
    key: str = Field(min_length=1, description="the key with the problem, as check-config names it "
                                               "(e.g. points.it_flow.frozen_after_s)")
    reason: str = Field(min_length=10, description="why this site differs, for whoever reads the audit log")


class SiteConfig(StrictModel):
    site: SiteInfo
    tick_period_s: float = Field(1.0, ge=0.1, le=60)
    drivers: dict[str, DriverConfig] = Field(default_factory=dict)
    points: dict[str, PointConfig]
    loops: Loops
    trips: dict[str, TripConfig]
    modes: ModeThresholds
    power: PowerConfig
    policy: PolicyConfig
    outputs: OutputsConfig = OutputsConfig()
    metering: MeteringConfig = MeteringConfig()
    plant: PlantDescription | None = None
    planning: PlanningConfig = PlanningConfig()
    workload: WorkloadConfig | None = None
    # Alarms (optional): name -> what is watched, priority, delays, owner.
    alarms: dict[str, AlarmConfig] = Field(default_factory=dict)
    raci: RaciConfig = RaciConfig()
    api: ApiConfig = ApiConfig()
    # Safety rules this site does not meet, each accepted explicitly with a reason.
    waive: tuple[WaiveEntry, ...] = Field(default=(), description=(
        "rules this site waives: [{rule, key, reason}]. " + "; ".join(f"{r}: {RULES[r]}" for r in sorted(WAIVABLE))))

    # Filled by the loader after the cross-section checks pass: role -> point names, and each
    # point's source parsed by its driver's schema. Not part of the YAML.
    # Role -> point names, built once: the step asks for it many times per tick.
    _by_role: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    # Extension sections (loader.EXTENSION_SECTIONS, e.g. `simulation:`) as raw data: kept for the
    # tool that owns them, never interpreted by the site model or the daemon.
    _extensions: dict[str, Any] = PrivateAttr(default_factory=dict)

    def extension(self, name: str) -> dict[str, Any]:
        """The raw data of an extension section (empty when the config has none)."""
        value = self._extensions.get(name)
        return dict(value) if isinstance(value, dict) else {}

    def with_extension(self, name: str, data: dict[str, Any]) -> "SiteConfig":
        """A copy of this site whose extension section `name` is `data` (what-if runs, tests)."""
        site = self.model_copy()
        site._extensions = {**self._extensions, name: dict(data)}
        return site

    def model_post_init(self, __context: Any) -> None:
        for name, p in self.points.items():
            if p.role is not None:
                self._by_role.setdefault(p.role, []).append(name)

    def points_with_role(self, role: Role) -> list[str]:
        return list(self._by_role.get(role.value, ()))

    def role_index(self) -> dict[Role, tuple[str, ...]]:
        """Role -> point names as a plain dict, for hot paths (pydantic attribute access is slow)."""
        return {r: tuple(self._by_role.get(r.value, ())) for r in Role}

    def point_for(self, role: Role) -> str:
        names = self.points_with_role(role)
        if len(names) != 1:
            raise KeyError(f"expected exactly one point with role {role.value}, found {names}")
        return names[0]

    @property
    def policy_settings(self) -> PolicySettings:
        if self.site.policy is Policy.HEAT_FIRST:
            return self.policy.heat_first
        return self.policy.compute_first
