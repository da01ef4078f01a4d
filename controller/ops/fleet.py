"""The fleet table from a central store's Prometheus query API (`GET /api/v1/query`).

Works against any store that speaks that API (Prometheus, VictoriaMetrics, Thanos, Mimir) and needs
no recording rules there: every query below is on the raw series the sites' agents remote-write,
each carrying the agent's `site` external label (docs/fleet/site-agent.yml). Standard library only.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

URL_ENV = "HEATCTL_FLEET_URL"
TIMEOUT_S = 10.0
JOB = 'job="heatctl"'
# A site is known if it sent series within this window, live if it has one now (the store's
# 5-minute lookback); known but not live is silent.
KNOWN_WINDOW = "1d"


class FleetError(Exception):
    """One line for the operator (store unreachable, refused query, not a query API)."""


@dataclass
class SiteRow:
    site: str
    silent: bool = False
    mode: str | None = None
    it_w: float | None = None
    delivered_w: float | None = None
    dumped_w: float | None = None
    boiler_w: float | None = None
    erf_month: float | None = None
    carryable_min_24h_w: float | None = None
    alarms_by_owner: dict[str, int] = field(default_factory=dict)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def queries(now: datetime) -> dict[str, str]:
    """The PromQL the table is built from. ERF this month: the energy counters' increase since the
    first of the month, 00:00 UTC (at least 5 minutes, the smallest window increase() can use)."""
    secs = max(300, int((now - month_start(now)).total_seconds()))
    e = f'heatctl_energy_joules_total{{{JOB}, kind'
    return {
        "known": f"group by (site) (present_over_time(heatctl_ticks_total{{{JOB}}}[{KNOWN_WINDOW}]))",
        "live": f"group by (site) (heatctl_ticks_total{{{JOB}}})",
        "mode": f"max by (site, heatctl_mode) (heatctl_mode{{{JOB}}} == 1)",
        "it": f"sum by (site) (heatctl_it_power_watts{{{JOB}}})",
        "flows": f'sum by (site, flow) (heatctl_heat_flow_watts{{{JOB}, flow=~"delivered|dumped|boiler"}})',
        "erf": (f'sum by (site) (increase({e}="delivered"}}[{secs}s])) / '
                f'sum by (site) (increase({e}=~"it|aux"}}[{secs}s]))'),
        "carry": f"min by (site) (heatctl_envelope_carryable_watts{{{JOB}}})",
        "alarms": f"sum by (site, owner) (heatctl_alarm_active{{{JOB}}})",
    }


def query(url: str, expr: str, timeout_s: float = TIMEOUT_S) -> list[dict]:
    """One instant query; the result vector, or FleetError with one line."""
    full = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as resp:  # noqa: S310 - operator's URL
            body = json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        detail = ""
        try:
            detail = json.loads(exc.read().decode()).get("error", "")
        except (ValueError, OSError):
            pass
        raise FleetError(f"the fleet store at {url} refused a query (HTTP {exc.code}){': ' + detail if detail else ''}") \
            from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FleetError(f"cannot reach the fleet store at {url}: {reason}") from None
    except ValueError:
        raise FleetError(f"{url} did not answer with JSON: is it a Prometheus query API?") from None
    if body.get("status") != "success" or body.get("data", {}).get("resultType") != "vector":
        raise FleetError(f"the fleet store at {url} answered {body.get('status')!r}: {body.get('error', 'not a vector')}")
    return body["data"]["result"]


def _value(sample: dict) -> float | None:
    v = float(sample["value"][1])
    return None if math.isnan(v) or math.isinf(v) else v


def fleet_table(url: str, now: datetime | None = None, timeout_s: float = TIMEOUT_S) -> list[SiteRow]:
    """One row per site known to the store in the last day, sorted by site; silent ones flagged."""
    now = now or datetime.now(timezone.utc)
    res = {k: query(url, q, timeout_s) for k, q in queries(now).items()}
    sites = {s["metric"].get("site", "") for s in res["known"]} | {s["metric"].get("site", "") for s in res["live"]}
    live = {s["metric"].get("site", "") for s in res["live"]}
    rows = {name: SiteRow(site=name or "(no site label)", silent=name not in live) for name in sites}

    def row(s):
        return rows.get(s["metric"].get("site", ""))

    for s in res["mode"]:
        if (r := row(s)) is not None:
            r.mode = s["metric"].get("heatctl_mode")
    for key, attr in (("it", "it_w"), ("erf", "erf_month"), ("carry", "carryable_min_24h_w")):
        for s in res[key]:
            if (r := row(s)) is not None:
                setattr(r, attr, _value(s))
    for s in res["flows"]:
        if (r := row(s)) is not None:
            setattr(r, f"{s['metric'].get('flow')}_w", _value(s))
    for s in res["alarms"]:
        if (r := row(s)) is not None and (v := _value(s)) is not None:
            r.alarms_by_owner[s["metric"].get("owner", "?")] = int(v)
    return [rows[k] for k in sorted(rows)]


def as_json(rows: list[SiteRow]) -> list[dict]:
    return [asdict(r) for r in rows]
