"""Logging for the daemon: structlog, JSON lines for the journal, readable lines on a terminal.

Everything goes to stdout. Under systemd stdout is the journal, which wants one JSON object per
line; on a terminal an engineer wants to read it. When stdout is the journal (JOURNAL_STREAM names
stdout's device:inode, systemd.exec(5)), each line starts with its syslog priority, `<3>` for an
error (sd-daemon(3), SD_ERR), which journald strips and stores as PRIORITY (SyslogLevelPrefix=yes
is the default), so that `journalctl -u heatctl -p err` finds the errors. Third-party libraries that use the standard
`logging` module are routed through the same renderer; pymodbus is silenced to CRITICAL because it
logs full frame dumps at ERROR on every timeout, which would drown the journal at 1-10 ticks/s.
"""

from __future__ import annotations

import logging
import os
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


# sd-daemon(3): SD_CRIT "<2>", SD_ERR "<3>", SD_WARNING "<4>", SD_INFO "<6>", SD_DEBUG "<7>".
PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4, "info": 6, "debug": 7}


def stdout_is_journal(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stdout) is the journal's stream socket: JOURNAL_STREAM is set to
    its "device:inode" (systemd.exec(5); a child's redirected stdout keeps the variable but not
    the inode, so the variable alone is not enough)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat((stream or sys.stdout).fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


def with_priority(renderer):
    """The renderer, its line prefixed with the record's syslog priority."""
    def render(logger, name, event_dict):
        prio = PRIORITY.get(str(event_dict.get("level", name)).lower(), 6)
        return f"<{prio}>{renderer(logger, name, event_dict)}"
    return render


def configure(json_lines: bool | None = None, level: int = logging.INFO,
              stream: TextIO | None = None, journal: bool | None = None) -> None:
    """Configure structlog and the standard logging module once for the process.

    `json_lines=None` picks JSON when `stream` (default stdout) is not a terminal; `journal=None`
    adds the syslog priority prefixes when that stream is the journal (stdout_is_journal).
    """
    if json_lines is None:
        json_lines = not (stream or sys.stdout).isatty()
    if journal is None:
        journal = stdout_is_journal(stream)
    use_tty_colors = (stream or sys.stdout).isatty()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (structlog.processors.JSONRenderer(sort_keys=False) if json_lines
                else structlog.dev.ConsoleRenderer(colors=use_tty_colors))
    if journal:
        renderer = with_priority(renderer)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info if json_lines else
                    structlog.dev.set_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # stream None: sys.stdout as it is when a line is written (not a file object bound now).
        logger_factory=(structlog.PrintLoggerFactory(file=stream) if stream is not None
                        else lambda *args: structlog.PrintLogger(sys.stdout)),
        cache_logger_on_first_use=False,
    )
    # The standard library's loggers (asyncua, pyghmi, asyncio) render the same way.
    handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer, foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared]))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name, lvl in _QUIET.items():
        logging.getLogger(name).setLevel(lvl)


class _StdoutHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stdout is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass
