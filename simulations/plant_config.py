"""Parameters of the simulated plant (the `simulation:` section of a site config).

Defaults describe the reference plant of shared/design/PLANT.md: a 40 kW liquid-cooled micro data
centre heating a public pool through a plate heat exchanger, with a 2 m3 buffer tank.
"""

from __future__ import annotations

from pydantic import Field

from controller.strict_model import StrictModel


class PlantConfig(StrictModel):
    servers: int = Field(8, ge=1, le=1024)
    server_max_w: float = Field(5000.0, gt=0)
    server_idle_w: float = Field(600.0, ge=0)
    # First-order lag of server power following its load and cap (s).
    server_power_tau_s: float = Field(5.0, gt=0)
    # Share of IT power that enters the liquid loop (0.7-0.95 with direct liquid cooling).
    capture_fraction: float = Field(0.85, gt=0, le=1)
    it_loop_volume_m3: float = Field(0.15, gt=0)
    it_flow_max_m3h: float = Field(6.0, gt=0)
    building_loop_volume_m3: float = Field(0.4, gt=0)
    building_flow_max_m3h: float = Field(6.0, gt=0)
    # Plate heat exchanger UA (W/K), for epsilon-NTU.
    hx_ua_w_per_k: float = Field(6000.0, gt=0)
    tank_volume_m3: float = Field(2.0, gt=0)
    tank_layers: int = Field(4, ge=2, le=50)
    tank_loss_w_per_k: float = Field(5.0, ge=0)
    tank_discharge_flow_max_m3h: float = Field(3.0, gt=0)
    # Consumer loop: its water mass and the UA of its heat exchanger to the building loop.
    consumer_volume_m3: float = Field(1.0, gt=0)
    consumer_hx_ua_w_per_k: float = Field(4000.0, gt=0)
    # The consumer's load is sized so that at this supply temperature it takes its demand.
    consumer_setpoint_c: float = 40.0
    consumer_reference_temp_c: float = 28.0
    # Dump cooler at full fan: UA to ambient (W/K).
    dump_ua_w_per_k: float = Field(3000.0, gt=0)
    boiler_max_w: float = Field(60000.0, ge=0)
    # The simulated BMS falls back to boiler + open dump when the heartbeat stops this long.
    heartbeat_timeout_s: float = Field(10.0, gt=0)
    pump_p1_max_w: float = Field(400.0, ge=0)
    pump_p2_max_w: float = Field(400.0, ge=0)
    pump_p3_max_w: float = Field(200.0, ge=0)
    fan_d1_max_w: float = Field(800.0, ge=0)
    ambient_temp_c: float = 10.0
    initial_temp_c: float = 30.0
