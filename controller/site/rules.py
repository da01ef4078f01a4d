"""The config's safety rules: their ids, which ones a site may waive, and the bounds they enforce.

Every problem the site checks report carries a rule id, so that `check-config --json` can be read by a
script and a `waive:` entry can name exactly what it accepts. Only the rules in WAIVABLE can be
waived, and only with a reason (see SiteConfig.waive); the core trips, the safety roles and the
register arithmetic never can: a site that needs them different needs a different controller.
"""

from __future__ import annotations

# rule id -> what it guards (shown in the schema's description of `waive:` and in the README).
RULES: dict[str, str] = {
    # Not waivable: the protections every site needs.
    "schema": "a value of the wrong type, out of its own bounds, or an unknown key",
    "consistency": "values across sections that disagree (a loop naming a missing point, an alarm "
                   "behind its trip, hysteresis inverted)",
    "register_fit": "every value the site can send (range, trip action) fits its register's data type, "
                    "scale and offset; a scale of 0 is refused",
    "register_resolution": "an integer register's scale gives an actuator at least 100 steps over its range",
    "heartbeat": "the heartbeat counts 0, 1, 2, ... up to an integer its register holds (no wrap to a "
                 "constant, no overflow)",
    "trip_can_fire": "each trip's limit lies strictly inside the range where its point can read "
                     "(its valid range and its register), and a low_flow trip's it_idle_w below the "
                     "site's IT power",
    "min_max": "each minimum below its maximum (BMC power, reconnect backoff, workload SoC, planning)",
    "setpoint_range": "each setpoint (as written, and as each policy shifts it) inside its measurement's range",
    "register_shared": "no register, OPC-UA node or BMC reading shared by two points",
    "register_overlap": "no multi-register value overlapping another point's registers",
    "safety_role": "the IT supply temperature, IT flow and leak points critical; server power readings "
                   "covering their BMC's maximum",
    "safety_trip": "a high trip on the IT supply temperature, a low_flow trip on the IT flow and a leak "
                   "trip, each capping IT power at or below power.safe_degrade_w",
    "staleness_bound": "max_age_s of a critical point at most 60 s",
    "grace_bound": "modes.critical_grace_s and a sensor_lost trip's grace_s at most 60 s",
    "safety_slew": "the power cap can fall, and P1 and the dump fan can rise, over their whole range "
                   "within 60 s",
    "file": "credentials and certificate files exist and can be read",
    # Waivable, with a reason: a site can have a good reason to differ.
    "frozen_required": "critical temperature and flow readings set frozen_after_s (a stuck sensor is seen)",
    "frozen_bound": "frozen_after_s of a critical point at most 3600 s",
    "loop_slew": "every loop can cross its output range within 3600 s, up and down",
    "sensor_lost_trip": "a sensor_lost trip exists",
    "modicon_address": "a Modbus address that looks like Modicon notation (30001, 40001) is not one",
    "waiver": "each waive: entry names a waivable rule and a key that has that problem",
}

WAIVABLE = frozenset({"frozen_required", "frozen_bound", "loop_slew", "sensor_lost_trip", "modicon_address"})

# The longest a critical reading may be old, or bad before the plant goes to safe_degrade (s). At
# full IT power and no heat removed, the reference IT loop (~150 l of water, 40 kW) warms by
# 40 kW / (150 kg * 4.19 kJ/(kg K)) = 0.064 K/s, so the 5 K between the it_overtemp alarm and its
# limit last about 80 s: a blind spot must end well inside that.
MAX_CRITICAL_AGE_S = 60.0
MAX_GRACE_S = 60.0
# A loaded temperature or flow sensor's last digit moves within minutes; an hour unchanged is stuck.
MAX_FROZEN_S = 3600.0
# The protective direction of a loop (cap down, P1 up, dump fan up) must cross its range within a
# minute, like the blind spot above; the reference plant needs 7 to 10 s. Any direction within an hour
# (the reference hands power back over 12 minutes).
MAX_SAFETY_SLEW_S = 60.0
MAX_LOOP_SLEW_S = 3600.0
# An integer actuator register needs at least this many steps over the point's range (1 %).
MIN_ACTUATOR_STEPS = 100
