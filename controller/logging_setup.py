"""Logging for the daemon: structlog, JSON lines for the journal, readable lines on a terminal.

Everything goes to stdout. Under systemd stdout is the journal, which wants one JSON object per
line; on a terminal an engineer wants to read it. Third-party libraries that use the standard
`logging` module are routed through the same renderer; pymodbus is silenced to CRITICAL because it
logs full frame dumps at ERROR on every timeout, which would drown the journal at 1-10 ticks/s.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

# Libraries whose own loggers repeat what the drivers already log once (and once on recovery).
_QUIET = {
    "pymodbus": logging.CRITICAL,  # frame dumps on every timeout
    "asyncua": logging.WARNING,    # INFO logs every subscription and keep-alive
    "pyghmi": logging.WARNING,
    "transitions": logging.WARNING,  # INFO on every state callback of every step
}


def configure(json_lines: bool | None = None, level: int = logging.INFO,
              stream: TextIO | None = None) -> None:
    """Configure structlog and the standard logging module once for the process.

    `json_lines=None` picks JSON when `stream` (default stdout) is not a terminal.
    """
    stream = stream or sys.stdout
    if json_lines is None:
        json_lines = not stream.isatty()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (structlog.processors.JSONRenderer(sort_keys=False) if json_lines
                else structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info if json_lines else
                    structlog.dev.set_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # The standard library's loggers (asyncua, pyghmi, asyncio) render the same way.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer, foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared]))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name, lvl in _QUIET.items():
        logging.getLogger(name).setLevel(lvl)
