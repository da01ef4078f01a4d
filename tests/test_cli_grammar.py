"""The CLI's grammar: --version, exit codes in --help, "did you mean", exit 3 when the daemon is
unreachable, `status --check` on latched trips and safe_degrade."""

from __future__ import annotations

import subprocess
import sys

import pytest

from controller import __version__
from controller.cli import build_parser, main
from controller.cli.verbs.status import status_ok


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"heatctl {__version__}"


def test_help_documents_exit_codes():
    text = build_parser().format_help()
    for line in ("0  ok", "1  refused or failed", "2  usage", "3  the daemon is unreachable"):
        assert line in text


def test_mistyped_verb_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["stauts"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean 'status'?" in err and err.count("\n") == 1


def test_unknown_verb_without_a_close_match(capsys):
    with pytest.raises(SystemExit):
        main(["xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


def test_unreachable_daemon_exits_3(tmp_path, capsys):
    assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 3
    assert "cannot reach the daemon" in capsys.readouterr().err


def test_status_check_rules():
    ok = {"mode": {"mode": "heat_export"}, "trips": {"t1": {"latched": False}}}
    assert status_ok(ok)
    assert not status_ok({**ok, "trips": {"t1": {"latched": True}}})
    assert not status_ok({**ok, "mode": {"mode": "safe_degrade"}})


def test_entry_point_module_runs():
    out = subprocess.run([sys.executable, "-m", "controller.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_check_config_takes_config_the_positional_alias_and_json(capsys, tmp_path, monkeypatch):
    import json
    from pathlib import Path
    ref = str(Path(__file__).resolve().parent.parent / "config/reference-plant.yaml")
    assert main(["check-config", "--config", ref]) == 0
    assert main(["check-config", ref]) == 0
    capsys.readouterr()
    assert main(["check-config", "--config", ref, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["summary"]["points"] > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("x: 1\n")
    assert main(["check-config", "--config", str(bad), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and len(out["problems"]) > 1
    monkeypatch.setenv("HEATCTL_CONFIG", str(bad))
    assert main(["check-config"]) == 1  # the default is $HEATCTL_CONFIG first


def test_trip_test_dry_run_shows_the_configs_actions_without_a_daemon(capsys, monkeypatch):
    import json
    from controller.site.loader import load_config
    from controller.site.paths import REPO_ROOT
    ref = str(REPO_ROOT / "config/reference-plant.yaml")
    actions = load_config(ref).site.trips["leak"].actions
    assert main(["trip-test", "leak", "--dry-run", "--config", ref, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actions"] == dict(actions)
    assert main(["trip-test", "no_such_trip", "--dry-run", "--config", ref]) == 1
    assert "no trip 'no_such_trip'" in capsys.readouterr().err


def test_commission_without_a_daemon_stops_with_one_line_and_no_report(tmp_path, capsys):
    from controller.site.paths import REPO_ROOT
    plan = str(REPO_ROOT / "config/commissioning/reference-plant.yaml")
    rc = main(["commission", "--plan", plan, "--reason", "site acceptance", "--out", str(tmp_path),
               "--socket", str(tmp_path / "none.sock")])
    assert rc == 3
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert main(["commission", "--check", "--plan", plan]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\n")
    assert main(["commission", "--check", "--plan", str(bad)]) == 2


def test_change_verbs_take_json():
    parser = build_parser()
    for argv in (["mode", "normal"], ["hold"], ["release"], ["ack", "leak"], ["shelve", "x", "--for", "1h"],
                 ["unshelve", "x"], ["trip-test", "leak"]):
        try:
            args = parser.parse_args([*argv, "--reason", "because", "--json"])
        except SystemExit:
            args = parser.parse_args([*argv, "--json"])
        assert args.json, argv


def test_bash_completion_completes_verbs_and_options(tmp_path, capsys):
    import shutil
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "heatctl.bash"
    script.write_text(capsys.readouterr().out)
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")

    def complete(*words):
        prog = (f'source {script}; COMP_WORDS=({" ".join(words)}); COMP_CWORD={len(words) - 1}; '
                '_heatctl; echo "${COMPREPLY[@]}"')
        return subprocess.run([bash, "-c", prog], capture_output=True, text=True, check=True).stdout.split()

    assert complete("heatctl", "stat") == ["status"]
    assert "--json" in complete("heatctl", "status", "--")
    assert "--dry-run" in complete("heatctl", "trip-test", "--d")


def test_one_utc_time_parser_for_since_and_from():
    import datetime as dt
    from controller.cli.verbs.events import since_type
    from controller.ops.monthly_report import parse_period
    from controller.ops.times import format_utc, parse_utc
    midnight = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc).timestamp()
    assert parse_utc("2026-05-01") == midnight  # a bare date: UTC midnight
    assert parse_utc("2026-05-01T00:00") == midnight  # no zone: UTC, not the host's zone
    assert parse_utc("2026-05-01T00:00Z") == midnight
    assert parse_utc("2026-05-01T02:00+02:00") == midnight
    assert since_type("2026-05-01T00:00") == midnight
    assert parse_period(None, "2026-05-01", "2026-05-02T00:00Z")[:2] == (midnight, midnight + 86400)
    assert format_utc(midnight) == "2026-05-01 00:00:00Z"
    with pytest.raises(ValueError):
        parse_utc("yesterday")


def test_status_watch_repeats_and_stops_when_the_daemon_is_gone(tmp_path):
    from controller.cli.verbs import status
    args = build_parser().parse_args(["status", "--watch", "--socket", str(tmp_path / "s.sock")])
    assert args.watch == 2.0
    assert build_parser().parse_args(["status", "--watch", "5"]).watch == 5.0
    calls, sleeps = [], []
    assert status.watch(args, once=lambda a: calls.append(1) or 0, sleep=sleeps.append, rounds=3) == 0
    assert len(calls) == 3 and sleeps == [2.0, 2.0]
    assert status.watch(args, sleep=sleeps.append) == 3  # the real call: no daemon, exit 3 at once


def test_config_history_json(tmp_path, capsys):
    import json
    from controller.daemon.audit import AuditStore
    store = AuditStore(tmp_path / "state")
    store.record_config(0.0, "/etc/heatctl/site.yaml", "ab" * 32, "site: x\n", True, cause="start")
    store.record_config(60.0, "/etc/heatctl/site.yaml", "cd" * 32, "site: y\n", False, ["a: bad", "b: bad"], "reload")
    store.close()
    assert main(["config-history", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["accepted"] for r in rows] == [True, False]
    assert rows[1]["problems"] == ["a: bad", "b: bad"] and rows[0]["time"].startswith("1970-01-01")
