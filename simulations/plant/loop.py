"""The one plant loop: commands in, the plant moved by a tick, the readings and the tick's books out.

Shared by the closed loop (simulations.runners.closed_loop), the real daemon on simulated time
(simulations.runners.daemon_simtime) and the plant on the wire (simulations.wire.sim_plant), so that
what "throttled", "below setpoint" and the tank's state of charge mean is written once, here:

- throttled: the effective cap is below what the workload wants (by more than 1 W), or the servers
  protect themselves from hot coolant (IT return at or above `server_throttle_c`);
- below / above setpoint: the consumer supply against the controller's setpoint, counted only while
  the consumer is available and demands heat;
- true state of charge: the mean of the tank's layers on the span the controller uses
  (`modes.tank_empty_temp_c` to `tank_full_temp_c` + the policy's offset, as
  controller.core.metering.tank_soc), clamped to 0..1.

The books are taken on the plant's true values at the start of the tick, before it moves (what the
controller was acting on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from controller.site.models import SiteConfig
from simulations.plant.binding import MeterRates, PlantBinding
from simulations.plant.config import PlantConfig
from simulations.plant.model import Actuators, Loads, Measurements, Plant


def plant_config_of(site) -> PlantConfig:
    """The plant parameters of a site: its `plant:` facts and its `simulation:` extension section
    (simulations.plant.config.plant_config)."""
    from simulations.plant.config import plant_config

    return plant_config(site)


def wanted_it_w(cfg: PlantConfig, load_fraction: float) -> float:
    """The IT power the workload asks for (W): every server at idle + load x (max - idle)."""
    load = load_fraction
    load = 0.0 if not load > 0.0 else 1.0 if load > 1.0 else load
    return cfg.servers * (cfg.server_idle_w + load * (cfg.server_max_w - cfg.server_idle_w))


def is_throttled(cfg: PlantConfig, wanted_w: float, cap_w: float, it_return_c: float) -> bool:
    """The cap holds the servers below what the workload wants, or they protect themselves."""
    return cap_w < wanted_w - 1.0 or it_return_c >= cfg.server_throttle_c


def soc_span(site: SiteConfig) -> tuple[float, float]:
    """(empty, full) temperatures of the tank's state of charge (degC), as the controller's."""
    m = site.modes
    return m.tank_empty_temp_c, m.tank_full_temp_c + site.policy_settings.tank_full_offset_k


def true_soc(site: SiteConfig, layers_c: tuple[float, ...]) -> float:
    """The tank's true state of charge from all its layers (0..1)."""
    empty, full = soc_span(site)
    soc = (sum(layers_c) / len(layers_c) - empty) / (full - empty)
    return 0.0 if soc < 0.0 else 1.0 if soc > 1.0 else soc


def config_for_tick(cfg: PlantConfig, tick_s: float) -> tuple[PlantConfig, str | None]:
    """The plant config for a controller ticking every tick_s, and a note if it had to change.

    A BMS's heartbeat timeout is set in ticks of its controller (10 s for a 1 s tick); a timeout
    shorter than 2 ticks would put the plant in fallback between ticks, so it is stretched to 3.
    """
    if cfg.heartbeat_timeout_s < 2 * tick_s:
        note = (f"plant heartbeat timeout {cfg.heartbeat_timeout_s:g} s stretched to {3 * tick_s:g} s "
                f"(3 ticks of {tick_s:g} s)")
        return cfg.model_copy(update={"heartbeat_timeout_s": 3 * tick_s}), note
    return cfg, None


@dataclass(frozen=True, slots=True)
class TickBooks:
    """What one tick was, on the plant's true values at its start."""

    true: Measurements
    effective: Actuators
    wanted_it_w: float
    it_w: float
    throttled: bool
    demanding: bool  # the consumer is available and demands heat
    supply_error_k: float  # consumer supply - setpoint (0 while not demanding)


class PlantLoop:
    """A plant, its point binding and its meter rates, moved one tick at a time."""

    def __init__(self, site: SiteConfig, cfg: PlantConfig, t0_s: float = 0.0):
        self.site = site
        self.cfg = cfg
        self.plant = Plant(cfg, t0_s)
        self.binding = PlantBinding(site)
        self.rates = MeterRates()
        self.rates.update(self.plant.meters, 0.0)  # the registers' starting point: rates from the first tick
        self.actuators: Actuators | None = None
        self.setpoint_c = site.loops.consumer_supply.setpoint

    def point_values(self, sensed: bool = True) -> dict[str, float]:
        """Every point's value now (sensor faults applied unless `sensed` is False)."""
        meas = self.plant.measurements() if sensed else self.plant.true_measurements()
        return self.binding.point_values(meas, self.rates)

    def command(self, values: Mapping[str, float] | None, now_s: float | None = None,
                fresh: bool = False) -> Actuators:
        """Apply commands by point name at plant time now_s (default: the plant's); points not given
        keep their last value (all of them when `fresh`: from the Actuators defaults)."""
        self.actuators = self.binding.actuators(values or {}, None if fresh else self.actuators)
        self.plant.set_actuators(self.actuators, self.plant.t_s if now_s is None else now_s)
        return self.actuators

    def books(self, loads: Loads) -> TickBooks:
        """The tick's books on the true values now, before the plant moves."""
        plant = self.plant
        true = plant.true_measurements()
        eff = plant.effective_actuators()
        wanted = wanted_it_w(self.cfg, loads.it_load_fraction)
        demanding = true.consumer_available and loads.consumer_demand_w > 0
        return TickBooks(
            true=true, effective=eff, wanted_it_w=wanted, it_w=sum(true.server_power_w),
            throttled=is_throttled(self.cfg, wanted, eff.power_cap_w, true.it_return_c),
            demanding=demanding,
            supply_error_k=true.consumer_supply_c - self.setpoint_c if demanding else 0.0,
        )

    def advance(self, dt: float, loads: Loads) -> None:
        """Move the plant by dt (s) under `loads` and update the meter rates the points read."""
        if dt <= 0:
            return
        self.plant.advance(dt, loads)
        self.rates.update(self.plant.meters, dt)

    def tick(self, dt: float, loads: Loads) -> TickBooks:
        """The tick's books, then the plant moved by dt."""
        b = self.books(loads)
        self.advance(dt, loads)
        return b
