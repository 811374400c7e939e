"""Errors a person can act on: each command of issue 6 (sections 2 and 4), run as a real
``flp`` process, gives one clear line on stderr and its exit code, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.db import migrate
from orchestrator.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_SCHEMA
from tests.support.sql import execute, scalar

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE_URL = "postgresql://nobody@127.0.0.1:1/x"
PROCESS_TIMEOUT = 120  # seconds for one flp command
WAIT = 60.0  # seconds to wait for a line from a long-running flp


def flp_env(**settings: str) -> dict[str, str]:
    """This environment without FLP_ variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLP_")}
    return {**env, **settings}


def flp(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        **kwargs,
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    """stderr, which must be exactly one line and no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def start_flp(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(process: subprocess.Popen, text: str, count: int = 1) -> list[str]:
    """stderr lines of ``process`` up to the ``count``-th holding ``text``."""
    seen, found = [], 0
    deadline = time.monotonic() + WAIT
    while found < count:
        assert time.monotonic() < deadline, f"no {text!r} in time; saw {seen}"
        line = process.stderr.readline()
        assert line, f"flp ended (rc {process.poll()}) before {text!r}; saw {seen}"
        seen.append(line)
        found += text in line
    return seen


@pytest.fixture
def url_env(db) -> dict[str, str]:
    """flp pointed at the test's migrated database."""
    return flp_env(FLP_DATABASE_URL=db.url)


# ---------------------------------------------------------------------------
# Section 4: configuration, arguments, drivers
# ---------------------------------------------------------------------------


def test_a_mistyped_flp_variable_is_named_before_anything_else():
    done = flp("run", "archive_aim", env=flp_env(FLP_DATABSE_URL=UNREACHABLE_URL))

    assert done.returncode == 2
    assert one_line(done) == (
        "flp: environment variable FLP_DATABSE_URL is not a setting (did you mean FLP_DATABASE_URL?)"
    )
    assert done.stdout == ""


def test_an_unreachable_database_names_host_port_and_reason():
    done = flp("run", "archive_aim", env=flp_env(FLP_DATABASE_URL=UNREACHABLE_URL))

    assert done.returncode == 2
    assert one_line(done) == "flp run: cannot reach the database at 127.0.0.1:1: Connection refused"


def test_an_mssql_url_without_the_driver_names_the_extra():
    # The SQL Server driver is not installed in the test environment: make sure of it.
    blocked = "import sys; sys.modules['pyodbc'] = None; from orchestrator.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", blocked, "run", "archive_aim"],
        cwd=ROOT,
        env=flp_env(FLP_DATABASE_URL="mssql://flp:pw@sql.example/flp"),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )

    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("flp run: SQL Server needs the mssql extra")
    assert line.endswith('pip install "flp-jobs[mssql]"')


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_time_limit_that_is_not_positive_is_refused_before_calling(value):
    # The URL is unreachable: had flp tried to connect, the line would say so.
    done = flp("run", "archive_aim", "--time-limit", value, env=flp_env(FLP_DATABASE_URL=UNREACHABLE_URL))

    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("flp run: argument --time-limit: must be a whole number of at least 1; got")
    assert value in line


def test_a_database_side_parameter_error_names_the_t_sql_parameter_without_context(db, url_env):
    done = flp("run", "archive_aim", "--time-limit", "700000", env=url_env)

    assert done.returncode == 1
    assert done.stdout.startswith("archive_aim: failed, 0 rows")
    assert "CONTEXT" not in done.stderr and "p_TimeLimitSeconds" not in done.stderr
    assert "Traceback" not in done.stderr
    person = [line for line in done.stderr.splitlines() if line.startswith("flp run:")]
    assert person == [
        "flp run: archive_aim failed: The value for the parameter @TimeLimitSeconds is not supported: "
        "give 1 to 604800 seconds (7 days), or NULL for the setting."
    ]


def test_the_full_database_error_is_in_the_log_at_debug(url_env):
    done = flp("run", "archive_aim", "--time-limit", "700000", "-vv", env=url_env)

    assert done.returncode == 1
    assert "job failed in full" in done.stderr and "CONTEXT" in done.stderr


