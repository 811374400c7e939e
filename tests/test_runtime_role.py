"""The service under the least-privilege login docs/operations.md prescribes: a login whose
only right is the role flp_orchestrator starts ``flp orchestrator`` (no migration, the
schema revision read through Monitor.schema_revision), runs a job and writes its
heartbeat, with FLP_HOST_NAME as the host; it may not migrate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from orchestrator.db import migrate
from orchestrator.db.connection import Database
from orchestrator.db.urls import libpq_url
from orchestrator.errors import EXIT_SCHEMA
from orchestrator.jobs import JOBS
from orchestrator.scheduler import Orchestrator
from tests.support.sql import fetch_one, scalar

ROOT = Path(__file__).resolve().parents[1]
HOST = "orch-test-host"
WAIT = 60.0  # seconds for a line from flp, or a job thread


def flp_env(**settings: str) -> dict[str, str]:
    """This environment without FLP_ variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLP_")}
    return {**env, **settings}


@pytest.fixture
def orchestrator_url(db, pg_server_url) -> str:
    """A URL for the test's database as a login that holds only the role flp_orchestrator."""
    login = f"flp_orch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE flp_orchestrator").format(sql.Identifier(login)))
    yield make_url(db.url).set(username=login, password=None).render_as_string(hide_password=False)
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        # Its sessions are gone with the flp processes; its heartbeat rows belong to the database.
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def test_the_login_holds_only_the_orchestrator_role(db, orchestrator_url):
    login = make_url(orchestrator_url).username
    with psycopg.connect(libpq_url(db.url)) as conn:
        roles = conn.execute(
            """SELECT r.rolname FROM pg_auth_members AS m
               JOIN pg_roles AS r ON r.oid = m.roleid
               JOIN pg_roles AS u ON u.oid = m.member
               WHERE u.rolname = %s""",
            (login,),
        ).fetchall()
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (login,)).fetchone()[0]
    assert roles == [("flp_orchestrator",)]
    assert superuser is False
    with (
        psycopg.connect(libpq_url(orchestrator_url)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT version_num FROM alembic_version")


def test_flp_orchestrator_under_the_role_starts_and_beats(db, orchestrator_url):
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "orchestrator"],
        cwd=ROOT,
        env=flp_env(FLP_DATABASE_URL=orchestrator_url, FLP_HOST_NAME=HOST),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        deadline = time.monotonic() + WAIT
        while not any("orchestrator started" in line for line in seen):
            assert time.monotonic() < deadline, seen
            line = process.stderr.readline()
            assert line, f"flp orchestrator ended (rc {process.poll()}): {''.join(seen)}"
            seen.append(line)
        # The first beat follows the start line at once.
        while scalar(db, "SELECT count(*) FROM Ops.Heartbeat") == 0:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == 0, "".join(seen) + err
    assert out == ""
    assert "Traceback" not in "".join(seen) + err and "permission denied" not in "".join(seen) + err
    host, pid = fetch_one(db, "SELECT Host, ProcessId FROM Ops.Heartbeat")
    assert (host, pid) == (HOST, process.pid)


def test_the_orchestrator_under_the_role_runs_a_job_with_flp_host_name(
    db, orchestrator_url, monkeypatch, restore_logging
):
    monkeypatch.setenv("FLP_HOST_NAME", HOST)
    role_db = Database(orchestrator_url)
    try:
        orchestrator = Orchestrator(role_db, component="test-orchestrator")
        assert orchestrator.wait_for_database()
        orchestrator.beat()
        orchestrator.start_job(JOBS["session_purge"])
        orchestrator._running["session_purge"].join(WAIT)
    finally:
        role_db.engine.dispose()
    assert fetch_one(
        db, "SELECT TriggeredBy, Host, Status FROM Ops.JobRun WHERE JobName = 'session_purge'"
    ) == (
        "orchestrator",
        HOST,
        "succeeded",
    )
    assert fetch_one(db, "SELECT Component, Host FROM Ops.Heartbeat") == ("test-orchestrator", HOST)


def test_flp_run_under_the_role_writes_flp_host_name(db, orchestrator_url):
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "session_purge"],
        cwd=ROOT,
        env=flp_env(FLP_DATABASE_URL=orchestrator_url, FLP_HOST_NAME=HOST),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("session_purge: succeeded")
    assert fetch_one(db, "SELECT TriggeredBy, Host FROM Ops.JobRun") == ("manual", HOST)


def test_the_role_may_not_migrate_and_is_told_so_in_one_line(orchestrator_url):
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "db", "upgrade"],
        cwd=ROOT,
        env=flp_env(FLP_DATABASE_URL=orchestrator_url),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("flp db: this login may not migrate (permission denied for table alembic_version)")
    assert line.endswith("the database owner (a DBA) runs `flp db upgrade`")


def test_under_the_role_a_database_older_than_the_revision_procedure_is_exit_3(empty_db_url, pg_server_url):
    migrate.upgrade(empty_db_url, "0005")  # before Monitor.schema_revision (0006)
    login = f"flp_orch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE flp_orchestrator").format(sql.Identifier(login)))
    try:
        url = make_url(empty_db_url).set(username=login).render_as_string(hide_password=False)
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "run", "session_purge"],
            cwd=ROOT,
            env=flp_env(FLP_DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    finally:
        with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
    assert done.returncode == EXIT_SCHEMA
    (line,) = done.stderr.splitlines()
    assert line == (
        "flp run: the database has no Monitor.schema_revision, so its schema is older than this flp "
        f"(which expects revision {migrate.head()}): a DBA runs `flp db upgrade`"
    )
