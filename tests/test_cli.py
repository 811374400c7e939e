"""The ``flp`` command line, run in-process against a test database."""

from __future__ import annotations

import pytest

from orchestrator import cli
from tests.support.sql import scalar

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


def test_bad_setting_stops_flp_at_start_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("FLP_LOG_LEVEL", "LOUD")
    assert cli.main(["jobs"]) == 2
    assert "log_level (FLP_LOG_LEVEL)" in capsys.readouterr().err
