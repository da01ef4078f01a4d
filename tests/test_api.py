"""The control API and the CLI verbs against a daemon in process (fake drivers, fake clock that the
loop advances one period per tick while sleeping a little real time), on a real unix socket."""

from __future__ import annotations

import asyncio
import json
import re
import os
import stat
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from controller import cli
from controller.ops.api_client import EXIT_UNREACHABLE, ApiError, call, parse_duration
from controller.daemon.api_server import Authorizer
from tests.api_harness import heatctl, start_daemon
from tests.runtime_fakes import flushed, write_config


@pytest.fixture(autouse=True)
def quiet_logs():
    # The daemon logs to stdout; in process that would mix with the CLI's output under capsys.
    structlog.reset_defaults()  # another verb's in-process test may leave it on a closed stream
    with capture_logs() as logs:
        yield logs


@pytest.fixture
async def daemon(tmp_path, sockdir):
    d, task, drivers = await start_daemon(tmp_path, sockdir)
    yield d
    d.request_stop("test over")
    await asyncio.wait_for(task, 10)


async def test_status_answers_the_four_questions_first(daemon, capsys):
    code = await heatctl("status", "--socket", daemon.options.socket_path)
    text = capsys.readouterr().out
    assert code == 0
    # Labelled lines, wrapped to 100 columns under their label: join each with its continuations.
    out = [line for line in re.sub(r"\n {13}(?=\S)", " ", text).splitlines()]
    assert out[0].startswith("IT power     32.0 kW (8/8 servers)")
    assert out[1].startswith("Heat         captured")
    assert out[2].startswith("Loop ")
    assert out[3].startswith("Consumer     supply 40.0 degC vs setpoint 40.0") and "boiler off" in out[3]
    assert "Mode         normal" in text and "Trips        none latched" in text
    assert "it_supply_temp" in text and "auto" in text and "bms_modbus" in text


async def test_status_json(daemon, capsys):
    code = await heatctl("status", "--json", "--socket", daemon.options.socket_path)
    st = json.loads(capsys.readouterr().out)
    assert code == 0
    assert st["mode"]["mode"] == "normal" and st["summary"]["it_power_w"] == 32000.0
    assert st["drivers"]["bms_modbus"]["state"] == "up"
    assert st["outputs"]["p1_speed"]["source"] == "auto"


async def test_socket_is_0660(daemon):
    mode = stat.S_IMODE(os.stat(daemon.options.socket_path).st_mode)
    assert mode == 0o660


async def test_socket_found_from_the_environment(daemon, capsys, monkeypatch):
    monkeypatch.setenv("HEATCTL_SOCKET", daemon.options.socket_path)
    assert await heatctl("status") == 0


async def test_mode_every_mode_and_back_with_reasons(daemon, capsys):
    s = daemon.options.socket_path
    for mode in ("buffer_charging", "bypass", "safe_degrade", "normal"):
        code = await heatctl("mode", mode, "--reason", f"commissioning {mode}", "--socket", s)
        out = capsys.readouterr()
        assert code == 0, out.err
        assert out.out.startswith("accepted:") and f"mode {mode}" in out.out
    assert await heatctl("release", "--reason", "commissioning done", "--socket", s) == 0
    assert not daemon.state.held


async def test_trip_holds_through_a_refused_mode_normal_until_acked(daemon, capsys):
    s = daemon.options.socket_path
    code = await heatctl("trip-test", "it_overtemp", "--reason", "annual proof test", "--socket", s)
    out = capsys.readouterr().out
    assert code == 0
    assert "actions taken that tick" in out and "p1_speed" in out and "= 100" in out
    code = await heatctl("mode", "normal", "--reason", "try", "--socket", s)
    err = capsys.readouterr().err
    assert code == 1 and "refused: trip latched: it_overtemp" in err
    assert len(err.strip().splitlines()) == 1
    assert await heatctl("ack", "it_overtemp", "--reason", "proof test done", "--socket", s) == 0
    for _ in range(200):
        if not daemon.state.trips["it_overtemp"].latched:
            break
        await asyncio.sleep(0.01)
    assert not daemon.state.trips["it_overtemp"].latched


async def test_override_expires_on_its_own(daemon, capsys):
    s = daemon.options.socket_path
    code = await heatctl("override", "d1_fan", "40", "--for", "3s", "--reason", "fan check", "--socket", s)
    assert code == 0, capsys.readouterr().err
    assert daemon.last.commands["d1_fan"].source.value == "override"
    for _ in range(200):
        if "d1_fan" not in daemon.state.overrides:
            break
        await asyncio.sleep(0.01)
    assert "d1_fan" not in daemon.state.overrides
    capsys.readouterr()
    assert await heatctl("events", "--limit", "5", "--socket", s) == 0
    assert "override_expired" in capsys.readouterr().out