def test_seed_refuses_a_negative_count_before_migrating(empty_db_url):
    done = flp("seed", "--patients", "-5", env=flp_env(FLP_DATABASE_URL=empty_db_url))

    assert done.returncode == 2
    assert one_line(done).startswith("flp seed: argument --patients: must be a whole number of at least 1")
    assert migrate.current(empty_db_url) is None  # nothing was migrated


def test_an_unknown_revision_is_a_usage_error_not_a_traceback(url_env):
    done = flp("db", "upgrade", "zzz", env=url_env)

    assert done.returncode == 2
    assert one_line(done) == "flp db: Can't locate revision identified by 'zzz'"


# ---------------------------------------------------------------------------
# Section 2: runtime commands never migrate; a revision mismatch is exit code 3
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("run", "session_purge"), ("orchestrator",)])
def test_a_runtime_command_on_an_empty_database_says_what_a_dba_runs(empty_db_url, command):
    done = flp(*command, env=flp_env(FLP_DATABASE_URL=empty_db_url))

    assert done.returncode == EXIT_SCHEMA
    expected = migrate.head()
    assert one_line(done).endswith(
        f"the database has no migration applied; this flp expects revision {expected}: "
        "a DBA runs `flp db upgrade`"
    )
    assert migrate.current(empty_db_url) is None  # and it did not migrate


def test_a_database_behind_the_code_names_both_revisions(empty_db_url):
    migrate.upgrade(empty_db_url, "0003")

    done = flp("run", "session_purge", env=flp_env(FLP_DATABASE_URL=empty_db_url))

    assert done.returncode == EXIT_SCHEMA
    assert one_line(done) == (
        f"flp run: the database is at revision 0003, this flp expects {migrate.head()}: "
        "a DBA runs `flp db upgrade`"
    )
    assert migrate.current(empty_db_url) == "0003"


def test_a_database_ahead_of_the_code_says_so(db, url_env):
    execute(db, "UPDATE alembic_version SET version_num = '9999'")

    done = flp("run", "session_purge", env=url_env)

    assert done.returncode == EXIT_SCHEMA
    line = one_line(done)
    assert line.startswith(
        f"flp run: the database is at revision 9999, newer than this flp knows (it expects {migrate.head()})"
    )
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0


