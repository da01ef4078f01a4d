"""Physical model of the reference plant (shared/design/PLANT.md): lumped water masses, exact energy books.

Pure and deterministic: no clock, no I/O, no randomness. The caller owns time: it commands with
`set_actuators(a, now_s)`, moves the plant with `advance(dt_s, loads)`, and reads
`measurements()` and `meters`.

Topology and nodes (each node is a well-mixed water mass M_i at temperature T_i)::

    servers --q_cap--> [IT return R] --HX hot--> [IT supply S] --P1--> servers
                                       |  q_hx
    [bldg return BR] --HX cold--> [bldg supply BS] --V1--+-- (1-v) --> consumer HX --+
          ^                                               +--   v   --> tank top      |
          +---- dump cooler D1 <---- mix <---- tank bottom <---------------------------+
    tank top --P3--> [consumer circuit C] --same flow--> tank bottom
    [C] --load--> consumer;  boiler --> [C];  consumer HX: [BS branch] --q_chx--> [C]

Equations (C_x = m_dot_x c_p, capacity rate in W/K; G = UA-derived conductance in W/K):

- Servers, each of N: P_target = min(P_idle + load (P_max - P_idle), max(cap / N, P_idle));
  dP/dt = (P_target - P) / tau. The cap is shared in proportion to max power (all servers are
  alike, so cap / N); a BMC cannot hold a server below its idle power, so a share below idle
  holds it at idle. Self-protection on the coolant they see (T_R): above server_throttle_c the
  target is idle, above server_shutdown_c it is 0 (powered off). IT power P_it = N P; q_cap = f_capture P_it goes into the water, the rest
  heats the room (room_loss).
- IT loop, two nodes of half the loop volume each. Flow F1 = p1/100 F1_max (x low_flow fraction;
  0 if P1 failed). M_R c dT_R/dt = C_it (T_S - T_R) + q_cap;  M_S c dT_S/dt = C_it (T_R - T_S) - q_hx.
- Plate HX, counterflow epsilon-NTU: NTU = UA / C_min, Cr = C_min / C_max,
  eps = (1 - e^(-NTU (1 - Cr))) / (1 - Cr e^(-NTU (1 - Cr)))  (eps = NTU / (1 + NTU) at Cr = 1);
  q_hx = eps C_min (T_R - T_BR). Signed: a building loop hotter than the IT loop heats it.
- Building loop, two nodes of half its volume. F2 = p2/100 F2_max. V1 sends a share v = v1/100 to
  the tank top (C_ch = v C_b) and the rest through the consumer HX (C_br = (1 - v) C_b).
  M_BS c dT_BS/dt = C_b (T_BR - T_BS) + q_hx;  M_BR c dT_BR/dt = H_mix - q_d - C_b T_BR, where
  H_mix = C_br T_BS - q_chx + C_ch T_bottom is the enthalpy flow of the mixed return.
  B_return (the reading) is T_BR, the HX cold inlet, downstream of the dump cooler.
- Dump cooler D1 on the mixed return, as a coil against air of unlimited capacity:
  q_d = C_b (1 - e^(-UA_d' / C_b)) (T_mix - T_ambient), UA_d' = d1/100 UA_dump, clamped >= 0; this
  is ~ UA_d' (T - T_ambient) at high water flow and can never cool the water below ambient.
- Consumer circuit, one node C at the consumer supply temperature T_C. Load
  q_load = demand (T_C - T_ref) / (T_set - T_ref), >= 0 (so at T_C = T_set it takes its demand),
  and at most consumer_max_uptake_ratio x demand: above its setpoint the consumer's own control
  valve throttles, so a warmer supply does not buy an unlimited sink. Only min(q_load, demand) is
  useful (meters.useful_load_j); what it takes beyond its demand overheats the pool or building.
  Its return, T_cr = T_C - q_load / C_cf (C_cf = the consumer's own circulation), is the cold
  inlet of the counterflow consumer HX: q_chx = eps C_min (T_BS - T_cr), >= 0 (the HX's primary
  closes rather than let the consumer heat the building loop: the usual preheat arrangement, and
  it keeps boiler heat out of the dump). Unavailable or offline consumer: q_load = q_chx = 0.
  M_C c dT_C/dt = q_chx + q_dis + q_boiler - q_load.
- Tank, n layers top (0) to bottom (n-1), plug flow. Charge: C_ch enters the top at T_BS, the
  same flow leaves the bottom to the return. Discharge P3: C_dis = p3/100 F3_max c leaves the top
  into node C, the same flow returns from C into the bottom. Between layers the net flow
  C_ch - C_dis moves water down (or up), upwind. q_chg = C_ch (T_BS - T_bottom),
  q_dis = C_dis (T_top - T_C). Loss per layer (UA_tank / n)(T_k - T_room). After each step a
  layer warmer than the one above it mixes with it (buoyancy; equal masses, energy kept).
- Boiler: when enabled (or in BMS fallback), q_boiler = P_boiler clamp((T_set - T_C) / band, 0, 1).
- Pumps and fan draw P_max (pct/100)^3 (affinity law); their heat in the water is neglected
  (~1 kW against ~30 kW, and it would only shift the balance, not the control problem).
- Loop pressure: with a leak p' = -p / tau_leak; without, it recovers toward nominal with
  tau_refill. The leaking water's heat and the pressure's effect on flow are neglected.
- BMS fallback: when the heartbeat has not moved for heartbeat_timeout_s, P1 = P2 = D1 = 100 %,
  V1 = P3 = 0, boiler on, whatever was commanded, until the heartbeat moves again (or, with the
  bms_fallback fault, from the fault's injection until it is cleared).

Water properties (controller.core.water) are taken at 40 degC, the loops' design temperature, and held
constant: c_p varies < 0.05 % over 20-60 degC and density ~1 %, and constant properties make the
stored heat sum(M_i c T_i) an exact state function, so the books close.

Integration: explicit Euler in equal substeps no longer than 0.3 of the fastest node's time
constant at full flow (13 s for the reference plant: one substep per 1 s or 10 s tick). Every
flux is computed once from the temperatures at the start of the substep and applied to both sides
(the node it leaves and the node it enters, or a meter), so the whole-plant energy balance closes to
rounding by construction; energy_balance_error() is the check. Server power uses the exact
exponential step of its first-order lag.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from controller.core.water import cp_j_per_kg_k, density_kg_m3
from simulations.plant import faults as F
from simulations.plant.faults import Fault
from simulations.plant.config import PlantConfig
from simulations.plant.warm import warm_cost

# Water properties at the loops' design temperature (see the module docstring).
DESIGN_TEMP_C = 40.0
CP_J_PER_KG_K = cp_j_per_kg_k(DESIGN_TEMP_C)
RHO_KG_M3 = density_kg_m3(DESIGN_TEMP_C)
# Capacity rate of 1 m3/h of water (W/K).
W_PER_K_PER_M3H = RHO_KG_M3 * CP_J_PER_KG_K / 3600.0
# Substep <= this share of the fastest node's time constant: explicit Euler stays monotone (each new
# temperature a convex mix of old ones) below 1.0; 0.3 keeps it also accurate to ~15 % per step.
SUBSTEP_SAFETY = 0.3


@dataclass
class Actuators:
    """What the controller (or the BMS fallback) commands. Percentages are clamped to 0..100."""

    p1_pct: float = 50.0  # IT loop pump speed
    p2_pct: float = 70.0  # building loop pump
    p3_pct: float = 0.0  # tank discharge pump (tank top -> consumer circuit)
    v1_pct: float = 0.0  # diverting valve: share of building flow to the tank (0 = all to consumer)
    d1_pct: float = 0.0  # dump cooler fan
    boiler_enable: bool = False
    power_cap_w: float = 1e9  # site IT power cap, shared among servers in proportion to max power
    heartbeat: int = 0


@dataclass
class Loads:
    """The outside world at this moment."""

    it_load_fraction: float  # 0..1 of each server's max power that the workload wants
    consumer_demand_w: float  # heat the consumer takes at its setpoint supply temperature
    consumer_available: bool
    ambient_c: float


@dataclass(frozen=True)
class Measurements:
    """True physical values, with injected sensor faults applied. Units as in controller/site/roles.py."""

    server_power_w: tuple[float, ...]
    it_supply_c: float
    it_return_c: float
    it_flow_m3h: float
    b_supply_c: float
    b_return_c: float
    b_flow_m3h: float
    consumer_supply_c: float
    consumer_demand_w: float
    consumer_available: bool
    tank_top_c: float
    tank_bottom_c: float
    tank_layers_c: tuple[float, ...]
    leak: tuple[bool, ...]  # detectors: cdu, rack
    ambient_c: float
    loop_pressure_bar: float
    boiler_on: bool  # the boiler's run permit (commanded or forced by the fallback)
    fallback_active: bool  # the BMS took over because the heartbeat stopped
    # Diagnostics, not BMS points: heat flows of the last substep (W).
    boiler_w: float = 0.0
    consumer_load_w: float = 0.0
    dump_w: float = 0.0
    hx_w: float = 0.0
    p3_flow_m3h: float = 0.0


# Measurement fields that hold floats (or tuples of floats): the ones a sensor_nan may hit.
_FLOAT_FIELDS = frozenset(
    f.name for f in dataclasses.fields(Measurements) if f.type in ("float", "tuple[float, ...]")
)
_ALL_FIELDS = frozenset(f.name for f in dataclasses.fields(Measurements))
_new = object.__new__


@dataclass
class Meters:
    """Energy integrated since the start (J), every register >= 0.

    A heat flow that can run either way has two registers (forward, reverse), as a bidirectional
    heat meter does. Sub-balances (see Plant.balances):
      IT loop:   stored change = captured - hx + hx_reverse
      building:  stored change = hx - hx_reverse - consumer_hx - charge + charge_reverse - dumped
      tank:      stored change = to_tank - from_tank - tank_loss + tank_gain
      consumer:  stored change = delivered - returned + boiler - consumer_load
    """

    it_j: float = 0.0  # electrical energy of the servers
    captured_j: float = 0.0  # IT heat into the liquid loop
    room_loss_j: float = 0.0  # IT heat not captured (to the room air)
    hx_j: float = 0.0  # IT loop -> building loop through the plate HX
    hx_reverse_j: float = 0.0  # building loop -> IT loop (building hotter than IT return)
    consumer_hx_j: float = 0.0  # building loop -> consumer circuit through the consumer HX
    charge_j: float = 0.0  # building loop -> tank (V1 branch)
    charge_reverse_j: float = 0.0  # tank -> building loop (V1 branch, tank hotter than supply)
    discharge_j: float = 0.0  # tank -> consumer circuit (P3)
    discharge_reverse_j: float = 0.0  # consumer circuit -> tank (P3 with a colder tank)
    to_tank_j: float = 0.0  # charge + discharge_reverse
    from_tank_j: float = 0.0  # discharge + charge_reverse
    delivered_j: float = 0.0  # net into the consumer circuit from building loop and tank, when > 0
    returned_j: float = 0.0  # ... when < 0 (only P3 with a tank colder than the circuit)
    consumer_load_j: float = 0.0  # heat the consumer took
    # ... of which useful: at most its demand at setpoint at each moment (the rest overheats it).
    useful_load_j: float = 0.0
    # Heat an exchanger moved beyond C_min x its inlet temperature difference: 0 in a physical plant.
    second_law_excess_j: float = 0.0
    dumped_j: float = 0.0
    boiler_j: float = 0.0
    pumps_j: float = 0.0  # electrical, P1 + P2 + P3
    fans_j: float = 0.0  # electrical, D1
    tank_loss_j: float = 0.0  # tank -> plant room
    tank_gain_j: float = 0.0  # plant room -> tank (tank colder than the room)
    fallback_s: float = 0.0  # time spent in BMS fallback


def counterflow_effectiveness(ntu: float, cr: float) -> float:
    """Effectiveness of a counterflow heat exchanger from NTU = UA/C_min and Cr = C_min/C_max."""
    if cr < 1.0 - 1e-9:
        x = math.exp(-ntu * (1.0 - cr))
        return (1.0 - x) / (1.0 - cr * x)
    return ntu / (1.0 + ntu)


def hx_conductance_w_per_k(c_a: float, c_b: float, ua: float) -> float:
    """eps * C_min of a counterflow HX (W/K): q = that * (T_hot_in - T_cold_in). 0 if a side has no flow."""
    if c_a <= 0.0 or c_b <= 0.0 or ua <= 0.0:
        return 0.0
    c_min, c_max = (c_a, c_b) if c_a <= c_b else (c_b, c_a)
    return counterflow_effectiveness(ua / c_min, c_min / c_max) * c_min


def coil_conductance_w_per_k(c_water: float, ua: float) -> float:
    """eps * C_water of a coil against air of unlimited capacity rate (W/K): C (1 - e^(-UA/C))."""
    if c_water <= 0.0 or ua <= 0.0:
        return 0.0
    return c_water * (1.0 - math.exp(-ua / c_water))


def _clamp_pct(x: float) -> float:
    x = float(x)
    if x != x:  # NaN command: the drive holds off
        return 0.0
    return 0.0 if x < 0.0 else 100.0 if x > 100.0 else x


class Plant:
    """The reference plant. See the module docstring for its equations."""

    def __init__(self, cfg: PlantConfig, t0_s: float = 0.0) -> None:
        self.cfg = cfg
        self.t_s = float(t0_s)
        n_layers = cfg.tank_layers
        rc = RHO_KG_M3 * CP_J_PER_KG_K  # J/(m3 K)
        # Heat capacities of the nodes (J/K).
        self._mc_it = 0.5 * cfg.it_loop_volume_m3 * rc
        self._mc_b = 0.5 * cfg.building_loop_volume_m3 * rc
        self._mc_layer = cfg.tank_volume_m3 / n_layers * rc
        self._mc_c = cfg.consumer_volume_m3 * rc
        self._c_cf = cfg.consumer_flow_m3h * W_PER_K_PER_M3H
        t_init = cfg.initial_temp_c
        self._t_its = self._t_itr = self._t_bs = self._t_br = self._t_c = t_init
        self._tank = [t_init] * n_layers
        self._srv_w = cfg.server_idle_w
        self._p_bar = cfg.loop_pressure_nominal_bar
        self._e0_parts = self._stored_parts_j()
        self._e0 = sum(self._e0_parts)
        self.meters = Meters()

        # Commands, heartbeat.
        self._cmd = Actuators()
        self._hb = self._cmd.heartbeat
        self._hb_t = self.t_s

        # Last loads seen (before the first advance: nothing demanded, ambient from config).
        self._demand_w = 0.0
        self._available = True
        self._ambient_c = cfg.ambient_temp_c
        self._load_fraction = 0.0

        # Faults and the flags the hot path reads.
        self._faults: list[Fault] = []
        # (fault, field, element index or None, 'stuck' | 'nan', held value)
        self._sensor_faults: list[tuple[Fault, str, int | None, str, Any]] = []
        self._pump_failed = {"p1": False, "p2": False, "p3": False}
        self._flow_fraction_p1 = 1.0
        self._leak_wet = [False, False]
        self._offline = False
        self._fb_forced = False

        # Last-substep heat flows, for the diagnostic measurements.
        self._q_boiler = self._q_load = self._q_dump = self._q_hx = 0.0

        # Substep limit at full flows (static, so a fallback mid-advance cannot make it unstable);
        # the consumer node's limit also depends on demand and is finished in advance().
        c_it_max = cfg.it_flow_max_m3h * W_PER_K_PER_M3H
        c_b_max = cfg.building_flow_max_m3h * W_PER_K_PER_M3H
        c_dis_max = cfg.tank_discharge_flow_max_m3h * W_PER_K_PER_M3H
        self._h_max_static = SUBSTEP_SAFETY * min(
            self._mc_it / c_it_max,
            self._mc_b / c_b_max,
            self._mc_layer / max(c_b_max, c_dis_max),
        )
        self._c_cons_static = c_dis_max + c_b_max + cfg.boiler_max_w / cfg.boiler_band_k
        self._h_cache = (None, 0.0, 0.0, 0.0)
        self._warm = warm_cost(cfg)
        # Building supply as the consumer's heat exchanger sees it, after the pipe's transport delay:
        # (plant time, temperature) samples, oldest first.
        self._bs_hist: collections.deque = collections.deque([(self.t_s, t_init)])
        # Flow-dependent coefficients, recomputed when commands, faults or the fallback change.
        self._co: tuple = ()
        self._co_fb = False
        self._co_dirty = True
        self._leaking = False
        self._const = (
            cfg.servers, cfg.server_idle_w, cfg.server_max_w, cfg.capture_fraction, 1.0 / self._c_cf,
            cfg.boiler_max_w, cfg.boiler_max_w / cfg.boiler_band_k, cfg.tank_loss_w_per_k / n_layers,
            cfg.plant_room_temp_c, cfg.loop_pressure_nominal_bar, cfg.consumer_setpoint_c,
            cfg.consumer_reference_temp_c, cfg.heartbeat_timeout_s, cfg.server_throttle_c,
            cfg.server_shutdown_c, 1.0 / (cfg.consumer_setpoint_c - cfg.consumer_reference_temp_c),
            self._mc_it, self._mc_b, self._mc_layer, self._mc_c,
        )

    # ------------------------------------------------------------------ commands and time

    def set_actuators(self, a: Actuators, now_s: float) -> None:
        """Take the latest commands; a changed heartbeat value restarts the BMS's timeout at now_s."""
        cmd = Actuators(
            _clamp_pct(a.p1_pct), _clamp_pct(a.p2_pct), _clamp_pct(a.p3_pct), _clamp_pct(a.v1_pct),
            _clamp_pct(a.d1_pct), bool(a.boiler_enable), max(0.0, float(a.power_cap_w)), a.heartbeat,
        )
        old = self._cmd
        if (cmd.p1_pct, cmd.p2_pct, cmd.p3_pct, cmd.v1_pct, cmd.d1_pct, cmd.boiler_enable) != (
            old.p1_pct, old.p2_pct, old.p3_pct, old.v1_pct, old.d1_pct, old.boiler_enable
        ):
            self._co_dirty = True
        self._cmd = cmd
        if a.heartbeat != self._hb:
            self._hb = a.heartbeat
            self._hb_t = float(now_s)

    def fallback_active(self) -> bool:
        """Whether the simulated BMS has taken over (heartbeat unchanged for heartbeat_timeout_s)."""
        return self._fb_forced or self.t_s - self._hb_t >= self.cfg.heartbeat_timeout_s

    def effective_actuators(self) -> Actuators:
        """What the plant actually runs on now: the commands, or the BMS fallback's."""
        c = self._cmd
        if self.fallback_active():
            return Actuators(100.0, 100.0, 0.0, 0.0, 100.0, True, c.power_cap_w, c.heartbeat)
        a = _new(Actuators)  # dataclasses.replace(c): a copy, without replace's per-call field walk
        a.__dict__.update(c.__dict__)
        return a

    def _coefficients(self, fallback: bool) -> tuple:
        """Flow-dependent coefficients; cached until commands, faults or the fallback change."""
        if not self._co_dirty and fallback == self._co_fb:
            return self._co
        c = self._cmd
        cfg = self.cfg
        if fallback:
            p1, p2, p3, v1, d1, boiler = 100.0, 100.0, 0.0, 0.0, 100.0, True
        else:
            p1, p2, p3, v1, d1, boiler = c.p1_pct, c.p2_pct, c.p3_pct, c.v1_pct, c.d1_pct, c.boiler_enable
        failed = self._pump_failed
        f1 = 0.0 if failed["p1"] else p1 / 100.0 * cfg.it_flow_max_m3h * self._flow_fraction_p1
        f2 = 0.0 if failed["p2"] else p2 / 100.0 * cfg.building_flow_max_m3h
        f3 = 0.0 if failed["p3"] else p3 / 100.0 * cfg.tank_discharge_flow_max_m3h
        c_it = f1 * W_PER_K_PER_M3H
        c_b = f2 * W_PER_K_PER_M3H
        c_dis = f3 * W_PER_K_PER_M3H
        c_ch = v1 / 100.0 * c_b
        c_br = c_b - c_ch
        g_hx = hx_conductance_w_per_k(c_it, c_b, cfg.hx_ua_w_per_k)
        g_chx = hx_conductance_w_per_k(c_br, self._c_cf, cfg.consumer_hx_ua_w_per_k)
        g_d = coil_conductance_w_per_k(c_b, d1 / 100.0 * cfg.dump_ua_w_per_k)
        # A failed pump's motor has tripped: it draws nothing. A throttled one (low_flow) still does.
        hs = cfg.pump_min_head_share

        def pump_w(p_max: float, pct: float) -> float:
            s_ = pct / 100.0  # flow ~ speed; head = min head + the rest ~ speed^2; power ~ flow x head
            return p_max * s_ * (hs + (1.0 - hs) * s_ * s_)

        pumps_w = (
            (0.0 if failed["p1"] else pump_w(cfg.pump_p1_max_w, p1))
            + (0.0 if failed["p2"] else pump_w(cfg.pump_p2_max_w, p2))
            + (0.0 if failed["p3"] else pump_w(cfg.pump_p3_max_w, p3))
        )
        fans_w = cfg.fan_d1_max_w * (d1 / 100.0) ** 3
        # The most each exchanger can move per kelvin of inlet difference (second law: C_min).
        cmin_hx = c_it if c_it < c_b else c_b
        cmin_chx = c_br if c_br < self._c_cf else self._c_cf
        self._co = (c_it, c_b, c_ch, c_dis, g_hx, g_chx, g_d, boiler, pumps_w, fans_w, f1, f2, f3, fallback,
                    cmin_hx, cmin_chx)
        self._co_fb = fallback
        self._co_dirty = False
        return self._co

    # ------------------------------------------------------------------ faults

    def inject(self, fault: Fault) -> None:
        """Start a fault (see simulations.plant.faults). Raises ValueError on a bad kind or target."""
        fault = F.validate(fault)
        if fault.kind in (F.SENSOR_STUCK, F.SENSOR_NAN):
            name, idx = F.parse_sensor_target(fault.target)
            if name not in _ALL_FIELDS:
                raise ValueError(f"no measurement field {name!r}; known: {sorted(_ALL_FIELDS)}")
            true = getattr(self._true_measurements(), name)
            if idx is not None and (not isinstance(true, tuple) or idx >= len(true)):
                raise ValueError(f"{fault.target!r}: no such element")
            if fault.kind == F.SENSOR_NAN:
                if name not in _FLOAT_FIELDS:
                    raise ValueError(f"sensor_nan needs a float field, {name!r} is not one")
                held: Any = None
            elif fault.value is None:
                held = true if idx is None else true[idx]  # frozen at the moment of injection
            else:
                sample = true if idx is None else true[idx]
                if isinstance(sample, tuple):
                    held = tuple(type(v)(fault.value) for v in sample)
                else:
                    held = type(sample)(fault.value)
            mode = "nan" if fault.kind == F.SENSOR_NAN else "stuck"
            self._sensor_faults.append((fault, name, idx, mode, held))
        self._faults.append(fault)
        self._apply_faults()

    def clear(self, fault_kind: str, target: str | int | None = None) -> None:
        """End every active fault of that kind (and of that target, if given)."""
        if fault_kind == F.LEAK and isinstance(target, str) and target in F.LEAK_DETECTORS:
            target = F.LEAK_DETECTORS.index(target)

        def hit(f: Fault) -> bool:
            return f.kind == fault_kind and (target is None or f.target == target)

        self._faults = [f for f in self._faults if not hit(f)]
        self._sensor_faults = [sf for sf in self._sensor_faults if not hit(sf[0])]
        self._apply_faults()

    @property
    def active_faults(self) -> tuple[Fault, ...]:
        """The faults in effect, oldest first."""
        return tuple(self._faults)

    def _apply_faults(self) -> None:
        """Turn the fault list into the flags the hot path reads."""
        fs = self._faults
        self._pump_failed = {p: any(f.kind == F.PUMP_FAILURE and f.target == p for f in fs) for p in F.PUMPS}
        fractions = [F.DEFAULT_LOW_FLOW_FRACTION if f.value is None else f.value for f in fs if f.kind == F.LOW_FLOW]
        self._flow_fraction_p1 = min(fractions) if fractions else 1.0
        self._leak_wet = [any(f.kind == F.LEAK and f.target == i for f in fs) for i in (0, 1)]
        self._offline = any(f.kind == F.CONSUMER_OFFLINE for f in fs)
        self._fb_forced = any(f.kind == F.BMS_FALLBACK for f in fs)
        self._leaking = self._leak_wet[0] or self._leak_wet[1]
        self._co_dirty = True

    # ------------------------------------------------------------------ physics

    def advance(self, dt_s: float, loads: Loads) -> None:
        """Integrate the physics over dt_s under `loads` (substeps internally; see module docstring)."""
        if dt_s < 0.0 or dt_s != dt_s:
            raise ValueError(f"dt_s must be >= 0, got {dt_s!r}")
        if dt_s == 0.0:
            return
        (n_srv, p_idle, p_max, f_cap, inv_ccf, b_max, b_gain, g_tl, t_room, p_nom, t_set, t_ref,
         hb_timeout, t_thr, t_shut, slope_per_w, mc_it, mc_b, mc_layer, mc_c) = self._const
        load = loads.it_load_fraction
        load = 0.0 if not load > 0.0 else 1.0 if load > 1.0 else load
        demand = loads.consumer_demand_w
        demand = demand if demand > 0.0 else 0.0
        avail = bool(loads.consumer_available) and not self._offline
        amb = float(loads.ambient_c)
        self._load_fraction, self._demand_w, self._available, self._ambient_c = load, demand, avail, amb
        slope = demand * slope_per_w if avail else 0.0  # W/K of consumer load
        q_cap_load = demand * self.cfg.consumer_max_uptake_ratio  # most it takes above setpoint (W)

        h_max = self._h_max_static
        h_c = SUBSTEP_SAFETY * mc_c / (self._c_cons_static + slope)
        if h_c < h_max:
            h_max = h_c
        n = 1 if dt_s <= h_max else math.ceil(dt_s / h_max)
        h = dt_s / n
        hc = self._h_cache
        if hc[0] != h:
            cfg = self.cfg
            hc = (
                h,
                1.0 - math.exp(-h / cfg.server_power_tau_s),
                math.exp(-h / cfg.leak_pressure_tau_s),
                1.0 - math.exp(-h / cfg.refill_pressure_tau_s),
            )
            self._h_cache = hc
        _, a_srv, a_leak, a_refill = hc

        # Server power target: the cap is shared in proportion to max power; never below idle.
        p_want = p_idle + load * (p_max - p_idle)
        share = self._cmd.power_cap_w / n_srv
        if share < p_idle:
            share = p_idle
        p_tgt = p_want if p_want < share else share
        p_idle_tgt = p_idle if p_idle < p_tgt else p_tgt
        w_ref, w_pk, w_fk = self._warm.ref_c, self._warm.power_per_k, self._warm.capture_drop_per_k
        warm = w_pk > 0.0 or w_fk > 0.0
        delay = self.cfg.consumer_pipe_delay_s
        hist = self._bs_hist

        # The fallback starts at this plant time (forced: already on).
        t_fb = -math.inf if self._fb_forced else self._hb_t + hb_timeout
        t = self.t_s
        fb = t >= t_fb
        co = self._co if (not self._co_dirty and fb == self._co_fb) else self._coefficients(fb)
        (c_it, c_b, c_ch, c_dis, g_hx, g_chx, g_d, boiler, pumps_w, fans_w, _, _, _, _, cmin_hx, cmin_chx) = co

        k_it = h / mc_it
        k_b = h / mc_b
        k_l = h / mc_layer
        k_c = h / mc_c
        leaking = self._leaking

        p_srv = self._srv_w
        its, itr, tbs, tbr, tc = self._t_its, self._t_itr, self._t_bs, self._t_br, self._t_c
        L = self._tank
        nl = len(L)
        p_bar = self._p_bar

        # Per-substep energies (W, times h at the end; every substep has the same h).
        s_it = s_hx = s_hxr = s_chx = s_chg = s_chgr = s_dis = s_disr = 0.0
        s_del = s_ret = s_load = s_dump = s_boil = s_tl = s_tg = s_pump = s_fan = s_fb = s_useful = s_ex = s_cap = 0.0
        q_boil = q_load = q_d = q_hx = 0.0

        for _ in range(n):
            if not fb and t >= t_fb:
                fb = True
                (c_it, c_b, c_ch, c_dis, g_hx, g_chx, g_d, boiler, pumps_w, fans_w, _, _, _, _, cmin_hx,
                 cmin_chx) = self._coefficients(True)
            if warm and its > w_ref:
                # Running warm: more electrical power for the same work (the BMC caps the total), and
                # with an air-to-water coil a smaller captured share (simulations.plant.warm).
                x = its - w_ref
                p_tgt = p_want * (1.0 + w_pk * x)
                if p_tgt > share:
                    p_tgt = share
                f_cap_now = f_cap - w_fk * x
                if f_cap_now < 0.0:
                    f_cap_now = 0.0
            else:
                p_tgt = p_want if p_want < share else share
                f_cap_now = f_cap
            if itr < t_thr:
                p_srv += (p_tgt - p_srv) * a_srv
            elif itr < t_shut:
                p_srv += (p_idle_tgt - p_srv) * a_srv
            else:
                p_srv -= p_srv * a_srv
            p_it = n_srv * p_srv
            q_cap = f_cap_now * p_it
            if delay > 0.0:
                while len(hist) > 1 and hist[1][0] <= t - delay:
                    hist.popleft()
                tbs_c = hist[0][1]
            else:
                tbs_c = tbs

            dt_hx = itr - tbr
            q_hx = g_hx * dt_hx
            # Second law: no exchanger moves more than C_min x its inlet difference (effectiveness <= 1).
            lim = cmin_hx * (dt_hx if dt_hx >= 0.0 else -dt_hx)
            ex = (q_hx if q_hx >= 0.0 else -q_hx) - lim
            if ex > 1e-9 * lim + 1e-9:
                s_ex += ex

            if avail:
                q_load = slope * (tc - t_ref)
                if q_load < 0.0:
                    q_load = 0.0
                elif q_load > q_cap_load:
                    q_load = q_cap_load  # the consumer's own valve closes above its setpoint
                tcr = tc - q_load * inv_ccf
                floor = t_ref if tc > t_ref else tc  # its return cannot be colder than the pool
                if tcr < floor:
                    tcr = floor
                q_chx = g_chx * (tbs_c - tcr)
                if q_chx < 0.0:
                    q_chx = 0.0
                else:
                    lim = cmin_chx * (tbs_c - tcr)
                    if q_chx - lim > 1e-9 * lim + 1e-9:
                        s_ex += q_chx - lim
            else:
                q_load = q_chx = 0.0

            if boiler and tc < t_set:
                q_boil = b_gain * (t_set - tc)
                if q_boil > b_max:
                    q_boil = b_max
            else:
                q_boil = 0.0

            top = L[0]
            bot = L[-1]
            q_chg = c_ch * (tbs - bot)
            q_dis = c_dis * (top - tc)

            # Mixed building return (enthalpy flow, W) through the dump cooler.
            h_mix = c_b * tbs - q_chx - q_chg
            if c_b > 0.0:
                q_d = g_d * (h_mix / c_b - amb)
                if q_d < 0.0:
                    q_d = 0.0
                elif g_d > c_b:  # a coil cannot cool the water below the air
                    s_ex += q_d - c_b * (h_mix / c_b - amb)
            else:
                q_d = 0.0

            # Tank layers: inflow at the ends, upwind net flow between layers, losses to the room.
            net = c_ch - c_dis
            new = L[:]
            q_tl = 0.0
            if net >= 0.0:
                prev = tbs
                cin = c_ch
                for k in range(nl):
                    lk = L[k]
                    loss = g_tl * (lk - t_room)
                    q_tl += loss
                    new[k] = lk + (cin * (prev - lk) - loss) * k_l
                    prev = lk
                    cin = net
                new[-1] += c_dis * (tc - bot) * k_l
            else:
                up = -net
                for k in range(nl):
                    lk = L[k]
                    loss = g_tl * (lk - t_room)
                    q_tl += loss
                    below = L[k + 1] if k + 1 < nl else tc
                    cin = up if k + 1 < nl else c_dis
                    new[k] = lk + (cin * (below - lk) - loss) * k_l
                new[0] += c_ch * (tbs - top) * k_l
            # Buoyancy: a layer warmer than the one above rises (mixes with it).
            for k in range(nl - 1):
                if new[k + 1] > new[k]:
                    m = 0.5 * (new[k] + new[k + 1])
                    new[k] = new[k + 1] = m
            L = new

            its, itr, tbs, tbr, tc = (
                its + (c_it * (itr - its) - q_hx) * k_it,
                itr + (c_it * (its - itr) + q_cap) * k_it,
                tbs + (c_b * (tbr - tbs) + q_hx) * k_b,
                tbr + (h_mix - q_d - c_b * tbr) * k_b,
                tc + (q_chx + q_dis + q_boil - q_load) * k_c,
            )

            if leaking:
                p_bar *= a_leak
            else:
                p_bar += (p_nom - p_bar) * a_refill

            s_it += p_it
            s_cap += q_cap
            if q_hx >= 0.0:
                s_hx += q_hx
            else:
                s_hxr -= q_hx
            s_chx += q_chx
            if q_chg >= 0.0:
                s_chg += q_chg
            else:
                s_chgr -= q_chg
            if q_dis >= 0.0:
                s_dis += q_dis
            else:
                s_disr -= q_dis
            q_del = q_chx + q_dis
            if q_del >= 0.0:
                s_del += q_del
            else:
                s_ret -= q_del
            s_load += q_load
            s_useful += q_load if q_load < demand else demand
            s_dump += q_d
            s_boil += q_boil
            if q_tl >= 0.0:
                s_tl += q_tl
            else:
                s_tg -= q_tl
            s_pump += pumps_w
            s_fan += fans_w
            if fb:
                s_fb += 1.0
            t += h
            if delay > 0.0:
                hist.append((t, tbs))

        self.t_s = self.t_s + dt_s
        self._srv_w = p_srv
        self._t_its, self._t_itr, self._t_bs, self._t_br, self._t_c = its, itr, tbs, tbr, tc
        self._tank = L
        self._p_bar = p_bar
        self._q_boiler, self._q_load, self._q_dump, self._q_hx = q_boil, q_load, q_d, q_hx

        m = self.meters
        m.it_j += s_it * h
        m.captured_j += s_cap * h
        m.room_loss_j += (s_it - s_cap) * h
        m.hx_j += s_hx * h
        m.hx_reverse_j += s_hxr * h
        m.consumer_hx_j += s_chx * h
        m.charge_j += s_chg * h
        m.charge_reverse_j += s_chgr * h
        m.discharge_j += s_dis * h
        m.discharge_reverse_j += s_disr * h
        m.to_tank_j += (s_chg + s_disr) * h
        m.from_tank_j += (s_dis + s_chgr) * h
        m.delivered_j += s_del * h
        m.returned_j += s_ret * h
        m.consumer_load_j += s_load * h
        m.useful_load_j += s_useful * h
        m.second_law_excess_j += s_ex * h
        m.dumped_j += s_dump * h
        m.boiler_j += s_boil * h
        m.tank_loss_j += s_tl * h
        m.tank_gain_j += s_tg * h
        m.pumps_j += s_pump * h
        m.fans_j += s_fan * h
        m.fallback_s += s_fb * h

    # ------------------------------------------------------------------ energy books

    def _stored_parts_j(self) -> tuple[float, float, float, float]:
        """Heat stored in the IT loop, building loop, tank and consumer circuit, relative to 0 degC (J)."""
        return (
            self._mc_it * (self._t_its + self._t_itr),
            self._mc_b * (self._t_bs + self._t_br),
            self._mc_layer * sum(self._tank),
            self._mc_c * self._t_c,
        )

    def stored_heat_j(self) -> float:
        """Heat stored in all water masses, sum(M_i c_p T_i), relative to 0 degC (J)."""
        return sum(self._stored_parts_j())

    def balances(self) -> dict[str, float]:
        """Residual (J) of each sub-balance (it, building, tank, consumer) and of the whole plant.

        Each is (inflows - outflows) - stored change of that part, from the meters; 0 up to
        rounding if every flux was booked on both sides.
        """
        m = self.meters
        now = self._stored_parts_j()
        d_it, d_b, d_tank, d_c = (a - b for a, b in zip(now, self._e0_parts))
        it = m.captured_j - m.hx_j + m.hx_reverse_j - d_it
        building = (
            m.hx_j - m.hx_reverse_j - m.consumer_hx_j - m.charge_j + m.charge_reverse_j - m.dumped_j - d_b
        )
        tank = m.to_tank_j - m.from_tank_j - m.tank_loss_j + m.tank_gain_j - d_tank
        consumer = m.delivered_j - m.returned_j + m.boiler_j - m.consumer_load_j - d_c
        return {"it": it, "building": building, "tank": tank, "consumer": consumer, "plant": self._plant_residual_j()}

    def _plant_residual_j(self) -> float:
        m = self.meters
        inputs = m.captured_j + m.boiler_j + m.tank_gain_j
        outputs = m.consumer_load_j + m.dumped_j + m.tank_loss_j
        return inputs - outputs - (self.stored_heat_j() - self._e0)

    def first_law_error(self) -> float:
        """|inputs - outputs - stored change| / inputs of the whole plant since the start (>= 0).

        inputs = the servers' electrical energy + boiler + tank heat gained from the room (the
        pumps' and fans' heat in the water is neglected, see the module docstring);
        outputs = room loss (uncaptured IT heat) + consumer load + dumped + tank losses; stored
        change = sum(M_i c_p dT_i) from the node temperatures. Every flux is booked on both sides, so
        this closes to rounding by construction: it catches a flux booked once, not bad physics.
        """
        m = self.meters
        inputs = m.it_j + m.boiler_j + m.tank_gain_j
        outputs = m.room_loss_j + m.consumer_load_j + m.dumped_j + m.tank_loss_j
        return abs(inputs - outputs - (self.stored_heat_j() - self._e0)) / max(inputs, 1.0)

    def second_law_error(self) -> float:
        """Heat moved beyond what the exchangers' inlet temperatures allow, / inputs (>= 0).

        Each exchanger can move at most C_min (T_hot,in - T_cold,in): an effectiveness above 1 (or a
        negative conductance reversing a flow) breaks it while the first law still closes.
        """
        m = self.meters
        return m.second_law_excess_j / max(m.it_j + m.boiler_j + m.tank_gain_j, 1.0)

    def energy_balance_error(self) -> float:
        """The plant's energy check: the worse of the first-law and second-law errors (>= 0)."""
        a, b = self.first_law_error(), self.second_law_error()
        return a if a > b else b

    # ------------------------------------------------------------------ readings

    def true_measurements(self) -> Measurements:
        """The physical values without sensor faults (for KPIs: what really happened)."""
        return self._true_measurements()

    def _true_measurements(self) -> Measurements:
        cfg = self.cfg
        fb = self.fallback_active()
        co = self._coefficients(fb)
        boiler_permit = co[7]
        srv = self._srv_w
        # Measurements(...) without its frozen __init__ (one object.__setattr__ per field, 24
        # fields, twice a tick in closed loop): the same object, every field given.
        m = _new(Measurements)
        m.__dict__.update(
            server_power_w=(srv,) * cfg.servers,
            it_supply_c=self._t_its,
            it_return_c=self._t_itr,
            it_flow_m3h=co[10],
            b_supply_c=self._t_bs,
            b_return_c=self._t_br,
            b_flow_m3h=co[11],
            consumer_supply_c=self._t_c,
            consumer_demand_w=self._demand_w,
            consumer_available=self._available and not self._offline,
            tank_top_c=self._tank[0],
            tank_bottom_c=self._tank[-1],
            tank_layers_c=tuple(self._tank),
            leak=(self._leak_wet[0], self._leak_wet[1]),
            ambient_c=self._ambient_c,
            loop_pressure_bar=self._p_bar,
            boiler_on=bool(boiler_permit),
            fallback_active=fb,
            boiler_w=self._q_boiler,
            consumer_load_w=self._q_load,
            dump_w=self._q_dump,
            hx_w=self._q_hx,
            p3_flow_m3h=co[12],
        )
        return m

    def measurements(self) -> Measurements:
        """What the sensors read now: the true values with sensor faults applied."""
        m = self._true_measurements()
        if not self._sensor_faults:
            return m
        changes: dict[str, Any] = {}
        for _, name, idx, mode, held in self._sensor_faults:
            current = changes.get(name, getattr(m, name))
            if mode == "nan":
                value: Any = (math.nan,) * len(current) if idx is None and isinstance(current, tuple) else math.nan
            else:
                value = held
            if idx is not None:
                lst = list(current)
                lst[idx] = value
                value = tuple(lst)
            changes[name] = value
        return dataclasses.replace(m, **changes)
