"""The ``flp`` command line, run in-process against a test database."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.db import migrate
from orchestrator.dev.seed.tables import TABLES
from tests.support.sql import scalar

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("restore_logging")  # flp replaces the root logger's handlers


@pytest.fixture
def flp_env(db, monkeypatch):
    """``flp`` pointed at the test's fresh database."""
    monkeypatch.setenv("FLP_DATABASE_URL", db.url)
    monkeypatch.delenv("FLP_CONFIG", raising=False)
    return db


def test_db_script_for_sql_server_starts_with_the_sqlcmd_header(capsys):
    assert cli.main(["db", "script", "--engine", "mssql"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(":on error exit\n")
    assert "\nSET ANSI_NULLS ON;\nSET QUOTED_IDENTIFIER ON;\n\nGO\n" in out
    assert "CREATE OR ALTER PROCEDURE Job.run_batched" in out


def test_run_dry_run_reports_and_writes_nothing(flp_env, capsys):
    assert cli.main(["run", "session_purge", "--dry-run"]) == 0
    assert "session_purge: dry_run" in capsys.readouterr().out
    assert scalar(flp_env, "SELECT count(*) FROM Ops.JobRun") == 0


def test_run_of_an_unknown_job_names_the_known_ones(flp_env, capsys):
    assert cli.main(["run", "archive"]) == 2
    err = capsys.readouterr().err
    assert "unknown job 'archive'" in err and "archive_aim" in err


def test_seed_refuses_bad_input_with_a_message_not_a_traceback(flp_env, capsys):
    assert cli.main(["seed", "--patients", "0"]) == 2
    assert "patients" in capsys.readouterr().err
    assert scalar(flp_env, "SELECT count(*) FROM PLSP.Patient") == 0


def test_seed_then_a_second_seed_is_refused(flp_env, capsys):
    assert cli.main(["seed", "--patients", "50", "--seed", "7"]) == 0
    assert "PLSP.Patient" in capsys.readouterr().out
    assert cli.main(["seed", "--patients", "50"]) == 2
    assert "already holds 50 patients" in capsys.readouterr().err
    assert scalar(flp_env, "SELECT count(*) FROM PLSP.Patient") == 50


def test_jobs_shows_the_effective_timetable_and_marks_overrides(flp_env, capsys):
    from tests.support.sql import execute

    insert = "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, 'test')"
    execute(flp_env, insert, ("archive_aim", "DailyAt", "04:30"))
    execute(flp_env, insert, ("log_cleanup", "Enabled", "N"))
    execute(flp_env, insert, ("session_purge", "EveryMinutes", "7"))
    assert cli.main(["jobs"]) == 0
    captured = capsys.readouterr()
    lines = {
        line.split()[1] if line[:1] in "*!" else line.split()[0]: line for line in captured.out.splitlines()
    }
    assert (
        lines["archive_aim"].startswith("*")
        and "daily at 04:30 Europe/Copenhagen (overridden: DailyAt; " in (lines["archive_aim"])
    )
    assert lines["log_cleanup"].startswith("*") and "disabled" in lines["log_cleanup"]
    assert "next" not in lines["log_cleanup"]
    assert lines["session_purge"].startswith("!") and "every 10 minutes; next" in lines["session_purge"]
    assert lines["ops_retention"].split()[0] == "ops_retention"  # no mark
    assert "* overridden by Ops.Setting" in captured.out
    assert (
        "flp jobs: ! job session_purge: setting EveryMinutes = '7' in Ops.Setting is ignored" in captured.err
    )


def test_jobs_without_a_database_shows_the_registry_and_says_why(monkeypatch, capsys):
    monkeypatch.setenv("FLP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    assert cli.main(["jobs"]) == 0
    captured = capsys.readouterr()
    assert "archive_aim" in captured.out and "daily at 00:00" in captured.out
    assert captured.err.startswith("flp jobs: the registry's timetables; overrides not read: cannot reach")


def test_bad_setting_stops_flp_at_start_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("FLP_LOG_LEVEL", "LOUD")
    assert cli.main(["jobs"]) == 2
    assert "log_level (FLP_LOG_LEVEL)" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Output on stdout, logs on stderr, their levels, progress only on a terminal
# ---------------------------------------------------------------------------


def test_run_prints_its_result_on_stdout_and_logs_nothing_by_default(flp_env, capsys):
    assert cli.main(["run", "session_purge"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("session_purge: succeeded, 0 rows")
    assert err == ""


@pytest.mark.parametrize("argv", [["-v", "run", "session_purge"], ["run", "session_purge", "-v"]])
def test_v_raises_the_log_level_to_info(flp_env, capsys, argv):
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("session_purge: succeeded")
    (line,) = err.splitlines()
    assert line.startswith("ts=") and 'msg="job finished"' in line and "job=session_purge" in line


def test_flp_log_level_wins_over_v(flp_env, capsys, monkeypatch):
    monkeypatch.setenv("FLP_LOG_LEVEL", "ERROR")
    assert cli.main(["-vv", "run", "session_purge"]) == 0
    assert capsys.readouterr().err == ""


def test_upgrade_shows_no_alembic_internals_by_default(empty_db_url, monkeypatch, capsys):
    monkeypatch.setenv("FLP_DATABASE_URL", empty_db_url)
    assert cli.main(["db", "upgrade"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == migrate.head()
    assert err == ""


def test_seed_shows_no_progress_when_not_a_terminal(flp_env, capsys):
    assert cli.main(["seed", "--patients", "30"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "PLSP.Patient" in out and "30" in out


def run_with_stderr_on_a_terminal(args: list[str], url: str) -> tuple[int, str, str]:
    """Run flp with stderr on a pseudo-terminal and stdout on a pipe: (rc, stdout, terminal)."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLP_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env={**env, "FLP_DATABASE_URL": url, "TERM": "xterm", "COLUMNS": "120"},
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal's other end closed: flp is done
            break
        if not chunk:
            break
        shown += chunk
    out, _ = process.communicate(timeout=120)
    os.close(primary)
    return process.returncode, out, shown.decode(errors="replace")


@pytest.mark.slow
def test_seed_shows_progress_per_table_on_a_terminal(empty_db_url):
    rc, out, terminal = run_with_stderr_on_a_terminal(["seed", "--patients", "30"], empty_db_url)

    assert rc == 0
    tables = len(TABLES)
    assert f"{tables}/{tables}" in terminal  # tables loaded of tables
    assert "seed" in terminal and " rows)" in terminal and "PLSP." in terminal  # the last table loaded
    assert "\x1b[" not in out  # stdout, a pipe, got plain text only
    assert "PLSP.Patient" in out


def test_a_run_shows_a_spinner_with_the_elapsed_time_on_a_terminal(flp_env):
    rc, out, terminal = run_with_stderr_on_a_terminal(["run", "session_purge"], flp_env.url)

    assert rc == 0
    assert "session_purge running" in terminal and "0:00:0" in terminal
    assert out.startswith("session_purge: succeeded")


def test_an_unexpected_error_is_one_line_with_the_hint(tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    monkeypatch.delenv("FLP_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLP_DATA_DIR", str(not_a_folder))

    assert cli.main(["run", "session_purge"]) == 1

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("flp run: unexpected NotADirectoryError: ")
    assert line.endswith("(run with -vv for the traceback)")


def test_with_vv_the_traceback_of_an_unexpected_error_is_in_the_log(tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    monkeypatch.delenv("FLP_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLP_DATA_DIR", str(not_a_folder))

    assert cli.main(["run", "session_purge", "-vv"]) == 1

    err = capsys.readouterr().err
    assert 'msg="unexpected error"' in err and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("flp run: unexpected NotADirectoryError")
