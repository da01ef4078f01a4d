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
from pathlib import Path
from typing import Any, Sequence

from tests.engines import (HOST, EngineError, Process, PromQueryAPI, free_port, http_get, tail,
                           wait_until, which_or_skip)


class VictoriaMetrics(PromQueryAPI):
    def __init__(self, root: str | os.PathLike, *, retention: str = "1",
                 latency_offset: str = "0s", flush_before_query: bool = True,
                 extra_args: Sequence[str] = (), start_timeout: float = 30.0):
        self.root = Path(root).absolute()
        self.data_dir = self.root / "data"
        self.log = self.root / "victoria-metrics.log"
        self.retention = retention
        self.latency_offset = latency_offset
        self.flush_before_query = flush_before_query
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.port = 0
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def write_url(self) -> str:
        """Prometheus remote write endpoint."""
        return f"{self.url}/api/v1/write"

    def argv(self, binary: str) -> list[str]:
        return [binary, f"-httpListenAddr={HOST}:{self.port}",
                f"-storageDataPath={self.data_dir}", f"-retentionPeriod={self.retention}",
                f"-search.latencyOffset={self.latency_offset}", "-search.disableCache",
                "-loggerLevel=INFO", *self.extra_args]

    def start(self, attempts: int = 3) -> "VictoriaMetrics":
        """Start (or restart: same port, same data dir) and wait for /health."""
        binary = which_or_skip("victoria-metrics", "victoria-metrics")
        self.root.mkdir(parents=True, exist_ok=True)
        first = self.port == 0
        for attempt in range(1, attempts + 1):
            if first:
                self.port = free_port()
            self.process = Process("victoria-metrics", self.argv(binary), self.log, cwd=self.root)
            self.process.start()
            try:
                self.wait_ready(self.start_timeout)
                return self
            except (EngineError, TimeoutError):
                self.process.stop()
                clash = "address already in use" in self.log.read_text(errors="replace")
                if not (first and clash) or attempt == attempts:
                    raise
        return self

    def ready(self) -> bool:
        try:
            return http_get(f"{self.url}/health", timeout=2).strip() == b"OK"
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            self.process.check_alive()
            return self.ready()
        wait_until(ready, timeout, 0.1, f"victoria-metrics /health on {self.url}",
                   on_timeout=self.diagnostics)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM (flushes buffered rows to the data dir) and reap."""
        return self.process.stop(grace) if self.process else None

    def restart(self) -> "VictoriaMetrics":
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.running)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "VictoriaMetrics":
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise

    def __exit__(self, *exc) -> None:
        self.close()

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

    def diagnostics(self) -> str:
        return tail(self.log)

    def flush(self) -> None:
        """/internal/force_flush: make everything received so far searchable now."""
        http_get(f"{self.url}/internal/force_flush")

    def api(self, path: str, **params: Any) -> Any:
        """The query API; with flush_before_query (default) every call first forces a flush, so
        a series first written a moment ago is found (without it: ~10 s, see the module doc)."""
        if self.flush_before_query:
            self.flush()
        return super().api(path, **params)