async def test_override_clear_and_a_refused_override(daemon, capsys):
    s = daemon.options.socket_path
    assert await heatctl("override", "v1_position", "30", "--for", "15m", "--reason", "x", "--socket", s) == 0
    assert await heatctl("override", "clear", "v1_position", "--reason", "done", "--socket", s) == 0
    capsys.readouterr()
    assert await heatctl("override", "heartbeat", "1", "--for", "1m", "--reason", "x", "--socket", s) == 1
    assert "heartbeat cannot be overridden" in capsys.readouterr().err
    assert await heatctl("override", "v1_position", "300", "--for", "1m", "--reason", "x", "--socket", s) == 1
    assert "outside" in capsys.readouterr().err


async def test_read_only_caller_is_refused_a_change_and_told_why(tmp_path, sockdir, capsys):
    # Same uid as the daemon, but an allow-list that excludes it and no operator group.
    d, task, _ = await start_daemon(tmp_path, sockdir, Authorizer(writer_uids=frozenset(), operator_group=None))
    try:
        s = d.options.socket_path
        assert await heatctl("status", "--socket", s) == 0
        assert await heatctl("events", "--socket", s) == 0
        capsys.readouterr()
        code = await heatctl("hold", "--reason", "let me", "--socket", s)
        err = capsys.readouterr().err
        assert code == 1
        assert "not authorized" in err and f"uid {os.getuid()}" in err and "status and events only" in err
        assert not d.state.held
        events, _ = flushed(d).events(kinds=["request_refused"])
        assert events[-1].uid == os.getuid() and events[-1].reason == "let me"
        assert events[-1].fields["request"] == "hold"
    finally:
        d.request_stop("test over")
        await asyncio.wait_for(task, 10)


async def test_events_says_when_it_shows_only_part(daemon, capsys):
    s = daemon.options.socket_path
    for i in range(3):
        assert await heatctl("hold", "--reason", f"r{i}", "--socket", s) == 0
    capsys.readouterr()
    assert await heatctl("events", "--limit", "2", "--socket", s) == 0
    out = capsys.readouterr()
    assert len([line for line in out.out.strip().splitlines() if line[:1].isdigit()]) == 2  # + header
    assert "showing the newest 2 of" in out.err
    # The daemon's wall clock is fake (WALL_EPOCH, in 2026): an ISO time before it.
    assert await heatctl("events", "--since", "2026-01-01T00:00:00Z", "--json", "--socket", s) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["kind"] == "daemon_start" and all("time" in r for r in rows)


def test_daemon_not_running_is_one_line_naming_the_socket(capsys, sockdir):
    path = str(sockdir / "nope.sock")
    for argv in (["status"], ["events"], ["hold", "--reason", "x"], ["mode", "bypass", "--reason", "x"]):
        code = cli.main([*argv, "--socket", path])
        err = capsys.readouterr().err
        assert code == EXIT_UNREACHABLE
        assert err.count("\n") == 1 and path in err and "Traceback" not in err


def test_stale_socket_is_one_line(capsys, sockdir):
    import socket as so
    path = str(sockdir / "stale.sock")
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.bind(path)
    s.close()  # bound, never listening: connection refused
    assert cli.main(["status", "--socket", path]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and path in err and "refused" in err


@pytest.mark.parametrize("argv", [
    ["mode", "warp", "--reason", "x"],
    ["mode", "normal"],                                   # no reason
    ["hold", "--reason", "   "],                          # empty reason
    ["override", "v1_position", "abc", "--for", "15m", "--reason", "x"],
    ["override", "v1_position", "30", "--for", "15 parsecs", "--reason", "x"],
    ["override", "v1_position", "30", "--reason", "x"],   # no --for
    ["override", "clear", "v1_position", "--for", "1m", "--reason", "x"],
    ["events", "--limit", "0"],
    ["events", "--since", "yesterday-ish"],
    ["ack"],
])
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    try:
        code = cli.main(argv + ["--socket", "/nonexistent/heatctl.sock"])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400),
                                          ("500ms", 0.5), ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "-5m", "0s", "5 m x", "1.5.2h"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


async def test_raw_protocol_errors_are_answers_not_disconnects(daemon):
    s = daemon.options.socket_path
    r = await asyncio.to_thread(call, s, {"op": "fly"})
    assert not r["ok"] and "unknown op" in r["error"]
    r = await asyncio.to_thread(call, s, {"op": "override", "point": "d1_fan", "value": "x",
                                          "duration_s": 5, "reason": "r"})
    assert not r["ok"] and "'value' must be a number" in r["error"]
    r = await asyncio.to_thread(call, s, {"op": "hold"})
    assert not r["ok"] and "reason" in r["error"]


