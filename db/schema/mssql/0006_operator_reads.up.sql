-- 0006 operator reads, SQL Server. Twin of db/schema/postgresql/0006_operator_reads.up.sql.
-- Schema Monitor holds read-only procedures over Ops (last runs, runs of a job,
-- batches of a run, heartbeats, the schema revision). Everything is owned by
-- dbo, so ownership chaining lets a caller who may only execute them read.
-- flp_operator (operators on call, monitoring) may execute Monitor procedures
-- and nothing else; flp_orchestrator may execute them too (the runtime
-- revision check).

CREATE SCHEMA Monitor AUTHORIZATION dbo;
GO
CREATE ROLE flp_operator AUTHORIZATION dbo;
GO
GRANT EXECUTE ON SCHEMA::Monitor TO flp_orchestrator;
GRANT EXECUTE ON SCHEMA::Monitor TO flp_operator;
