"""Logs reach journald with their priority: `<N>` prefixes (sd-daemon(3)) when stdout is the
journal's stream, none on a terminal or a plain pipe."""

from __future__ import annotations

import io
import json
import logging
import os

import structlog

from controller.daemon import logging_setup


def _lines(journal: bool) -> list[str]:
    buf = io.StringIO()
    logging_setup.configure(json_lines=True, stream=buf, journal=journal)
    log = structlog.get_logger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    logging.getLogger("asyncua.x").error("stdlib error")
    return buf.getvalue().splitlines()


def test_priority_prefix_by_level():
    logging_setup.configure(json_lines=True, stream=io.StringIO(), journal=True, level=logging.DEBUG)
    buf = io.StringIO()
    logging_setup.configure(json_lines=True, stream=buf, journal=True, level=logging.DEBUG)
    log = structlog.get_logger("t")
    for method in ("debug", "info", "warning", "error", "critical"):
        getattr(log, method)(method)
    logging.getLogger("asyncua.x").error("stdlib error")
    lines = buf.getvalue().splitlines()
    assert [ln[:3] for ln in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>", "<3>"]
    assert json.loads(lines[3][3:])["event"] == "error"  # the rest of the line is the JSON as before


def test_no_prefix_off_the_journal():
    lines = _lines(journal=False)
    assert lines and all(ln.startswith("{") for ln in lines)


def test_journal_detected_by_stdout_inode(monkeypatch, tmp_path):
    with open(tmp_path / "out", "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logging_setup.stdout_is_journal(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not logging_setup.stdout_is_journal(f)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not logging_setup.stdout_is_journal(f)
    assert not logging_setup.stdout_is_journal(io.StringIO())


def teardown_module():
    # Leave logging as a fresh process has it for the tests that run after these.
    structlog.reset_defaults()
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
