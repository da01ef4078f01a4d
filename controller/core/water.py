"""Water properties that depend on temperature, for heat flows Q = m_dot * c_p(T) * dT.

Linear interpolation in IAPWS-95 values at 1 bar (saturated-liquid tables, 0-100 degC every 10 K);
interpolation error below 0.05 %. Outside the table the end values are held (a sensor that reads
-5 degC is caught by validation, not here).
"""

from __future__ import annotations

from bisect import bisect_right

_T_C = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
_RHO = (999.84, 999.70, 998.21, 995.65, 992.22, 988.03, 983.20, 977.76, 971.79, 965.31, 958.35)
_CP = (4219.9, 4195.5, 4184.1, 4180.1, 4179.6, 4181.3, 4185.1, 4190.6, 4196.9, 4205.0, 4215.6)


def _interp(table: tuple[float, ...], temp_c: float) -> float:
    if temp_c <= _T_C[0]:
        return table[0]
    if temp_c >= _T_C[-1]:
        return table[-1]
    i = bisect_right(_T_C, temp_c) - 1
    frac = (temp_c - _T_C[i]) / (_T_C[i + 1] - _T_C[i])
    return table[i] + frac * (table[i + 1] - table[i])


def density_kg_m3(temp_c: float) -> float:
    """Density of liquid water (kg/m3) at `temp_c`."""
    return _interp(_RHO, temp_c)


def cp_j_per_kg_k(temp_c: float) -> float:
    """Specific heat capacity of liquid water (J/(kg K)) at `temp_c`."""
    return _interp(_CP, temp_c)


def mass_flow_kg_s(flow_m3h: float, temp_c: float) -> float:
    """Mass flow (kg/s) from a volumetric flow (m3/h) measured at `temp_c`."""
    return flow_m3h / 3600.0 * density_kg_m3(temp_c)


def heat_flow_w(flow_m3h: float, t_hot_c: float, t_cold_c: float, flow_temp_c: float | None = None) -> float:
    """Heat carried by a flow between two temperatures (W), c_p taken at the mean temperature.

    `flow_temp_c` is where the flow meter sits (default: the cold side, the usual meter position).
    """
    t_meter = t_cold_c if flow_temp_c is None else flow_temp_c
    t_mean = 0.5 * (t_hot_c + t_cold_c)
    return mass_flow_kg_s(flow_m3h, t_meter) * cp_j_per_kg_k(t_mean) * (t_hot_c - t_cold_c)
