"""Parameters of the simulated plant (the `simulation:` section of a site config).

Defaults describe the reference plant of shared/design/PLANT.md: a 40 kW liquid-cooled micro data
centre heating a public pool through a plate heat exchanger, with a 2 m3 buffer tank.

The model that uses them, and its equations, is `simulations.plant.model`. With these defaults, at 85 %
IT load (34 kW, 28.9 kW captured), P1 60 %, P2 70 %, V1 0 and a 30 kW demand, the plant settles
with the pool circuit at ~39.6 degC and the IT supply at ~38 degC (tests/test_plant.py checks it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from controller.site.strict_model import StrictModel


class PlantConfig(StrictModel):
    servers: int = Field(8, ge=1, le=1024)
    server_max_w: float = Field(5000.0, gt=0)
    server_idle_w: float = Field(600.0, ge=0)
    # First-order lag of server power following its load and cap (s).
    server_power_tau_s: float = Field(5.0, gt=0)
    # Servers protect themselves from hot coolant (their outlet = the IT return): above
    # server_throttle_c the CPUs throttle to idle power, above server_shutdown_c they power off,
    # and they come back by themselves when it cools (a simplification: real BMCs may need a
    # power-on). Without this a stagnant IT loop would heat without bound.
    server_throttle_c: float = 65.0
    server_shutdown_c: float = 80.0
    # Share of IT power that enters the liquid loop (0.7-0.95 with direct liquid cooling).
    capture_fraction: float = Field(0.85, gt=0, le=1)
    it_loop_volume_m3: float = Field(0.15, gt=0)
    it_flow_max_m3h: float = Field(6.0, gt=0)
    building_loop_volume_m3: float = Field(0.4, gt=0)
    building_flow_max_m3h: float = Field(6.0, gt=0)
    # Plate heat exchanger UA (W/K), for epsilon-NTU. 15 kW/K is a ~40 kW plate HX sized for a
    # 2-3 K approach, the usual CDU design (6 kW/K left the IT supply in the high 40s at 34 kW).
    hx_ua_w_per_k: float = Field(15000.0, gt=0)
    tank_volume_m3: float = Field(2.0, gt=0)
    # Layers of the stratified tank model; more layers, less numerical mixing of the thermocline
    # (8 layers of 250 l each: the thermocline spreads over ~1/4 of the tank, a real tank's order).
    tank_layers: int = Field(8, ge=2, le=50)
    tank_loss_w_per_k: float = Field(5.0, ge=0)
    tank_discharge_flow_max_m3h: float = Field(3.0, gt=0)
    # Consumer loop: its water mass and the UA of its heat exchanger to the building loop
    # (counterflow; 12 kW/K gives a ~3 K approach at 30 kW).
    consumer_volume_m3: float = Field(1.0, gt=0)
    consumer_hx_ua_w_per_k: float = Field(12000.0, gt=0)
    # The consumer's own circulation through its side of that HX (m3/h): sets its return
    # temperature, supply - load / (m_dot c_p), ~5 K at 30 kW.
    consumer_flow_m3h: float = Field(5.0, gt=0)
    # The consumer's load is sized so that at this supply temperature it takes its demand.
    consumer_setpoint_c: float = 40.0
    consumer_reference_temp_c: float = 28.0
    # Most the consumer takes, as a multiple of its demand, however warm its supply (assumption:
    # its own thermostatic valve closes above setpoint; 10 % over for the valve's proportional band).
    consumer_max_uptake_ratio: float = Field(1.1, ge=1.0)
    # Dump cooler at full fan: UA to ambient (W/K).
    dump_ua_w_per_k: float = Field(3000.0, gt=0)
    boiler_max_w: float = Field(60000.0, ge=0)
    # Boiler thermostat: full output this far below the consumer setpoint, linear above (K).
    boiler_band_k: float = Field(1.0, gt=0)
    # The simulated BMS falls back to boiler + open dump when the heartbeat stops this long.
    heartbeat_timeout_s: float = Field(10.0, gt=0)
    # How the servers are cooled: sets what running warm costs (simulations.plant.warm: server power
    # and captured fraction against the coolant temperature, stated assumptions per kind).
    cooling: Literal["direct_liquid", "immersion", "hybrid_air_to_water"] = "direct_liquid"
    # Off only to compare with the model before these costs (never for results).
    warm_costs: bool = True
    # Pumps under differential-pressure control keep a minimum head: power ~ s (h + (1 - h) s^2)
    # at speed s, h = this share of the design head (assumption: a 30 % minimum delta-p setpoint),
    # instead of the pure cube law of an open system curve.
    pump_min_head_share: float = Field(0.3, ge=0, le=1)
    # Transport delay of the building supply on its way to the consumer's heat exchanger (s): the
    # long pipe from the plant room (assumption: ~60 m at ~1 m/s).
    consumer_pipe_delay_s: float = Field(60.0, ge=0, le=3600)
    pump_p1_max_w: float = Field(400.0, ge=0)
    pump_p2_max_w: float = Field(400.0, ge=0)
    pump_p3_max_w: float = Field(200.0, ge=0)
    fan_d1_max_w: float = Field(800.0, ge=0)
    ambient_temp_c: float = 10.0
    initial_temp_c: float = 30.0
    # The buffer tank stands indoors: its losses go to the plant room, not outdoors.
    plant_room_temp_c: float = 20.0
    # IT loop static pressure (bar): nominal, and how fast it falls with a leak (the expansion
    # vessel empties, time constant s) and recovers once the leak is gone (make-up unit refills).
    loop_pressure_nominal_bar: float = Field(2.0, gt=0)
    leak_pressure_tau_s: float = Field(60.0, gt=0)
    refill_pressure_tau_s: float = Field(300.0, gt=0)


# Facts of the real site: they live in the site's `plant:` section (and the tank volume in
# `metering.tank_volume_m3`), one key per fact, so the simulation of a site is of that site and the
# capacity envelope reads the same numbers. The `simulation:` section holds only the rest.
SITE_FACTS = ("hx_ua_w_per_k", "dump_ua_w_per_k", "it_flow_max_m3h", "building_flow_max_m3h",
              "capture_fraction", "servers", "server_max_w")
SITE_METERING_FACTS = ("tank_volume_m3",)


class SimulationSection(PlantConfig):
    """The `simulation:` section as written in a site config: PlantConfig without the site's facts."""

    @model_validator(mode="before")
    @classmethod
    def _no_site_facts(cls, data):
        moved = sorted(set(data) & set(SITE_FACTS + SITE_METERING_FACTS)) if isinstance(data, dict) else []
        if moved:
            raise ValueError("; ".join(
                f"{k} is a fact of the site: write it under "
                f"{'metering' if k in SITE_METERING_FACTS else 'plant'}: instead" for k in moved))
        return data


# The loader's extension argument for every tool that simulates (loader.EXTENSION_SECTIONS).
SIMULATION_EXTENSION = {"simulation": SimulationSection}


def plant_config(site) -> PlantConfig:
    """The simulated plant's parameters for `site`: its `plant:` facts and metered tank volume, and
    its `simulation:` section for what only a simulation needs. A site without `plant:` is simulated
    with the reference plant's facts (PlantConfig's defaults)."""
    from controller.site.loader import ConfigError

    data = dict(site.extension("simulation"))
    moved = sorted(set(data) & set(SITE_FACTS + SITE_METERING_FACTS))
    if moved:
        raise ConfigError([f"simulation.{k}: a fact of the site; write it under "
                           f"{'metering' if k in SITE_METERING_FACTS else 'plant'}: instead" for k in moved])
    if site.plant is not None:
        data.update({k: getattr(site.plant, k) for k in SITE_FACTS})
    data["tank_volume_m3"] = site.metering.tank_volume_m3
    try:
        return PlantConfig.model_validate(data)
    except Exception as exc:  # pydantic's ValidationError: one line per problem, never a traceback
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise
        raise ConfigError([f"simulation.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                           for e in errors()]) from None
