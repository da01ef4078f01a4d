"""The one parser for times an operator types (`events --since`, `report --from/--to`): ISO 8601
with `Z` or an offset; no zone means UTC (never the host's local zone, which differs between the
controller, the operator's laptop and the BMS); a bare date is that day's UTC midnight."""

from __future__ import annotations

import datetime as dt


def parse_utc(text: str) -> float:
    """ISO 8601 -> UNIX time. Raises ValueError with the expected form."""
    s = text.strip()
    try:
        d = dt.datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s)
    except (ValueError, IndexError):
        raise ValueError(f"expected an ISO 8601 time in UTC like 2026-05-01T08:00Z (or with an offset, "
                         f"or a date), got {text!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


def format_utc(ts: float) -> str:
    """UNIX time -> '2026-05-01 08:00:00Z', the zone always shown."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
