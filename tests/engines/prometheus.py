"""A real Prometheus (Debian 12's `prometheus` 2.42) on 127.0.0.1, as a central store with the
remote-write receiver or as a scrape-and-forward agent.

    with Prometheus(tmp_path / "central") as central, \\
         Prometheus(tmp_path / "agent", mode="agent", targets=[target.address],
                    remote_write=[central.write_url], external_labels={"site": "s1"}) as agent:
        central.wait_until(lambda: central.query('up{site="s1"}'), 20)
        central.stop(); ...; central.start()   # same port and data dir: the agent's WAL replays

The config is written as JSON (valid YAML) into the directory with the storage (TSDB, or the
agent's WAL) and the log (prometheus.log). The port is chosen once and kept across stop()/start(),
so remote-write URLs pointing at a stopped store work again after its restart.

Timing facts (2.42): the first scrape lands ~5 s after start (discovery's built-in update delay);
the agent sends a batch at the latest every `batch_send_deadline` (set to 1 s here, default 5 s);
after an outage it retries with a backoff capped by `max_backoff` (1 s here) and resends its WAL.
The agent has no query API (HTTP 4xx "unavailable in agent mode"): read its own /metrics instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
from pathlib import Path
from typing import Any, Mapping, Sequence

from tests.engines import HOST, EngineError, HttpEngine, http_get

DEFAULT_QUEUE = {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"}


class Prometheus(HttpEngine):
    """mode="server": TSDB + query API, --web.enable-remote-write-receiver unless told otherwise.
    mode="agent": --enable-feature=agent, a WAL in the directory, remote_write required."""

    binary = package = "prometheus"

    def __init__(self, root: str | os.PathLike, *, mode: str = "server",
                 targets: Sequence[str] = (), job: str = "test",
                 scrape_configs: Sequence[Mapping[str, Any]] = (),
                 remote_write: Sequence[str | Mapping[str, Any]] = (),
                 external_labels: Mapping[str, str] | None = None,
                 scrape_interval: str = "1s", evaluation_interval: str = "1s",
                 rule_files: Sequence[str | os.PathLike] = (),
                 queue_config: Mapping[str, Any] | None = None,
                 remote_write_receiver: bool = True, extra_args: Sequence[str] = (),
                 start_timeout: float = 30.0, config: Mapping[str, Any] | None = None):
        """`config`: the whole configuration as given (e.g. a shipped file, edited), instead of the
        one built from the other arguments."""
        if mode not in ("server", "agent"):
            raise ValueError(f"mode must be 'server' or 'agent', not {mode!r}")
        if mode == "agent" and not remote_write and not (config or {}).get("remote_write"):
            raise ValueError("an agent needs remote_write URLs")
        super().__init__(root, "prometheus.log", start_timeout)
        self.mode = mode
        self.data_dir = self.root / ("wal" if mode == "agent" else "data")
        self.config_path = self.root / "prometheus.yml"
        self.scrape_configs = [dict(c) for c in scrape_configs]
        if targets:
            self.scrape_configs.append({"job_name": job,
                                        "static_configs": [{"targets": list(targets)}]})
        self.remote_write = [
            {"url": rw, "queue_config": dict(DEFAULT_QUEUE, **(queue_config or {}))}
            if isinstance(rw, str) else dict(rw) for rw in remote_write]
        self.external_labels = dict(external_labels or {})
        self.scrape_interval, self.evaluation_interval = scrape_interval, evaluation_interval
        self.rule_files = [str(Path(r).absolute()) for r in rule_files]
        self.remote_write_receiver = remote_write_receiver and mode == "server"
        self.extra_args = list(extra_args)
        self.given_config = dict(config) if config is not None else None

    @property
    def title(self) -> str:  # type: ignore[override]
        return f"prometheus ({self.mode})"

    # ----- lifecycle ---------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        if self.given_config is not None:
            return self.given_config
        glob: dict[str, Any] = {"scrape_interval": self.scrape_interval,
                                "scrape_timeout": self.scrape_interval}
        if self.mode == "server":
            glob["evaluation_interval"] = self.evaluation_interval
        if self.external_labels:
            glob["external_labels"] = self.external_labels
        cfg: dict[str, Any] = {"global": glob, "scrape_configs": self.scrape_configs}
        if self.remote_write:
            cfg["remote_write"] = self.remote_write
        if self.rule_files and self.mode == "server":
            cfg["rule_files"] = self.rule_files
        return cfg

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")

    def argv(self, binary: str) -> list[str]:
        argv = [binary, f"--config.file={self.config_path}",
                f"--web.listen-address={HOST}:{self.port}", "--log.level=info"]
        if self.mode == "agent":
            argv += ["--enable-feature=agent", f"--storage.agent.path={self.data_dir}"]
        else:
            argv += [f"--storage.tsdb.path={self.data_dir}"]
            if self.remote_write_receiver:
                argv.append("--web.enable-remote-write-receiver")
        return argv + self.extra_args

    def prepare(self) -> None:
        self.write_config()

    def ready(self) -> bool:
        """/-/ready answers 200 (503 while the TSDB or WAL is being replayed)."""
        try:
            http_get(f"{self.url}/-/ready", timeout=2)
            return True
        except (OSError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        """SIGKILL: a crash (what survives is what the WAL had)."""
        if self.process and self.process.popen and self.process.running:
            self.process.popen.kill()
            self.process.stop()

    def reload(self) -> None:
        """Rewrite the config from the attributes and SIGHUP."""
        self.write_config()
        assert self.process is not None
        self.process.signal(signal.SIGHUP)

    # ----- reading -----------------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        if self.mode == "agent" and path.startswith(("query", "series", "label")):
            raise EngineError("a Prometheus agent has no query API: query the central store, "
                              "or read the agent's own metrics (self_metric)")
        return super().api(path, **params)

    def metrics_text(self) -> str:
        """Prometheus's own /metrics."""
        return http_get(f"{self.url}/metrics").decode()

    def self_metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of one of its own metrics whose labels include `labels` (0 when
        none), e.g. self_metric("prometheus_remote_storage_samples_total")."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                  m.group(2) or ""))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def targets_health(self) -> list[dict]:
        """/api/v1/targets' active targets (available in both modes)."""
        return super().api("targets")["activeTargets"]