def test_a_runtime_command_on_a_current_database_runs(db, url_env):
    done = flp("run", "session_purge", env=url_env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("session_purge: succeeded")
    assert done.stderr == ""  # WARNING by default: nothing to say


# ---------------------------------------------------------------------------
# Interrupts, pipes, the orchestrator waiting for its database
# ---------------------------------------------------------------------------


def only_a_slow_archive_runs(db) -> None:
    """Every job of the registry switched off by its override but archive_aim, every 10 minutes
    (its latest slot runs at start), with batches slow enough to be running when a signal comes."""
    from orchestrator.jobs import JOBS
    from tests.support import archive

    rows = [(name, "Enabled", "N") for name in JOBS if name != "archive_aim"]
    rows.append(("archive_aim", "EveryMinutes", "10"))
    for row in rows:
        execute(
            db, "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, 'test')", row
        )
    archive.load_aim(db, 3000, kinds=(archive.DELIVERED_OLD,))
    archive.set_settings(
        db, BatchSizeStart=200, BatchSizeMin=200, BatchSizeMax=200, SleepFactor=0, RetentionDays=7
    )
    archive.slow_down_batches(db, 3000)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_the_service_cleanly_with_exit_0(db, url_env, sig):
    only_a_slow_archive_runs(db)
    process = start_flp("orchestrator", env=url_env)
    try:
        wait_for_lines(process, "orchestrator started")
        deadline = time.monotonic() + WAIT
        while scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") < 1:
            assert time.monotonic() < deadline, "the archive did not start"
            time.sleep(0.1)
        process.send_signal(sig)
        _, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err
    assert f"signal={sig.name}" in err
    assert "waited for a running job" in err and "job=archive_aim finished=True" in err
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobName = 'archive_aim'") == "stopped"
    # Only the archive ran: the overrides switched every other job off.
    assert scalar(db, "SELECT count(DISTINCT JobName) FROM Ops.JobRun") == 1


def test_a_second_ctrl_c_while_waiting_stops_at_once_with_exit_130(db, url_env):
    only_a_slow_archive_runs(db)
    process = start_flp("orchestrator", env=url_env)
    try:
        wait_for_lines(process, "orchestrator started")
        deadline = time.monotonic() + WAIT
        while scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") < 1:
            assert time.monotonic() < deadline, "the archive did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        wait_for_lines(process, "orchestrator stopping; waiting for running jobs")
        process.send_signal(signal.SIGINT)  # the batch in hand takes 3 s: still waiting
        _, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err
    assert "second Ctrl-C; stopping at once" in err and "jobs=archive_aim" in err
    assert err.splitlines()[-1] == "flp orchestrator: interrupted"


def test_a_closed_pipe_ends_quietly():
    # `flp jobs | head -1`: the reader is gone before flp writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "jobs"],
            cwd=ROOT,
            env=flp_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=PROCESS_TIMEOUT,
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE
    assert done.stderr == ""


def test_head_of_flp_jobs_gives_no_traceback():
    done = subprocess.run(
        f"{sys.executable} -m orchestrator jobs | head -1",
        shell=True,
        cwd=ROOT,
        env=flp_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert done.returncode == 0
    assert done.stdout.split() == ["job", "what", "when"]
    assert done.stderr == ""


def test_the_orchestrator_retries_an_unreachable_database_until_stopped():
    process = start_flp("orchestrator", env=flp_env(FLP_DATABASE_URL=UNREACHABLE_URL))
    try:
        lines = wait_for_lines(process, "database unreachable; retrying", count=2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == 0
    attempts = [line for line in lines if "retrying" in line]
    assert "attempt=1 " in attempts[0] and "attempt=2 " in attempts[1]
    assert "Connection refused" in attempts[0]
    assert "Traceback" not in "".join(lines) + err


def test_the_orchestrator_logs_json_when_asked(url_env):
    process = start_flp("orchestrator", env={**url_env, "FLP_LOG_FORMAT": "json"})
    try:
        started = wait_for_lines(process, "orchestrator started")[-1]
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == 0
    assert json.loads(started)["msg"] == "orchestrator started"
    assert out == ""  # logs never reach stdout


# ---------------------------------------------------------------------------
# The embedded server after a killed flp; which database the demo left
# ---------------------------------------------------------------------------


def postmaster_pid(pgdata: Path) -> int | None:
    path = pgdata / "postmaster.pid"
    return int(path.read_text().split()[0]) if path.exists() else None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_gone(pid: int) -> bool:
    deadline = time.monotonic() + WAIT
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


@pytest.mark.slow
def test_a_killed_flp_leaves_no_server_running_for_good(data_dir):
    data = data_dir
    pgdata = data / "pgdata"
    done = flp("demo", "--patients", "100", env=flp_env(FLP_DATA_DIR=str(data)))
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.endswith(f"export FLP_DATA_DIR={data} FLP_EMBEDDED_DATABASE=flp_demo")
    assert postmaster_pid(pgdata) is None  # the demo stopped its server

    # The demo's own line points the other commands at its database.
    demo_env = flp_env(FLP_DATA_DIR=str(data), FLP_EMBEDDED_DATABASE="flp_demo")
    process = start_flp("orchestrator", env=demo_env)
    try:
        wait_for_lines(process, "orchestrator started")
        server = postmaster_pid(pgdata)
        assert alive(server)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=WAIT)
        assert alive(server)  # pgserver's atexit never ran
        assert process.pid in json.loads((pgdata / ".handle_pids.json").read_text())

        # A later command reuses the running server and stops it when it is done.
        done = flp("run", "session_purge", env=demo_env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("session_purge: succeeded")
        assert wait_until_gone(server), "the embedded server was left running"
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    finally:
        process.kill()
        process.communicate()
        leftover = postmaster_pid(pgdata)
        if alive(leftover):
            os.kill(leftover, signal.SIGTERM)
