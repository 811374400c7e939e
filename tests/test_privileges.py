"""Privileges on PostgreSQL: the FLP roles reach data only through the routines of
their own schema; nobody, PUBLIC included, reads or writes a table directly.

Every check runs real statements under ``SET ROLE`` (the test connects as a
superuser, who may take any role) and also asks the catalog, because a missing
schema USAGE alone would already refuse a statement and hide a table grant.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql

from orchestrator.db import procedures
from orchestrator.db.urls import libpq_url

FLP_ROLES = ("flp_orchestrator", "flp_reader", "flp_lps", "flp_operator")
DATA_SCHEMAS = ["plsp", "ops"]
ROUTINE_SCHEMAS = ["job", "api", "upload", "monitor"]
FLP_SCHEMAS = DATA_SCHEMAS + ROUTINE_SCHEMAS
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


def connect(db) -> psycopg.Connection:
    return psycopg.connect(libpq_url(db.url), autocommit=True)


def tables(conn) -> list[tuple[str, str, str]]:
    """(schema, table, first column) of every table and partition in PLSP and Ops."""
    return conn.execute(
        """SELECT n.nspname, c.relname, a.attname
           FROM pg_class AS c
           JOIN pg_namespace AS n ON n.oid = c.relnamespace
           JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = 1
           WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p')
           ORDER BY 1, 2""",
        (DATA_SCHEMAS,),
    ).fetchall()


def statements(schema: str, table: str, column: str) -> dict[str, sql.Composed]:
    name, col = sql.Identifier(schema, table), sql.Identifier(column)
    return {
        "SELECT": sql.SQL("SELECT * FROM {} LIMIT 1").format(name),
        "INSERT": sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name),
        "UPDATE": sql.SQL("UPDATE {} SET {} = {} WHERE false").format(name, col, col),
        "DELETE": sql.SQL("DELETE FROM {} WHERE false").format(name),
    }


def allowed_table_statements(conn, role: str) -> list[str]:
    """Every table statement ``role`` is not refused, as 'VERB schema.table'."""
    allowed = []
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        for schema, table, column in tables(conn):
            for verb, statement in statements(schema, table, column).items():
                try:
                    conn.execute(statement)
                except errors.InsufficientPrivilege:
                    continue
                except psycopg.Error:
                    pass  # refused later than the privilege check (a NOT NULL column): allowed
                allowed.append(f"{verb} {schema}.{table}")
    finally:
        conn.execute("RESET ROLE")
    return allowed


def test_the_flp_roles_exist(db):
    with connect(db) as conn:
        found = {
            r[0]
            for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(FLP_ROLES),))
        }
    assert found == set(FLP_ROLES)


def test_the_schema_roles_match_the_flp_roles():
    # procedures.SCHEMA_ROLES decides the grants; these tests assume the same roles.
    assert {role for roles in procedures.SCHEMA_ROLES.values() for role in roles} == set(FLP_ROLES)
    assert set(procedures.SCHEMA_ROLES) == set(ROUTINE_SCHEMAS)


def test_there_are_tables_to_check(db):
    with connect(db) as conn:
        found = {(schema, table) for schema, table, _ in tables(conn)}
    assert {("plsp", "forloebsplan"), ("plsp", "flp_aim"), ("ops", "jobrun")} <= found


@pytest.mark.parametrize("role", FLP_ROLES)
def test_a_role_cannot_touch_any_table(db, role):
    with connect(db) as conn:
        assert allowed_table_statements(conn, role) == []


@pytest.mark.parametrize("role", [*FLP_ROLES, "public"])
def test_no_role_holds_a_table_privilege(db, role):
    with connect(db) as conn:
        granted = conn.execute(
            """SELECT n.nspname || '.' || c.relname FROM pg_class AS c
               JOIN pg_namespace AS n ON n.oid = c.relnamespace
               WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                 AND has_table_privilege(%s, c.oid, %s)""",
            (FLP_SCHEMAS, role, TABLE_PRIVILEGES),
        ).fetchall()
    assert granted == []


def test_the_orchestrator_role_runs_a_job_through_the_job_procedures(db):
    with connect(db) as conn:
        conn.execute("SET ROLE flp_orchestrator")
        run_id, result = conn.execute(
            "CALL job.job_run_start(p_JobName => 'privilege_test', p_TriggeredBy => 'test', "
            "p_JobRunId => NULL, p_Result => NULL)"
        ).fetchone()
        assert result == "started"
        conn.execute(
            "CALL job.job_run_finish(p_JobRunId => %s, p_Status => 'succeeded', p_RowsAffected => 3)",
            (run_id,),
        )
        conn.execute("RESET ROLE")
        row = conn.execute(
            "SELECT Status, RowsAffected FROM Ops.JobRun WHERE JobRunId = %s", (run_id,)
        ).fetchone()
    assert row == ("succeeded", 3)


@pytest.mark.parametrize("role", ["flp_reader", "flp_lps", "flp_operator"])
def test_other_roles_cannot_call_the_job_procedures(db, role):
    with connect(db) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "CALL job.job_run_start(p_JobName => 'privilege_test', p_JobRunId => NULL, p_Result => NULL)"
            )
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT count(*) FROM Ops.JobRun").fetchone() == (0,)


def test_each_routine_is_executable_by_its_schemas_role_only(db):
    with connect(db) as conn:
        found = conn.execute(
            """SELECT n.nspname, p.proname, r.rolname, has_function_privilege(r.rolname, p.oid, 'EXECUTE')
               FROM pg_proc AS p
               JOIN pg_namespace AS n ON n.oid = p.pronamespace
               CROSS JOIN pg_roles AS r
               WHERE n.nspname = ANY(%s) AND r.rolname = ANY(%s)""",
            (FLP_SCHEMAS, list(FLP_ROLES)),
        ).fetchall()
    assert found, "no routine to check"
    wrong = [
        (schema, name, role, can)
        for schema, name, role, can in found
        if can != (role in procedures.SCHEMA_ROLES.get(schema, ()))
    ]
    assert wrong == []


def test_public_cannot_execute_any_flp_routine(db):
    with connect(db) as conn:
        granted = conn.execute(
            """SELECT n.nspname || '.' || p.proname
               FROM pg_proc AS p
               JOIN pg_namespace AS n ON n.oid = p.pronamespace
               CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
               WHERE n.nspname = ANY(%s) AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'""",
            (FLP_SCHEMAS,),
        ).fetchall()
    assert granted == []


def test_health_gate_refuses_to_answer_when_its_owner_cannot_see_other_sessions(db):
    # Without pg_read_all_stats other sessions' state reads as NULL: the gate
    # would never close. It must say so instead of answering "not busy".
    with connect(db) as conn:
        conn.execute("DROP ROLE IF EXISTS flp_test_weak_owner")
        conn.execute("CREATE ROLE flp_test_weak_owner NOLOGIN")
        try:
            conn.execute("GRANT USAGE ON SCHEMA job TO flp_test_weak_owner")
            conn.execute("ALTER PROCEDURE job.health_check OWNER TO flp_test_weak_owner")
            with pytest.raises(psycopg.Error, match="pg_read_all_stats"):
                conn.execute("CALL job.health_check(20, 2, NULL, NULL)")
            conn.execute("GRANT pg_read_all_stats TO flp_test_weak_owner")
            busy, _ = conn.execute("CALL job.health_check(20, 2, NULL, NULL)").fetchone()
            assert busy is False
        finally:
            conn.execute("ALTER PROCEDURE job.health_check OWNER TO CURRENT_USER")
            conn.execute("REVOKE ALL ON SCHEMA job FROM flp_test_weak_owner")
            conn.execute("DROP ROLE flp_test_weak_owner")