@pytest.mark.parametrize("request_", [
    {"op": "events", "limit": 10**29},        # would overflow SQLite's 64-bit INTEGER
    {"op": "events", "limit": 10**4 + 1},
    {"op": "events", "since": 1e300},
    {"op": "events", "since": -1},
])
async def test_numeric_arguments_are_bounded_before_sqlite(daemon, request_):
    s = daemon.options.socket_path
    r = await asyncio.to_thread(call, s, request_)
    assert not r["ok"] and "\n" not in r["error"] and "must be" in r["error"]
    r = await asyncio.to_thread(call, s, {"op": "status"})  # the connection and the daemon survived
    assert r["ok"]


def test_the_client_retries_a_refused_connect_briefly(sockdir):
    import socket as socket_mod
    import threading
    path = str(sockdir / "late.sock")
    srv = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
    srv.bind(path)  # bound but not listening: connect() is refused, as with a full queue

    def listen_late():
        srv.listen(1)
        conn, _ = srv.accept()
        conn.recv(1024)
        conn.sendall(b'{"ok": true}\n')
        conn.close()

    timer = threading.Timer(0.1, listen_late)
    timer.start()
    try:
        assert call(path, {"op": "status"}) == {"ok": True}
    finally:
        timer.join(5)
        srv.close()


def test_a_refused_connect_still_fails_fast_with_one_line(sockdir):
    import socket as socket_mod
    path = str(sockdir / "dead.sock")
    srv = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
    srv.bind(path)
    srv.close()  # a stale socket file: nobody will ever listen
    with pytest.raises(ApiError) as exc:
        call(path, {"op": "status"})
    assert "refused" in str(exc.value) and exc.value.exit_code == 3


async def test_config_history_lists_shows_and_diffs(tmp_path, sockdir, capsys):
    d, task, _ = await start_daemon(tmp_path, sockdir)
    cfg = tmp_path / "site.yaml"
    cfg.write_text(cfg.read_text().replace("setpoint: 40.0 ", "setpoint: 41.0 "))
    d.request_reload()
    for _ in range(200):
        if d.reloads_ok:
            break
        await asyncio.sleep(0.01)
    cfg.write_text("site: [\n")
    d.request_reload()
    for _ in range(200):
        if d.reloads_refused:
            break
        await asyncio.sleep(0.01)
    d.request_stop("test over")
    await asyncio.wait_for(task, 10)
    state = str(tmp_path / "state")
    capsys.readouterr()
    assert cli.main(["config-history", "--state-dir", state]) == 0
    out = capsys.readouterr().out
    assert "loaded   start-up" in out and "loaded   SIGHUP" in out and "REFUSED  SIGHUP" in out
    assert "YAML syntax error" in out
    assert cli.main(["config-history", "--state-dir", state, "--show", "1"]) == 0
    assert "setpoint: 40.0 " in capsys.readouterr().out
    assert cli.main(["config-history", "--state-dir", state, "--diff", "1", "2"]) == 0
    diff = capsys.readouterr().out
    assert "-    setpoint: 40.0 " in diff and "+    setpoint: 41.0 " in diff
    assert cli.main(["config-history", "--state-dir", state, "--show", "99"]) == 1
    assert cli.main(["config-history", "--state-dir", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.count("\n") == 2


def test_api_error_is_the_only_exception_the_client_raises(sockdir):
    with pytest.raises(ApiError):
        call(str(sockdir / "none.sock"), {"op": "status"})


def _run_verb(*argv, timeout=60):
    import subprocess
    import sys
    root = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, "-m", "controller.cli", "run", *argv], cwd=root,
                          capture_output=True, text=True, timeout=timeout)


def test_run_with_a_broken_config_exits_1_with_its_problem_lines(tmp_path):
    cfg = write_config(tmp_path, 1.0)
    cfg.write_text(cfg.read_text().replace("tick_period_s: 1.0", "tick_period_s: 0.01"))
    p = _run_verb("--config", str(cfg), "--state-dir", str(tmp_path / "state"), "--socket", "/tmp/x.sock")
    assert p.returncode == 1
    assert "tick_period_s: expected a value >= 0.1" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "state").exists()  # nothing started


def test_run_with_an_unusable_socket_exits_1_in_one_line_before_touching_the_plant(tmp_path):
    cfg = write_config(tmp_path, 1.0)
    p = _run_verb("--config", str(cfg), "--state-dir", str(tmp_path / "state"),
                  "--socket", "/dev/null/heatctl.sock")
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "/dev/null/heatctl.sock" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert "write_" not in p.stdout  # no driver was written to
