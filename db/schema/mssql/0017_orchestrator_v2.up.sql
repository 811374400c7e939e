-- Migration 0017 on SQL Server: pg_cron records its runs as itself (issue 10).
--
-- A run row's trigger may now be 'pg_cron' (Job.job_run_start version 3), as
-- on the PostgreSQL twin; SQL Server Agent's runs stay 'agent'.
ALTER TABLE Ops.JobRun DROP CONSTRAINT CK_JobRun_TriggeredBy;
ALTER TABLE Ops.JobRun WITH CHECK ADD CONSTRAINT CK_JobRun_TriggeredBy CHECK (
    TriggeredBy IN ('orchestrator', 'agent', 'pg_cron', 'manual', 'demo', 'test')
);
GO
