-- 0006 operator reads, PostgreSQL twin of db/schema/mssql/0006_operator_reads.up.sql.
-- Schema Monitor holds read-only routines over Ops (last runs, runs of a job,
-- batches of a run, heartbeats, the schema revision). They run as their owner
-- (SECURITY DEFINER), so the roles that may execute them never read a table.
-- flp_operator (operators on call, monitoring) may execute Monitor routines and
-- nothing else; flp_orchestrator may execute them too (the runtime revision check).

CREATE SCHEMA Monitor;  -- read procedures for operators and the orchestrator

-- Roles are cluster-wide: created once, kept on downgrade (as in 0001).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'flp_operator') THEN
        CREATE ROLE flp_operator NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA Monitor TO flp_orchestrator, flp_operator;
