"""A real VictoriaMetrics single-node (Debian 12's `victoria-metrics` 1.79) on 127.0.0.1.

    with VictoriaMetrics(tmp_path / "vm") as vm:
        agent = Prometheus(..., mode="agent", remote_write=[vm.write_url])
        vm.wait_until(lambda: vm.query('demo_value{site="s1"}'), 20)
        vm.stop(); vm.start()        # same port, same -storageDataPath: the data is still there

Remote write on /api/v1/write (also /api/v1/import/prometheus for text), the Prometheus query API
on /api/v1/query and /api/v1/query_range. Data dir and log in the given directory.

Timing facts (1.79, measured here):
- by default an instant query near "now" is evaluated at now-30s (-search.latencyOffset=30s), so a
  fresh sample stays invisible for 30 s: this harness passes -search.latencyOffset=0s (settable)
  and -search.disableCache;
- a sample of an already known series is searchable ~1 s after it arrives, but a NEW series only
  after ~10 s (its index entries are flushed on a timer). GET /internal/force_flush brings that
  down to the same ~1 s; query()/query_range()/api() call it first (flush_before_query=True).
A SIGTERM flushes everything, so stop()/start() keeps all that was written before.
"""

from __future__ import annotations

import os
import urllib.error
from typing import Any, Sequence

from tests.engines import HOST, EngineError, HttpEngine, http_get


class VictoriaMetrics(HttpEngine):
    binary, package, title = "victoria-metrics", "victoria-metrics", "victoria-metrics"

    def __init__(self, root: str | os.PathLike, *, retention: str = "1",
                 latency_offset: str = "0s", flush_before_query: bool = True,
                 extra_args: Sequence[str] = (), start_timeout: float = 30.0):
        super().__init__(root, "victoria-metrics.log", start_timeout)
        self.data_dir = self.root / "data"
        self.retention = retention
        self.latency_offset = latency_offset
        self.flush_before_query = flush_before_query
        self.extra_args = list(extra_args)

    def argv(self, binary: str) -> list[str]:
        return [binary, f"-httpListenAddr={HOST}:{self.port}",
                f"-storageDataPath={self.data_dir}", f"-retentionPeriod={self.retention}",
                f"-search.latencyOffset={self.latency_offset}", "-search.disableCache",
                "-loggerLevel=INFO", *self.extra_args]

    def ready(self) -> bool:
        """/health answers OK."""
        try:
            return http_get(f"{self.url}/health", timeout=2).strip() == b"OK"
        except (OSError, urllib.error.URLError):
            return False

    def import_text(self, exposition: str) -> None:
        """Write samples in Prometheus text format (/api/v1/import/prometheus), for seeding."""
        import urllib.request
        req = urllib.request.Request(f"{self.url}/api/v1/import/prometheus",
                                     data=exposition.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - 127.0.0.1 only
            if r.status not in (200, 204):
                raise EngineError(f"import: HTTP {r.status}")

    def series_count(self) -> int:
        """Number of series stored (/api/v1/series/count)."""
        return int(self.api("series/count")[0])

    def flush(self) -> None:
        """/internal/force_flush: make everything received so far searchable now."""
        http_get(f"{self.url}/internal/force_flush")

    def api(self, path: str, **params: Any) -> Any:
        """The query API; with flush_before_query (default) every call first forces a flush, so
        a series first written a moment ago is found (without it: ~10 s, see the module doc)."""
        if self.flush_before_query:
            self.flush()
        return super().api(path, **params)
